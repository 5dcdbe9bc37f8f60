"""The call service's state machine against an in-memory Rooms: no HTTP, no emulator.

Each test runs in milliseconds; what is asserted is what a user (or OpenChat) would see: one
room and one message id per call, which notifications are queued, which calls end when.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ALICE, BOB, GROUP
from videobridge.auth import ClaimType, VideoCallClaims
from videobridge.call_results import DeclineOutcome, KeptBecause
from videobridge.calls import EMPTY_POLLS_TO_END, EXPIRY_MARGIN, CallService
from videobridge.chats import DirectChat, GroupChat, room_name
from videobridge.daily.errors import DailyNotFound
from videobridge.daily.tokens import TokenGrant
from videobridge.errors import NoMeetingToJoin
from videobridge.models import CallState, CallType, Initiator, NotificationKind
from videobridge.notifier import LoggingNotifier
from videobridge.outbox import Outbox
from videobridge.state.filestore import FileStore

GROUP_CHAT = GroupChat(GROUP)
DIRECT_CHAT = DirectChat(tuple(sorted((ALICE, BOB))))  # type: ignore[arg-type]
WHO = Initiator(username="alice", display_name=None, avatar_id=None)


@dataclass(frozen=True)
class Person:
    id: str
    user_id: str
    meeting_id: str | None = None


class FakeRooms:
    """Daily's rooms as a dict; `present` is what presence shows per room."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, Any]] = {}
        self.present: dict[str, list[Person]] = {}
        self.creates = 0
        self.deletes = 0

    async def create_room(self, name: str, *, privacy: str = "private", properties: Mapping[str, Any],
                          deadline: float | None = None) -> Any:
        await asyncio.sleep(0)  # a real await: concurrent starts interleave here
        self.creates += 1
        self.rooms[name] = dict(properties)

    async def update_room(self, name: str, *, properties: Mapping[str, Any], privacy: str | None = None,
                          deadline: float | None = None) -> Any:
        if name not in self.rooms:
            raise DailyNotFound(endpoint="POST /rooms/:name", status=404)
        self.rooms[name].update(properties)

    async def delete_room(self, name: str, *, deadline: float | None = None, slot: Any = None) -> bool:
        self.deletes += 1
        if self.rooms.pop(name, None) is None:
            raise DailyNotFound(endpoint="DELETE /rooms/:name", status=404)
        return True

    clock_offset: float | None = None

    @asynccontextmanager
    async def delete_slot(self) -> AsyncIterator[None]:
        yield None

    async def room_presence(self, name: str, *, deadline: float | None = None) -> list[Any]:
        return list(self.present.get(name, []))

    async def get_meeting(self, meeting_id: str, *, deadline: float | None = None) -> Any:
        raise DailyNotFound(endpoint="GET /meetings/:id", status=404)

    async def eject(self, name: str, session_ids: Sequence[str], *, deadline: float | None = None) -> list[str]:
        return list(session_ids)


class FakeMinter:
    async def mint(self, grant: TokenGrant) -> str:
        return f"token-for-{grant.user_id}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[CallService, FakeRooms, FileStore, Clock]]:
    store = FileStore(tmp_path / "state.json")
    store.open()
    clock = Clock()
    rooms = FakeRooms()
    outbox = Outbox(store=store, notifier=LoggingNotifier(), clock=clock)  # worker not run: we read the queue
    calls = CallService(store=store, rooms=rooms, minter=FakeMinter(), outbox=outbox, clock=clock,
                        start_grace=300.0, presence_max_age=0.0)
    yield calls, rooms, store, clock
    await calls.aclose()
    await store.aclose()


def claims(kind: ClaimType, user: str = ALICE, chat: Any = GROUP_CHAT, **extra: Any) -> VideoCallClaims:
    return VideoCallClaims(claim_type=kind, user_id=user, chat=chat, exp=2_000_000_000, **extra)


def ended_unheard(store: FileStore, message_id: int) -> bool:
    """The call's end was recorded: its start never got out, so start and end are both cancelled."""
    return all(n.message_id != message_id for n in store.outbox.values())


def queued(store: FileStore, kind: NotificationKind) -> list[int]:
    return [n.message_id for n in store.outbox.values() if n.kind is kind]


async def start(calls: CallService, chat: Any = GROUP_CHAT) -> int:
    grant = await calls.access(claims(ClaimType.START, chat=chat), WHO)
    return grant.message_id


async def test_twenty_concurrent_starts_make_one_room_and_one_call(world: Any) -> None:
    calls, rooms, store, _ = world
    grants = await asyncio.gather(*(calls.access(claims(ClaimType.START), WHO) for _ in range(20)))
    assert rooms.creates == 1
    assert len({g.message_id for g in grants}) == 1
    assert sorted(g.joining for g in grants) == [False] + [True] * 19
    assert queued(store, NotificationKind.START) == [grants[0].message_id] * len(queued(store, NotificationKind.START))
    assert len(store.calls) == 1


