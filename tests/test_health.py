"""Daily reachability as the client sees it, and /readyz."""

from __future__ import annotations

from helpers import bridge_of

from videobridge.health import UNREACHABLE_AFTER, DailyHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unreachable_only_after_a_minute_of_nothing_but_failures():
    clock = Clock()
    health = DailyHealth(monotonic=clock)
    assert health.reachable()
    health.request_done("GET /presence", "unavailable", 10.0)
    clock.now += UNREACHABLE_AFTER - 1
    assert health.reachable()
    clock.now += 2
    assert not health.reachable()
    health.request_done("GET /presence", "rate_limited", 0.1)  # any answer means Daily is there
    assert health.reachable()


async def test_readyz_fails_while_daily_is_unreachable(bridge):
    b = bridge_of(bridge)
    clock = Clock()
    b.health._monotonic = clock
    b.health.request_done("POST /rooms", "unavailable", 20.0)
    clock.now += UNREACHABLE_AFTER + 1
    async with bridge.get("/readyz") as resp:
        body = await resp.json()
    assert resp.status == 503 and body["status"] == "unready" and body["checks"]["daily"] is False
    b.health.request_done("GET /presence", "ok", 0.01)
    async with bridge.get("/readyz") as resp:
        assert resp.status == 200
