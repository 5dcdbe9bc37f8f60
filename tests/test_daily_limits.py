"""Daily's REST rate limits: the emulator enforces them (429 rate-limit-error), the client keeps
to them, and a mass end (200 calls at once, as after an outage) sees zero 429s."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from helpers import ALICE, COMMUNITY, RecordingNotifier

from videobridge.calls import CallService
from videobridge.chats import ChannelChat, room_name
from videobridge.daily import DailyClient, TokenMinter
from videobridge.emulator import DailyEmulator
from videobridge.models import Call, CallState, CallType, Initiator, NotificationKind
from videobridge.outbox import Outbox
from videobridge.state.filestore import Change, FileStore

API_KEY = "limits-api-key-0123456789abcdef0123456789abcdef"
# The mass end runs Daily's real limits on a clock this many times faster than the wall clock
# (both the emulator's and the client's), so 200 deletes take ~12 s instead of ~2 minutes.
# VIDEOBRIDGE_MASS_END_SPEED=1 runs it in real time.
SPEED = float(os.environ.get("VIDEOBRIDGE_MASS_END_SPEED", "10"))


class FastClock:
    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._origin = time.monotonic()

    def __call__(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)


@pytest.fixture(name="emu")
async def _emu() -> AsyncIterator[DailyEmulator]:
    emu = DailyEmulator(api_key=API_KEY)
    await emu.start()
    yield emu
    await emu.stop()


async def test_emulator_answers_429_beyond_20_per_second(emu: DailyEmulator) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        async def get() -> int:
            async with http.get(emu.url + "/presence") as resp:
                body = await resp.json()
                return resp.status if resp.status != 429 else (429 if body["error"] == "rate-limit-error" else -1)

        statuses = await asyncio.gather(*(get() for _ in range(25)))
    assert statuses.count(200) == 20 and statuses.count(429) == 5
    assert emu.rate_limited == 5


async def test_emulator_limits_deletes_to_2_per_second(emu: DailyEmulator) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        async def delete(i: int) -> int:
            async with http.delete(f"{emu.url}/rooms/r{i}") as resp:
                return resp.status

        statuses = await asyncio.gather(*(delete(i) for i in range(4)))
    assert sorted(statuses) == [404, 404, 429, 429]


async def test_a_burst_from_the_client_stays_inside_the_limits(emu: DailyEmulator) -> None:
    """A leaky bucket of 20/s lets 40 through in the first second; the windows do not."""
    async with DailyClient(api_key=API_KEY, base_url=emu.url) as daily:
        started = time.monotonic()
        await asyncio.gather(*(daily.presence() for _ in range(30)))
        assert time.monotonic() - started >= 1.0  # 20 at once, the rest a second after the answers
    assert emu.rate_limited == 0 and emu.requests["GET /presence"] == 30


def _call(i: int, now: float) -> Call:
    chat = ChannelChat(COMMUNITY, i)
    return Call(room_name=room_name(chat), message_id=1000 + i, chat=chat, call_type=CallType.DEFAULT,
                started_by=ALICE, initiator=Initiator(username="alice"), is_diamond=False,
                state=CallState.LIVE, created_at=now, room_exp=int(now) + 3600)


async def _until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = check()
        if isinstance(done, Awaitable):
            done = await done
        if done:
            return
        if time.monotonic() > deadline:
            raise AssertionError("not done in time")
        await asyncio.sleep(0.1)


async def test_mass_end_of_200_calls_sees_no_429(tmp_path: Path) -> None:
    clock = FastClock(SPEED)
    emu = DailyEmulator(api_key=API_KEY, monotonic=clock)
    await emu.start()
    store = FileStore(tmp_path / "state.json")
    store.open()
    daily = DailyClient(api_key=API_KEY, base_url=emu.url, monotonic=clock, sleep=clock.sleep)
    notifier = RecordingNotifier()
    outbox = Outbox(store=store, notifier=notifier)
    calls = CallService(store=store, rooms=daily, minter=TokenMinter(api_key=API_KEY, domain_id="d", client=None),
                        outbox=outbox)
    try:
        now = time.time()
        batch = [_call(i, now) for i in range(200)]
        for call in batch:  # left from before the outage: live calls whose rooms are now empty
            emu.store.create(call.room_name, "private", {"exp": call.room_exp})
        await store.commit(Change(put_calls=batch))
        started = clock()
        await calls.reconcile({})
        await calls.reconcile({})  # the second empty poll ends all 200
        await calls.drain()
        elapsed = clock() - started
        assert not store.calls and not emu.rooms, "every call dropped, every room deleted"
        assert emu.requests["DELETE /rooms/:name"] == 200
        assert emu.rate_limited == 0, "Daily would have answered 429"
        assert {n.message_id for n in store.outbox.values() if n.kind is NotificationKind.END} == \
            {c.message_id for c in batch}
        # 50 per 30 s: the 200th delete cannot leave before three full windows have passed
        assert elapsed >= 90
    finally:
        await calls.aclose()
        await store.aclose()
        await daily.close()
        await emu.stop()
