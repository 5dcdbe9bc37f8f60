"""GET /room/status (what `calls watch` shows) and the alerting series, on a real bridge over HTTP."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from conftest import BridgeFactory
from helpers import ADMIN_TOKEN, bridge_of, end_token, get_token, start_token
from prometheus_client.parser import text_string_to_metric_families

from videobridge.devjwt import DevSigner
from videobridge.emulator import DailyEmulator
from videobridge.models import Notification

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def status(client: TestClient) -> dict[str, Any]:
    async with client.get("/room/status", headers=AUTH) as resp:
        assert resp.status == 200
        return dict(await resp.json())


def series(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = bridge_of(client).metrics.render()[0].decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_a_call_through_its_life_as_the_status_shows_it(make_bridge: BridgeFactory, signer: DevSigner,
                                                              emulator: DailyEmulator) -> None:
    client = await make_bridge()
    empty = await status(client)
    assert empty["version"] == 1 and empty["ready"] is True and empty["calls"] == [] and empty["events"] == []
    assert empty["poller"]["lastSuccessAgeSeconds"] is None and empty["ic"]["enabled"] is False

    code, grant = await get_token(client, start_token(signer, call_type="Broadcast"))
    assert code == 200
    room = grant["roomName"]
    (call,) = (await status(client))["calls"]
    assert call["roomName"] == room and call["callType"] == "Broadcast" and call["chatKind"] == "group"
    assert call["state"] == "starting" and call["participants"] is None  # no presence poll yet
    assert call["messageId"] == grant["messageId"] and call["roomExp"] > call["createdAt"]

    emulator.join(room, grant["token"])
    assert await bridge_of(client).poller.poll_once()
    (call,) = (await status(client))["calls"]
    assert call["state"] == "live" and call["participants"] == 1

    emulator.leave_all(room)
    async with client.post("/room/end_meeting", headers={"x-auth-jwt": end_token(signer)}) as resp:
        assert (await resp.json())["ended"] is True
    await bridge_of(client).calls.drain()
    done = await status(client)
    assert done["calls"] == []
    events = [(e["event"], e["room"], e["detail"]) for e in done["events"]]
    assert ("call_started", room, "Broadcast, group") in events
    assert ("call_live", room, "") in events and ("call_ended", room, "end_meeting") in events
    assert events.index(("call_started", room, "Broadcast, group")) < events.index(("call_ended", room, "end_meeting"))
    assert all(isinstance(e["at"], float) for e in done["events"]) and len(done["events"]) <= 10


class FlakyNotifier:
    """The IC is down for the first `failures` sends, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def send(self, note: Notification) -> Any:
        from videobridge.notifier import Skipped, TransientNotifyError

        if self.failures > 0:
            self.failures -= 1
            raise TransientNotifyError("connection refused by ic.example", reason="transport")
        return Skipped()

    async def close(self) -> None:
        pass


async def test_outbox_and_ic_trouble_is_in_the_status(make_bridge: BridgeFactory, signer: DevSigner) -> None:
    import asyncio

    from videobridge.outbox import RetryPolicy

    client = await make_bridge(notifier=FlakyNotifier(2), notify_retry=RetryPolicy(initial=0.05, maximum=0.1))
    code, grant = await get_token(client, start_token(signer))
    assert code == 200
    seen: list[dict[str, Any]] = []
    for _ in range(200):  # the retries are 50-100 ms apart
        seen.append(await status(client))
        if seen[-1]["ic"]["lastDeliveryAt"] is not None:
            break
        await asyncio.sleep(0.02)
    failing = next(s for s in seen if s["ic"]["failures"] > 0)
    assert failing["outbox"]["depth"] == 1
    assert "connection refused by ic.example" in failing["outbox"]["lastError"]["message"]
    healed = seen[-1]
    assert healed["ic"]["lastDeliveryAt"] is not None and healed["ic"]["failures"] == 0
    assert healed["outbox"]["depth"] == 0 and healed["outbox"]["lastError"] is not None  # the last error stays shown
    assert any(e["event"] == "notification_retry" for e in healed["events"])
    assert healed["events"][-1]["event"] == "notification_settled" and healed["events"][-1]["room"] == grant["roomName"]


async def test_the_alerting_series(make_bridge: BridgeFactory, signer: DevSigner) -> None:
    client = await make_bridge(start_grace=120.0)
    found = series(client)
    assert found[("videobridge_ready", ())] == 1
    assert found[("videobridge_start_grace_seconds", ())] == 120
    assert found[("videobridge_calls_starting_oldest_age_seconds", ())] == 0
    assert found[("videobridge_leader_changes_total", ())] == 0  # the file store has no lease
    assert found[("videobridge_calls_by_type", (("call_type", "Default"),))] == 0
    assert found[("videobridge_webhook_state", (("state", "unknown"),))] == 1
    assert found[("videobridge_webhook_checks_total", (("outcome", "error"),))] == 0

    assert (await get_token(client, start_token(signer)))[0] == 200
    found = series(client)
    assert found[("videobridge_calls_by_type", (("call_type", "Default"),))] == 1
    assert found[("videobridge_calls_by_type", (("call_type", "Broadcast"),))] == 0
    assert 0 <= found[("videobridge_calls_starting_oldest_age_seconds", ())] < 120

    bridge = bridge_of(client)
    bridge.health.failing_since = bridge.health._monotonic() - 3600  # Daily silent for an hour
    assert series(client)[("videobridge_ready", ())] == 0
    async with client.get("/readyz") as resp:
        assert resp.status == 503 and (await resp.json())["checks"]["daily"] is False
    assert (await status(client))["ready"] is False and (await status(client))["daily"]["reachable"] is False
