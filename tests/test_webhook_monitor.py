"""The daemon's webhook check and self-heal, against the Daily emulator over real HTTP.

The emulator probes the webhook URL on every update, as Daily does, so a reactivation only
succeeds when the bridge really answers at that URL. The breaker tripped by a bridge that was
really down (a `serve` process stopped and started again) is in test_webhook_selfheal.py.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import structlog
from aiohttp.test_utils import TestClient
from conftest import BridgeFactory
from helpers import HOOK_SECRET, bridge_of
from prometheus_client.parser import text_string_to_metric_families

from videobridge.daily.protocol import EVENT_TYPES
from videobridge.emulator import DailyEmulator
from videobridge.webhooks.ownership import points_here

OURS = base64.b64encode(HOOK_SECRET).decode()


def series(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = bridge_of(client).metrics.render()[0].decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def hook_state(client: TestClient) -> str:
    states = [dict(labels)["state"] for (name, labels), value in series(client).items()
              if name == "videobridge_webhook_state" and value == 1]
    assert len(states) == 1, states
    return states[0]


async def register(client: TestClient, *, secret: str = OURS, path: str = "/room/hook") -> Any:
    daily = bridge_of(client).daily
    return await daily.create_webhook(url=str(client.make_url(path)), hmac=secret, event_types=EVENT_TYPES,
                                      retry_type="circuit-breaker")


def trip(emulator: DailyEmulator) -> Any:
    (record,) = emulator.dispatcher.hooks.values()
    record.state, record.failed_count = "FAILED", 3
    return record


async def test_a_failed_webhook_that_points_here_is_reactivated_and_logged(make_bridge: BridgeFactory,
                                                                            emulator: DailyEmulator) -> None:
    client = await make_bridge()
    bridge = bridge_of(client)
    assert hook_state(client) == "unknown"  # not checked yet
    await register(client)
    status = await bridge.webhook.check_once()
    assert status.state == "ACTIVE" and status.ours is True and hook_state(client) == "ACTIVE"

    record = trip(emulator)
    with structlog.testing.capture_logs() as logs:
        status = await bridge.webhook.check_once()
    assert record.state == "ACTIVE" and record.failed_count == 0  # Daily probed us and took it back
    assert status.state == "ACTIVE" and status.reactivated_at is not None
    (line,) = [entry for entry in logs if entry["event"] == "webhook_reactivated"]
    assert line["was"] == "FAILED" and line["state"] == "ACTIVE" and line["log_level"] == "warning"
    assert OURS not in repr(logs)
    found = series(client)
    assert found[("videobridge_webhook_reactivations_total", (("outcome", "ok"),))] == 1
    assert found[("videobridge_webhook_checks_total", (("outcome", "ok"),))] == 2
    assert hook_state(client) == "ACTIVE"
    assert [e.event for e in bridge.events.last(10)] == ["webhook_reactivated"]


async def test_self_heal_off_leaves_it_failed_and_says_so_once(make_bridge: BridgeFactory,
                                                               emulator: DailyEmulator) -> None:
    client = await make_bridge(webhook_autoheal=False)
    await register(client)
    record = trip(emulator)
    with structlog.testing.capture_logs() as logs:
        await bridge_of(client).webhook.check_once()
        await bridge_of(client).webhook.check_once()
    assert record.state == "FAILED" and hook_state(client) == "FAILED"
    warnings = [entry for entry in logs if entry["event"] == "webhook_not_active"]
    assert len(warnings) == 1 and "VIDEOBRIDGE_WEBHOOK_AUTOHEAL" in warnings[0]["left_alone"]
    assert series(client)[("videobridge_webhook_reactivations_total", (("outcome", "ok"),))] == 0
    assert series(client)[("videobridge_webhook_failed_count", ())] == 3


async def test_someone_elses_webhook_is_left_alone(make_bridge: BridgeFactory, emulator: DailyEmulator) -> None:
    client = await make_bridge()
    await register(client, secret=base64.b64encode(b"another deployment's secret!").decode())
    record = trip(emulator)
    status = await bridge_of(client).webhook.check_once()
    assert status.ours is False and record.state == "FAILED" and hook_state(client) == "FAILED"
    assert "points elsewhere" in bridge_of(client).events.last(1)[0].detail


def test_ours_is_decided_by_the_secret_then_the_path() -> None:
    from videobridge.daily.models import Webhook

    def hook(url: str, secret: str | None) -> Webhook:
        return Webhook(uuid="u", url=url, state="FAILED", failed_count=3, event_types=EVENT_TYPES,
                       retry_type="circuit-breaker", hmac=secret)

    assert points_here(hook("https://elsewhere.example/x", OURS), HOOK_SECRET)  # Daily signs for us
    assert not points_here(hook("https://bridge.example/room/hook", "b3RoZXI="), HOOK_SECRET)
    assert points_here(hook("https://bridge.example/room/hook/", None), HOOK_SECRET)  # secret not shown
    assert not points_here(hook("https://other.example/hooks/daily", None), HOOK_SECRET)


async def test_a_reactivation_daily_refuses_is_counted_and_retried_next_check(make_bridge: BridgeFactory,
                                                                               emulator: DailyEmulator) -> None:
    client = await make_bridge()
    await register(client)
    record = trip(emulator)
    record.url = str(client.make_url("/no/such/path"))  # Daily's probe gets a 404: it refuses
    status = await bridge_of(client).webhook.check_once()
    assert record.state == "FAILED" and status.state == "FAILED" and status.reactivation_error
    assert "HTTP 400" in status.reactivation_error or "400" in status.reactivation_error
    assert series(client)[("videobridge_webhook_reactivations_total", (("outcome", "failed"),))] == 1
    record.url = str(client.make_url("/room/hook"))  # fixed: the next check heals it
    status = await bridge_of(client).webhook.check_once()
    assert record.state == "ACTIVE" and status.state == "ACTIVE" and status.reactivation_error is None


async def test_daily_down_keeps_the_last_state_and_counts_the_failed_check(make_bridge: BridgeFactory,
                                                                            emulator: DailyEmulator) -> None:
    client = await make_bridge()
    await register(client)
    await bridge_of(client).webhook.check_once()
    bridge_of(client).webhook.check_deadline = 1.0
    emulator.fail_next("GET /webhooks", 503, times=50)
    status = await bridge_of(client).webhook.check_once()
    assert status.state == "ACTIVE" and status.error and hook_state(client) == "ACTIVE"
    assert series(client)[("videobridge_webhook_checks_total", (("outcome", "error"),))] == 1
    emulator.clear_faults()


async def test_none_registered_and_no_secret(make_bridge: BridgeFactory, emulator: DailyEmulator,
                                             tmp_path: Path) -> None:
    client = await make_bridge()
    assert (await bridge_of(client).webhook.check_once()).state == "missing"
    assert hook_state(client) == "missing"
    quiet = await make_bridge(daily_hook_hmac=None, state_path=tmp_path / "second.json")
    before = emulator.requests.get("GET /webhooks", 0)
    assert (await bridge_of(quiet).webhook.check_once()).state == "disabled"
    assert emulator.requests.get("GET /webhooks", 0) == before  # no Daily call when webhooks are off
    assert hook_state(quiet) == "disabled" and not bridge_of(quiet).webhook.enabled


async def test_the_admin_status_carries_the_webhook_and_needs_the_token(make_bridge: BridgeFactory,
                                                                       tmp_path: Path) -> None:
    from helpers import ADMIN_TOKEN

    client = await make_bridge()
    await register(client)
    await bridge_of(client).webhook.check_once()
    async with client.get("/room/status") as resp:
        assert resp.status == 401 and (await resp.json())["statusCode"] == 401
    async with client.get("/room/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["webhook"]["state"] == "ACTIVE" and body["webhook"]["ours"] is True
    assert body["webhook"]["checkInterval"] == 300.0 and body["webhook"]["autoheal"] is True
    assert OURS not in str(body)
    closed = await make_bridge(admin_token=None, state_path=tmp_path / "second.json")
    async with closed.get("/room/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        assert resp.status == 404
