"""The call service: the single owner of call state and its state machine.

starting -> live (seen in Daily) -> ending (end notifications queued, room being deleted) ->
removed. HTTP handlers, webhooks and the presence poller all go through here; each room has
an asyncio lock so simultaneous starts create one room and one message id.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from videobridge.auth import ClaimType, VideoCallClaims
from videobridge.call_exits import PRESENCE_DEADLINE, CallExits
from videobridge.chats import room_name
from videobridge.daily.errors import (
    DailyError,
    DailyNotFound,
    DailyRateLimited,
    DailyRoomExists,
    DailyUnavailable,
)
from videobridge.daily.tokens import TokenGrant
from videobridge.errors import NoMeetingToJoin, UpstreamError
from videobridge.events import EventSink
from videobridge.meetings import MeetingBook
from videobridge.models import Call, CallState, CallType, Initiator
from videobridge.outbox import Outbox
from videobridge.presence_reads import PresenceReads
from videobridge.roomconfig import reuse_properties, room_lifetime, room_properties
from videobridge.store import Change, StateStore

log = structlog.get_logger("videobridge.calls")

EMPTY_POLLS_TO_END = 2
EXPIRY_MARGIN = 5.0  # Daily ejects at exp; give its presence a moment to agree


class Rooms(Protocol):
    async def create_room(self, name: str, *, privacy: str = ..., properties: Mapping[str, Any],
                          deadline: float | None = None) -> Any: ...
    async def update_room(self, name: str, *, properties: Mapping[str, Any], privacy: str | None = None,
                          deadline: float | None = None) -> Any: ...
    async def delete_room(self, name: str, *, deadline: float | None = None, slot: Any = None) -> bool: ...
    def delete_slot(self) -> AbstractAsyncContextManager[Any]: ...
    async def room_presence(self, name: str, *, deadline: float | None = None) -> list[Any]: ...
    async def get_meeting(self, meeting_id: str, *, deadline: float | None = None) -> Any: ...
    async def eject(self, name: str, session_ids: Sequence[str], *, deadline: float | None = None) -> list[str]: ...


class Minter(Protocol):
    async def mint(self, grant: TokenGrant) -> str: ...


class CallObserver(Protocol):
    def call_started(self) -> None: ...
    def call_ended(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AccessGrant:
    token: str
    room_name: str
    message_id: int
    joining: bool

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "roomName": self.room_name,
                "messageId": str(self.message_id), "joining": self.joining}


def new_message_id() -> int:
    while True:
        value = secrets.randbits(64)
        if value:
            return value


def upstream(exc: DailyError) -> UpstreamError:
    status = 503 if isinstance(exc, (DailyUnavailable, DailyRateLimited)) else 502
    return UpstreamError(f"Daily: {exc}", status=status)


class CallService:
    def __init__(self, *, store: StateStore, rooms: Rooms, minter: Minter, outbox: Outbox,
                 start_grace: float = 300.0, start_deadline: float = 10.0,
                 clock: Callable[[], float] = time.time, observer: CallObserver | None = None,
                 events: EventSink | None = None, presence_max_age: float = 2.0) -> None:
        self._store = store
        self._rooms = rooms
        self._minter = minter
        self._outbox = outbox
        self._start_grace = start_grace
        self._start_deadline = start_deadline
        self._clock = clock
        self._observer = observer
        self._events = events  # EventLog for GET /room/status (None: not recorded)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._empty_polls: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ending: set[tuple[str, str, int]] = set()
        # end_meeting, decline and leave read presence through here: one Daily read per room and burst
        self.presence: PresenceReads[list[Any]] = PresenceReads(
            lambda room, deadline: rooms.room_presence(room, deadline=deadline), max_age=presence_max_age)
        self._exits = CallExits(store=store, rooms=rooms, outbox=outbox, presence=self.presence,
                                end_call=self.end_call)
        self.meetings = MeetingBook()
        self.presence_lists_hidden = False  # learnt once presence shows a Broadcast viewer

    def _clock_offset(self) -> float | None:
        """Daily's wall clock minus ours, as far as Daily's answers have told it."""
        offset = getattr(self._rooms, "clock_offset", None)
        return float(offset) if isinstance(offset, (int, float)) else None

    @property
    def calls(self) -> Mapping[str, Call]:
        return self._store.calls

    @asynccontextmanager
    async def _room_lock(self, room: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(room, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[room] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock_now, users_now = self._locks[room]
            if users_now <= 1:
                del self._locks[room]
            else:
                self._locks[room] = (lock_now, users_now - 1)

    # -- start and join ----------------------------------------------------------------------
    async def access(self, claims: VideoCallClaims, initiator: Initiator) -> AccessGrant:
        room = room_name(claims.chat)
        call = self._store.calls.get(room)
        if call is not None and call.state is not CallState.ENDING:
            return await self._grant(call, claims.user_id, initiator, joining=True)
        if claims.claim_type is not ClaimType.START:
            raise NoMeetingToJoin()
        async with self._room_lock(room):
            call = self._store.calls.get(room)
            if call is not None and call.state is not CallState.ENDING:
                return await self._grant(call, claims.user_id, initiator, joining=True)
            call = await self._start(room, claims, initiator)
        return await self._grant(call, claims.user_id, initiator, joining=False)

    async def _start(self, room: str, claims: VideoCallClaims, initiator: Initiator) -> Call:
        now = self._clock()
        exp = int(now) + room_lifetime(claims.is_diamond)
        # nbf in Daily's clock when it runs behind ours: the room must open at once
        nbf = int(now + min(0.0, self._clock_offset() or 0.0))
        properties = room_properties(claims.call_type, nbf=nbf, exp=exp)
        try:
            try:
                reused = await self._reuse_ending_room(room, claims.call_type, nbf=nbf, exp=exp)
                if not reused:
                    await self._rooms.create_room(room, properties=properties, deadline=self._start_deadline)
            except DailyRoomExists as taken:
                # Left over from an earlier call: refresh it so its old expiry cannot cut this call
                # short, reset what an earlier call type set, and make sure it is private.
                existing = getattr(taken.room, "config", None) or {}
                await self._rooms.update_room(room, privacy="private", deadline=self._start_deadline,
                                              properties=reuse_properties(claims.call_type, nbf=nbf,
                                                                          exp=exp, existing=existing))
                reused = True
        except DailyError as exc:
            log.warning("call_start_failed", room=room, error=str(exc))
            raise upstream(exc) from None
        call = Call(room_name=room, message_id=new_message_id(), chat=claims.chat,
                    call_type=claims.call_type, started_by=claims.user_id, initiator=initiator,
                    is_diamond=claims.is_diamond, state=CallState.STARTING, created_at=now,
                    room_exp=exp)
        await self._store.commit(Change(put_calls=[call], add_notifications=self._outbox.plan_start(call)))
        self._outbox.wake()
        self._empty_polls.pop(room, None)
        if self._observer:
            self._observer.call_started()
        log.info("call_started", room=room, message_id=str(call.message_id), chat_kind=call.chat.kind.value,
                 call_type=call.call_type.value, room_reused=reused, room_exp=exp)
        self._record("call_started", room, f"{call.call_type.value}, {call.chat.kind.value}")
        return call

    async def _reuse_ending_room(self, room: str, call_type: CallType, *, nbf: int, exp: int) -> bool:
        """The previous call's room is still there (its delete waits for Daily's 2/s): refresh it
        in one call instead of a create that Daily refuses plus a lookup and an update."""
        previous = self._store.calls.get(room)
        if previous is None or previous.state is not CallState.ENDING:
            return False
        try:
            await self._rooms.update_room(room, privacy="private", deadline=self._start_deadline,
                                          properties=reuse_properties(call_type, nbf=nbf, exp=exp))
        except DailyNotFound:
            return False  # deleted after all: create it
        return True

    async def _grant(self, call: Call, user_id: str, initiator: Initiator, *, joining: bool) -> AccessGrant:
        grant = TokenGrant(room_name=call.room_name, user_id=user_id, user_name=initiator.username,
                           owner=user_id == call.started_by,
                           broadcast=call.call_type is CallType.BROADCAST, exp=call.room_exp,
                           audio_only=call.call_type is CallType.AUDIO)
        try:
            token = await self._minter.mint(grant)
        except DailyError as exc:
            raise upstream(exc) from None
        return AccessGrant(token=token, room_name=call.room_name, message_id=call.message_id, joining=joining)

    # -- ending ------------------------------------------------------------------------------
    async def request_end(self, claims: VideoCallClaims) -> dict[str, Any]:
        """`POST /room/end_meeting`: end only if nobody else is still in the room."""
        room = room_name(claims.chat)
        call = self._store.calls.get(room)
        if call is None or call.state is CallState.ENDING:
            return {"ended": False, "roomName": room, "reason": "no call in progress"}
        try:
            people = await self.presence.get(room, tag=call.message_id, deadline=PRESENCE_DEADLINE)
        except DailyError as exc:
            log.warning("end_meeting_presence_failed", room=room, error=str(exc))
            return {"ended": False, "roomName": room,
                    "reason": "could not check the room; the call ends when it is empty"}
        present = len(people)
        if call.call_type is CallType.BROADCAST and any(
                getattr(p, "user_id", None) not in (None, call.started_by) for p in people):
            self.presence_lists_hidden = True  # every non-starter in a Broadcast joins hidden
        if present > 1:
            return {"ended": False, "roomName": room, "participants": present,
                    "reason": "others are still in the call"}
        if call.call_type is CallType.BROADCAST and await self._viewers_may_remain(call, people):
            return {"ended": False, "roomName": room, "participants": present,
                    "reason": "viewers may still be watching; the broadcast ends when its room is empty"}
        # the answer waits for the durable end, not for Daily's 2 req/s room deletes
        await self.end_call(room, "end_meeting", message_id=call.message_id, background_delete=True)
        return {"ended": True, "roomName": room}

    async def _viewers_may_remain(self, call: Call, people: list[Any]) -> bool:
        """Presence may not list hidden Broadcast viewers (undocumented), so ask the meetings API:
        a meeting still going on that has held more people than presence shows may have viewers."""
        if self.presence_lists_hidden:
            return False  # presence has shown hidden viewers before: what it shows is everyone
        meeting_id = next((p.meeting_id for p in people if getattr(p, "meeting_id", None)), call.meeting_id)
        if meeting_id is None:
            return False  # no meeting known: nobody was ever seen in the room
        try:
            meeting = await self._rooms.get_meeting(meeting_id, deadline=5.0)
        except DailyError as exc:  # 404 too: a meeting under ~10 s old may not be recorded yet
            log.warning("end_meeting_meeting_check_failed", room=call.room_name, error=str(exc))
            return True
        peak = meeting.max_participants
        return bool(meeting.ongoing) and (peak is None or peak > len(people))

    # -- decline and leave (SPEC §9; the logic lives in call_exits.py) -------------------------
    async def decline(self, claims: VideoCallClaims) -> str:
        """`POST /room/decline`: "ended" (direct chat) or "declined" (group/channel, the call goes on)."""
        return await self._exits.decline(claims)

    async def leave(self, claims: VideoCallClaims, session_id: str | None) -> str:
        """`POST /room/leave`: eject the user's Daily session; never ends the call."""
        return await self._exits.leave(claims, session_id)

    async def end_call(self, room: str, reason: str, *, message_id: int | None = None,
                       background_delete: bool = False) -> bool:
        """Queue the end notification(s), delete the Daily room, drop the call. Idempotent.

        With `message_id`, only that call ends: a signal about an earlier call in the same room
        (a late webhook, a queued retry) must not end the call that replaced it.
        """
        async with self._room_lock(room):
            call = self._store.calls.get(room)
            if call is None or (message_id is not None and call.message_id != message_id):
                return False
            self.meetings.call_ended(call)
            if call.state is not CallState.ENDING:
                change = self._outbox.plan_end(call)
                change.put_calls.append(call.evolve(state=CallState.ENDING))
                await self._store.commit(change)
                self._outbox.wake()
                self._empty_polls.pop(room, None)
                if self._observer:
                    self._observer.call_ended(reason)
                log.info("call_ended", room=room, message_id=str(call.message_id), reason=reason,
                         duration=round(self._clock() - call.created_at, 1))
                self._record("call_ended", room, reason)
        if background_delete:
            self._spawn(("delete", room, call.message_id), self.remove_room(room, call.message_id))
        else:
            await self.remove_room(room, call.message_id)
        return True

    def _still_ending(self, room: str, message_id: int) -> bool:
        call = self._store.calls.get(room)
        return call is not None and call.message_id == message_id and call.state is CallState.ENDING

    async def remove_room(self, room: str, message_id: int) -> bool:
        """Delete the Daily room of an ending call, then drop the call; False if Daily failed.

        The wait for Daily's delete limit (2/s, 50 per 30 s: minutes after a mass end) happens
        before the room's lock is taken, so a new call in the same room is not held up by it.
        """
        if not self._still_ending(room, message_id):
            return True
        slots = getattr(self._rooms, "delete_slot", None)
        async with (slots() if slots is not None else nullcontext(None)) as slot, self._room_lock(room):
            if not self._still_ending(room, message_id):
                return True  # already gone, or a new call owns the room now
            try:
                await self._rooms.delete_room(room, slot=slot)
            except DailyNotFound:
                pass
            except DailyError as exc:
                log.warning("room_delete_failed", room=room, error=str(exc), retry="next poll")
                return False
            await self._store.commit(Change(drop_calls=[room]))
        return True

    def end_soon(self, room: str, reason: str, message_id: int) -> None:
        """End in the background (webhooks and the poller must not wait for Daily)."""
        self._spawn(("end", room, message_id), self.end_call(room, reason, message_id=message_id))

    def on_meeting_ended(self, room: str, payload: Mapping[str, Any]) -> bool:
        """`meeting.ended`: Daily sends it up to ~20 s late, so check it is about this call."""
        call = self._store.calls.get(room)
        if call is None:
            return False
        if not self.meetings.belongs(call, payload, clock_offset=self._clock_offset()):
            log.info("meeting_ended_ignored", room=room, reason="event is about another meeting")
            return False
        self.end_soon(room, "meeting.ended", call.message_id)
        return True

    def _spawn(self, key: tuple[str, str, int], work: Any) -> None:
        if key in self._ending:
            work.close()
            return
        self._ending.add(key)
        task = asyncio.create_task(work, name=f"{key[0]}-{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(key, t))

    def _finished(self, key: tuple[str, str, int], task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._ending.discard(key)
        if not task.cancelled() and task.exception() is not None:
            log.error("call_end_failed", room=key[1], error=str(task.exception())[:200])

    async def drain(self) -> None:
        """Wait for background ends (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- what Daily tells us -----------------------------------------------------------------
    @staticmethod
    def _seen(call: Call, meeting_id: str | None, now: float) -> Call | None:
        """The call updated for being seen in Daily (in `meeting_id`), or None if nothing changes."""
        meeting_id = meeting_id or call.meeting_id
        if call.state is not CallState.STARTING and meeting_id == call.meeting_id:
            return None
        if call.state is CallState.STARTING:
            return call.evolve(state=CallState.LIVE, last_seen_at=now, meeting_id=meeting_id)
        return call.evolve(meeting_id=meeting_id)

    async def mark_live(self, room: str, meeting_id: str | None = None) -> None:
        """A webhook saw the call in Daily (`meeting.started` names its meeting)."""
        if meeting_id is not None and self.meetings.is_past(meeting_id):
            meeting_id = None  # a retried meeting.started of an earlier call's meeting
        call = self._store.calls.get(room)
        self._empty_polls.pop(room, None)
        if call is None or call.state is CallState.ENDING or self._seen(call, meeting_id, 0.0) is None:
            return
        async with self._room_lock(room):
            call = self._store.calls.get(room)
            if call is None or call.state is CallState.ENDING:
                return
            seen = self._seen(call, meeting_id, self._clock())
            if seen is not None:
                await self._store.commit(Change(put_calls=[seen]))
                if call.state is CallState.STARTING:
                    log.info("call_live", room=room, message_id=str(call.message_id), meeting_id=meeting_id)
                    self._record("call_live", room)

    async def reconcile(self, occupancy: Mapping[str, int], meetings: Mapping[str, str] | None = None) -> None:
        """Apply one presence poll: `occupancy` maps room name -> participants present, `meetings`
        room name -> the meeting id (`mtgSessionId`) presence shows there."""
        now = self._clock()
        went_live: list[Call] = []
        meetings = meetings or {}
        for room, call in list(self._store.calls.items()):
            if call.state is CallState.ENDING:
                # the room delete did not get through earlier
                self._spawn(("delete", room, call.message_id), self.remove_room(room, call.message_id))
                continue
            if call.room_exp + EXPIRY_MARGIN <= now:
                self.end_soon(room, "expired", call.message_id)
            elif occupancy.get(room, 0) > 0:
                self._empty_polls.pop(room, None)
                # a room whose lock is held has a change in flight: it is updated next poll
                seen = self._seen(call, meetings.get(room), now)
                if seen is not None and room not in self._locks:
                    went_live.append(seen)
            elif call.state is CallState.LIVE:
                empty = self._empty_polls.get(room, 0) + 1
                self._empty_polls[room] = empty
                if empty < EMPTY_POLLS_TO_END:
                    pass
                elif call.call_type is CallType.BROADCAST and call.meeting_id is not None:
                    key = ("confirm", room, call.message_id)
                    self._spawn(key, self._end_broadcast_if_over(room, call.message_id, call.meeting_id))
                else:
                    self.end_soon(room, "empty", call.message_id)
            elif now - call.created_at > self._start_grace:
                self.end_soon(room, "never_joined", call.message_id)
        if went_live:
            # No await between the lock check above and this submission, so no change for these
            # rooms is pending ahead of it; one write for the whole poll.
            await self._store.commit(Change(put_calls=went_live))
            live = [c for c in went_live if c.last_seen_at == now]  # not those only given a meeting id
            if len(live) <= 20:
                for call in live:
                    log.info("call_live", room=call.room_name, message_id=str(call.message_id))
                    self._record("call_live", call.room_name)
            else:
                log.info("calls_live", count=len(live))

    async def _end_broadcast_if_over(self, room: str, message_id: int, meeting_id: str) -> None:
        """Presence shows a Broadcast room empty, but may not list hidden viewers: end it only if
        Daily's meetings API says its meeting is over (a presenter may be back in a minute)."""
        try:
            meeting = await self._rooms.get_meeting(meeting_id, deadline=10.0)
        except DailyNotFound:
            meeting = None  # Daily knows of no such meeting going on
        except DailyError as exc:
            log.warning("broadcast_check_failed", room=room, error=str(exc), retry="next poll")
            return
        if meeting is not None and meeting.ongoing:
            log.info("broadcast_kept", room=room, message_id=str(message_id), reason="meeting still ongoing")
            return
        await self.end_call(room, "empty", message_id=message_id)

    def _record(self, event: str, room: str, detail: str = "") -> None:
        if self._events is not None:
            self._events.record(event, room, detail)

    def resume(self) -> None:
        """After a restart: finish the room deletes that were interrupted."""
        for room, call in self._store.calls.items():
            if call.state is CallState.ENDING:
                self._spawn(("delete", room, call.message_id), self.remove_room(room, call.message_id))