async def test_join_gets_the_running_call_and_without_one_there_is_nothing_to_join(world: Any) -> None:
    calls, rooms, _, _ = world
    with pytest.raises(NoMeetingToJoin):
        await calls.access(claims(ClaimType.JOIN, BOB), WHO)
    message_id = await start(calls)
    joined = await calls.access(claims(ClaimType.JOIN, BOB), WHO)
    assert (joined.message_id, joined.joining, joined.token) == (message_id, True, f"token-for-{BOB}")
    assert rooms.creates == 1


async def test_reconcile_marks_live_and_two_empty_polls_end_it(world: Any) -> None:
    calls, rooms, store, _ = world
    message_id = await start(calls)
    room = room_name(GROUP_CHAT)
    await calls.reconcile({room: 1}, {room: "meeting-1"})
    assert store.calls[room].state is CallState.LIVE and store.calls[room].meeting_id == "meeting-1"
    for _ in range(EMPTY_POLLS_TO_END - 1):
        await calls.reconcile({})
        await calls.drain()
    assert room in store.calls and not queued(store, NotificationKind.END)
    await calls.reconcile({})
    await calls.drain()
    assert room not in store.calls and room not in rooms.rooms
    assert ended_unheard(store, message_id)


async def test_a_call_nobody_joins_ends_after_the_grace_and_any_call_at_expiry(world: Any) -> None:
    calls, _, store, clock = world
    await start(calls)
    room = room_name(GROUP_CHAT)
    await calls.reconcile({})
    await calls.drain()
    assert room in store.calls  # still within the grace, and never LIVE: empty polls do not count
    clock.now += 301
    await calls.reconcile({})
    await calls.drain()
    assert room not in store.calls
    await start(calls)
    await calls.reconcile({room: 1})
    clock.now = store.calls[room].room_exp + EXPIRY_MARGIN
    await calls.reconcile({room: 1})  # people still in it: expiry ends it all the same
    await calls.drain()
    assert room not in store.calls


async def test_meeting_ended_ends_the_call_of_its_meeting_only(world: Any) -> None:
    calls, _, store, _ = world
    await start(calls)
    room = room_name(GROUP_CHAT)
    await calls.reconcile({room: 1}, {room: "meeting-1"})
    assert not await calls.on_meeting_ended(room, {"meeting_id": "meeting-0"})  # an earlier meeting's
    assert await calls.on_meeting_ended(room, {"meeting_id": "meeting-1"})
    await calls.drain()
    assert room not in store.calls


async def test_end_meeting_ends_with_one_present_and_keeps_with_two(world: Any) -> None:
    calls, rooms, store, _ = world
    message_id = await start(calls)
    room = room_name(GROUP_CHAT)
    rooms.present[room] = [Person("s1", ALICE), Person("s2", BOB)]
    kept = await calls.request_end(claims(ClaimType.END))
    assert (kept.ended, kept.kept, kept.participants) == (False, KeptBecause.OTHERS_PRESENT, 2)
    assert store.calls[room].state is not CallState.ENDING
    rooms.present[room] = [Person("s1", ALICE)]
    ended = await calls.request_end(claims(ClaimType.END))
    assert ended.ended and ended_unheard(store, message_id)
    await calls.drain()
    assert room not in store.calls
    again = await calls.request_end(claims(ClaimType.END))
    assert again.kept is KeptBecause.NO_CALL


async def test_a_direct_decline_ends_the_call(world: Any) -> None:
    calls, _, store, _ = world
    message_id = await start(calls, DIRECT_CHAT)
    outcome = await calls.decline(claims(ClaimType.DECLINE, BOB, DIRECT_CHAT, message_id=message_id))
    assert outcome is DeclineOutcome.ENDED
    await calls.drain()
    assert room_name(DIRECT_CHAT) not in store.calls and ended_unheard(store, message_id)


async def test_admin_end_and_a_late_signal_for_the_earlier_call_ends_nothing(world: Any) -> None:
    calls, _, store, _ = world
    first = await start(calls)
    room = room_name(GROUP_CHAT)
    assert await calls.end_call(room, "admin")
    assert room not in store.calls
    second = await start(calls)
    assert second != first
    assert not await calls.end_call(room, "empty", message_id=first)  # a late webhook or retry
    calls.end_soon(room, "meeting.ended", first)
    await calls.drain()
    assert store.calls[room].message_id == second and store.calls[room].state is CallState.STARTING


async def test_a_start_while_the_old_room_is_deleting_reuses_it(world: Any) -> None:
    calls, rooms, store, _ = world
    first = await start(calls)
    room = room_name(GROUP_CHAT)
    assert await calls.end_call(room, "admin", message_id=first, background_delete=True)
    second = await start(calls)  # the delete has not run yet: the room is refreshed, not created
    await calls.drain()
    assert rooms.creates == 1 and room in rooms.rooms
    assert store.calls[room].message_id == second and store.calls[room].call_type is CallType.DEFAULT
