"""Fault injection through the Daily emulator and the fake IC.

Daily 5xx, 429 storms, timeouts and slow answers; IC outages, hangs and 5xx. The service must answer
within its deadlines (starts: 10 s of Daily retries; end_meeting's room check: 1.5 s, as decline's and leave's; Daily calls in
general: 20 s) with clear JSON errors, keep joins working (they need no Daily call), change no state
on failure, and recover by itself once the fault is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakeic import FakeIC
from helpers import ALICE, BOB, GROUP, bridge_of, end_token, eventually, get_token, join_token, start_token
from ic_support import OPERATOR, OPERATOR_PEM

from videobridge.models import CallState, CanisterKind, NotificationKind
from videobridge.notifier import END_METHOD, START_METHOD, IcNotifier, Success, load_identity

START_DEADLINE = 10.0  # CallService's Daily budget for a start, retries included
SLACK = 1.5


async def timed(coro: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = await coro
    return time.monotonic() - started, result


async def end_meeting(client, jwt: str) -> tuple[int, dict[str, Any]]:
    async with client.post("/room/end_meeting", headers={"x-auth-jwt": jwt}) as resp:
        return resp.status, await resp.json()


def assert_daily_error(status: int, body: dict[str, Any]) -> None:
    assert status in (502, 503), (status, body)
    assert body["statusCode"] == status and "Daily" in body["message"], body


# ---- Daily ------------------------------------------------------------------------------------------

async def test_daily_5xx_blips_are_retried_invisibly(bridge, signer, emulator):
    emulator.fail_next("POST /rooms", 503, times=2)
    elapsed, (status, body) = await timed(get_token(bridge, start_token(signer)))
    assert status == 200 and body["joining"] is False
    assert emulator.requests["POST /rooms"] == 3
    assert elapsed < 2.0


async def test_daily_5xx_storm_and_timeout_answer_within_the_deadline_then_recover(bridge, signer, emulator, notifier):
    """One start meets a Daily that never answers, two others a 5xx storm: 503s within the start budget."""
    b = bridge_of(bridge)
    emulator.hang_next("POST /rooms", seconds=60)
    emulator.fail_next("POST /rooms", 500, times=10_000)
    chats = [{"Group": GROUP}, {"Direct": BOB}, {"Channel": [GROUP, 7]}]
    results = await asyncio.gather(*(timed(get_token(bridge, start_token(signer, ALICE, chat))) for chat in chats))
    for elapsed, (status, body) in results:
        assert_daily_error(status, body)
        assert elapsed <= START_DEADLINE + SLACK, elapsed
    assert emulator.requests["POST /rooms"] >= 6, "5xx answers are retried"
    assert not b.store.calls and not b.store.outbox and not notifier.sent, "a failed start changes nothing"
    # Joins need no Daily call; /readyz does not flap on a short outage.
    status, _ = await get_token(bridge, join_token(signer))
    assert status == 400  # no call: "no meeting to join", not a 5xx
    async with bridge.get("/readyz") as resp:
        assert resp.status == 200
    emulator.clear_faults()
    for chat in chats:  # recovered by itself: no restart
        status, body = await get_token(bridge, start_token(signer, ALICE, chat))
        assert status == 200 and body["joining"] is False
    assert len(b.store.calls) == 3


async def test_429_storm_honours_retry_after_within_the_deadline(bridge, signer, emulator):
    emulator.fail_next("POST /rooms", 429, times=3, retry_after=0.5)
    elapsed, (status, _) = await timed(get_token(bridge, start_token(signer)))
    assert status == 200
    assert emulator.requests["POST /rooms"] == 4
    assert 1.5 <= elapsed < 4.0, elapsed


async def test_429_asking_for_more_than_the_deadline_fails_fast(bridge, signer, emulator):
    emulator.fail_next("POST /rooms", 429, times=100, retry_after=60)
    elapsed, (status, body) = await timed(get_token(bridge, start_token(signer)))
    assert_daily_error(status, body)
    assert status == 503 and elapsed < 1.0, "no point waiting 60 s inside a 10 s budget"
    emulator.clear_faults()
    status, _ = await get_token(bridge, start_token(signer))
    assert status == 200


async def test_slow_daily_slows_starts_but_not_joins(bridge, signer, emulator):
    status, _ = await get_token(bridge, start_token(signer))
    assert status == 200
    emulator.latency = 1.5  # long enough that a join waiting for Daily cannot hide in load noise
    elapsed, (status, _) = await timed(get_token(bridge, start_token(signer, ALICE, {"Direct": BOB})))
    assert status == 200 and elapsed >= 1.5
    joins = await asyncio.gather(*(timed(get_token(bridge, join_token(signer))) for _ in range(20)))
    assert all(status == 200 for _, (status, _) in joins)
    assert max(elapsed for elapsed, _ in joins) < 1.0, "joins must not wait for Daily"


async def test_daily_down_end_meeting_answers_within_its_budget_and_joins_keep_working(bridge, signer, emulator):
    _, started = await get_token(bridge, start_token(signer))
    room = started["roomName"]
    emulator.fail_next(None, 503, times=100_000)
    elapsed, (status, body) = await timed(end_meeting(bridge, end_token(signer)))
    assert status == 200 and body["ended"] is False and "could not check" in body["reason"]
    assert elapsed <= 5.0 + SLACK
    assert bridge_of(bridge).store.calls[room].state is CallState.STARTING, "nothing ended on a guess"
    status, joined = await get_token(bridge, join_token(signer))
    assert status == 200 and joined["roomName"] == room
    emulator.clear_faults()
    status, body = await end_meeting(bridge, end_token(signer))
    assert status == 200 and body["ended"] is True
    await bridge_of(bridge).calls.drain()  # the room delete runs after the answer
    assert room not in bridge_of(bridge).store.calls


async def test_room_delete_storm_keeps_the_end_and_the_poller_finishes_it(make_bridge, signer, emulator, notifier):
    """DELETE failing for longer than its 20 s budget: the end is durable at once, the room goes later."""
    client = await make_bridge(presence_interval=0.2)
    b = bridge_of(client)
    _, started = await get_token(client, start_token(signer))
    room, message_id = started["roomName"], int(started["messageId"])
    await eventually(lambda: any(n.kind is NotificationKind.START for n in notifier.sent), timeout=10.0,
                     what="start delivered")
    emulator.fail_next("DELETE /rooms/:name", 500, times=100_000)
    task = asyncio.create_task(timed(end_meeting(client, end_token(signer))))
    # The end notification is queued (durably) long before Daily gives up.
    queued = await eventually(lambda: any(n.kind is NotificationKind.END and n.message_id == message_id
                                          for n in notifier.sent), timeout=2, what="end notification")
    assert queued < 1.0
    elapsed, (status, body) = await task
    assert status == 200 and body["ended"] is True
    assert elapsed <= 1.0, f"end_meeting waits for the durable end only, not for Daily: {elapsed}"
    assert b.store.calls[room].state is CallState.ENDING
    emulator.clear_faults()
    await eventually(lambda: room not in b.store.calls, timeout=10, what="room delete retried by the poller")
    assert emulator.room(room) is None
    assert sum(1 for n in notifier.sent if n.kind is NotificationKind.END) == 1, "the retry does not notify twice"


async def test_poller_rides_out_a_presence_outage(make_bridge, signer, emulator, notifier):
    client = await make_bridge(presence_interval=0.05, daily_hook_hmac=None)
    b = bridge_of(client)
    _, started = await get_token(client, start_token(signer))
    room = started["roomName"]
    emulator.fail_next("GET /presence", 503, times=100_000)
    session = emulator.join(room, started["token"])
    await eventually(lambda: b.poller.failures >= 2, timeout=10.0, what="failed polls")
    assert b.store.calls[room].state is CallState.STARTING
    emulator.clear_faults()
    await eventually(lambda: b.store.calls[room].state is CallState.LIVE, timeout=15, what="poller recovered")
    assert b.poller.failures == 0
    emulator.leave(room, session)
    await eventually(lambda: room not in b.store.calls, timeout=15, what="empty call ended")


# ---- the IC -----------------------------------------------------------------------------------------

@pytest.fixture(name="fake")
def _fake() -> Any:
    with FakeIC(operators={OPERATOR}) as fake:
        fake.add_canister(GROUP, CanisterKind.GROUP)
        yield fake


@pytest.fixture(name="ic_bridge")
async def _ic_bridge(make_bridge, fake) -> AsyncIterator[Any]:
    notifier = IcNotifier(ic_url=fake.url, identity=load_identity(OPERATOR_PEM), request_timeout=1.0, deadline=2.0,
                          root_key=fake.root_key_der)
    yield await make_bridge(notifier=notifier)


def ic_methods(fake: FakeIC, message_id: int) -> list[str]:
    with fake._lock:
        return [c.method for c in fake.calls if int(c.args["message_id"]) == message_id]


@pytest.mark.parametrize("outage", ["down", "hang", "http_503"])
async def test_ic_outage_never_blocks_calls_and_delivery_resumes_by_itself(ic_bridge, fake, signer, outage):
    b = bridge_of(ic_bridge)
    {"down": fake.go_down, "hang": fake.hang, "http_503": lambda: fake.fail_with(503)}[outage]()
    elapsed, (status, started) = await timed(get_token(ic_bridge, start_token(signer)))
    assert status == 200 and elapsed < 1.0, "the start answers without waiting for the IC"
    message_id = int(started["messageId"])
    status, _ = await get_token(ic_bridge, join_token(signer))
    assert status == 200
    await asyncio.sleep(1.5)  # at least one failed attempt, then a retry scheduled with backoff
    assert b.outbox.depth == 1 and not ic_methods(fake, message_id)
    fake.heal()
    took = await eventually(lambda: b.outbox.depth == 0, timeout=12, what="delivery after the IC came back")
    assert ic_methods(fake, message_id) == [START_METHOD], "delivered exactly once"
    assert took < 10


async def test_end_after_a_lost_ic_answer_still_reaches_the_ic(ic_bridge, fake, signer):
    b = bridge_of(ic_bridge)
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_first_answer(call: Any) -> Any:  # runs in the fake's handler thread
        if call.method == START_METHOD and not release.is_set():
            time.sleep(1.5)  # the IC executed the call; its answer comes after the notifier's 1 s timeout
        return Success()

    fake.reply = slow_first_answer
    _, started = await get_token(ic_bridge, start_token(signer))
    message_id = int(started["messageId"])
    await eventually(lambda: ic_methods(fake, message_id) == [START_METHOD], timeout=10.0,
                     what="start executed at the IC")
    # The notifier timed out: the start is back in the outbox, waiting for its retry.
    await eventually(lambda: b.outbox.depth == 1 and message_id not in b.outbox._in_flight, timeout=5,
                     what="start waiting for a retry")
    status, body = await end_meeting(ic_bridge, end_token(signer))
    assert status == 200 and body["ended"] is True
    loop.call_soon(release.set)
    await eventually(lambda: b.outbox.depth == 0, timeout=10, what="outbox drained")
    methods = ic_methods(fake, message_id)
    assert END_METHOD in methods, f"the IC executed the start but never hears the end: {methods}"


# ---- ends that outlive their call (slow Daily, late webhooks) ------------------------------------

async def test_a_retry_queued_for_the_old_call_does_not_end_the_new_one(bridge, signer, emulator, notifier):
    b = bridge_of(bridge)
    _, first = await get_token(bridge, start_token(signer))
    room = first["roomName"]
    emulator.hang_next("DELETE /rooms/:name", seconds=0.5)  # a slow delete keeps the old call "ending"
    ending = asyncio.create_task(end_meeting(bridge, end_token(signer)))
    await eventually(lambda: b.store.calls[room].state is CallState.ENDING, timeout=10.0, what="old call ending")
    starting = asyncio.create_task(get_token(bridge, start_token(signer, BOB)))  # waits for the room
    await asyncio.sleep(0.05)
    await b.poller.poll_once()  # sees the ending call and queues a retry of its end
    assert (await ending)[1]["ended"] is True
    status, second = await starting
    assert status == 200 and second["joining"] is False and second["messageId"] != first["messageId"]
    await b.calls.drain()
    assert room in b.store.calls and b.store.calls[room].message_id == int(second["messageId"]), \
        "the new call was ended by the old call's retry"


async def test_a_late_meeting_ended_of_the_previous_meeting_does_not_end_a_new_call(bridge, signer, emulator):
    import json as _json

    from helpers import signed_hook

    b = bridge_of(bridge)
    _, first = await get_token(bridge, start_token(signer))
    room = first["roomName"]
    old_meeting_start = time.time()
    assert (await end_meeting(bridge, end_token(signer)))[1]["ended"] is True
    await asyncio.sleep(0.05)
    _, second = await get_token(bridge, start_token(signer))
    assert second["joining"] is False
    event = _json.dumps({"version": "1.0.0", "type": "meeting.ended", "id": "met-end-old",
                         "payload": {"room": room, "meeting_id": "old", "start_ts": old_meeting_start,
                                     "end_ts": old_meeting_start + 0.01}}).encode()
    async with bridge.post("/room/hook", data=event, headers=signed_hook(event)) as resp:
        assert resp.status == 200
    await b.calls.drain()
    assert room in b.store.calls, "the new call was ended by the previous meeting's late meeting.ended"
