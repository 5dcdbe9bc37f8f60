"""The call service: the single owner of call state and its state machine.

starting -> live (seen in Daily) -> ending (end notifications queued, room being deleted) ->
removed. HTTP handlers, webhooks and the presence poller all go through here; each room has
an asyncio lock so simultaneous starts create one room and one message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import structlog

from videobridge.auth import ClaimType, VideoCallClaims
from videobridge.background import BackgroundTasks
from videobridge.call_exits import CallExits
from videobridge.call_ports import CallObserver, Minter, Rooms
from videobridge.call_results import AccessGrant, DeclineOutcome, EndAnswer
from videobridge.call_rooms import open_room
from videobridge.chats import room_name
from videobridge.daily.errors import DailyError, DailyNotFound
from videobridge.daily.tokens import TokenGrant
from videobridge.errors import NoMeetingToJoin
from videobridge.events import EventSink
from videobridge.keyed_locks import KeyedLocks
from videobridge.meetings import MeetingBook
from videobridge.models import Call, CallState, CallType, Initiator
from videobridge.outbox import Outbox
from videobridge.presence_reads import PresenceReads
from videobridge.roomconfig import room_lifetime
from videobridge.state.base import Change, Store

log = structlog.get_logger("videobridge.calls")

EMPTY_POLLS_TO_END = 2
EXPIRY_MARGIN = 5.0  # Daily ejects at exp; give its presence a moment to agree


def new_message_id() -> int:
    while True:
        value = secrets.randbits(64)
        if value:
            return value


class CallService:
    def __init__(self, *, store: Store, rooms: Rooms, minter: Minter, outbox: Outbox,
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
        self._locks: KeyedLocks[str] = KeyedLocks()  # one per room: it guards the call's invariants
        self._empty_polls: dict[str, int] = {}
        self._background = BackgroundTasks("calls")
        # end_meeting, decline and leave read presence through here: one Daily read per room and burst
        self.presence: PresenceReads[list[Any]] = PresenceReads(
            lambda room, deadline: rooms.room_presence(room, deadline=deadline), max_age=presence_max_age)
        self._exits = CallExits(store=store, rooms=rooms, outbox=outbox, presence=self.presence,
                                end_call=self.end_call)
        self.meetings = MeetingBook()

    @contextlib.asynccontextmanager
    async def _hold(self, room: str) -> AsyncIterator[None]:
        """The room's lock: this process's first (waiters queue here), then the store's (other
        processes sharing it). Every read-decide-commit of a room happens inside."""
        async with self._locks.hold(room), self._store.exclusive(room):
            yield

    @property
    def calls(self) -> Mapping[str, Call]:
        return self._store.calls

    async def refresh_view(self) -> None:
        """Reload `calls` where other instances change the store too (the poller, before a poll)."""
        await self._store.refresh(outbox=False)

    # -- start and join ----------------------------------------------------------------------
    async def access(self, claims: VideoCallClaims, initiator: Initiator) -> AccessGrant:
        room = room_name(claims.chat)
        call = await self._store.get_call(room)
        if call is not None and call.state is not CallState.ENDING:
            return await self._grant(call, claims.user_id, initiator, joining=True)
        if claims.claim_type is not ClaimType.START:
            raise NoMeetingToJoin()
        async with self._hold(room):
            call = await self._store.get_call(room)
            if call is not None and call.state is not CallState.ENDING:
                return await self._grant(call, claims.user_id, initiator, joining=True)
            call = await self._start(room, claims, initiator, previous=call)
        return await self._grant(call, claims.user_id, initiator, joining=False)

    async def _start(self, room: str, claims: VideoCallClaims, initiator: Initiator, *,
                     previous: Call | None) -> Call:
        """Under the room's lock; `previous`: the room's call as just read there (ending, or None)."""
        now = self._clock()
        exp = int(now) + room_lifetime(claims.is_diamond)
        # nbf in Daily's clock when it runs behind ours: the room must open at once
        nbf = int(now + min(0.0, self._rooms.clock_offset or 0.0))
        try:
            reused = await open_room(self._rooms, room, claims.call_type, nbf=nbf, exp=exp,
                                     previous_ending=previous is not None and previous.state is CallState.ENDING,
                                     deadline=self._start_deadline)
        except DailyError as exc:
            log.warning("call_start_failed", room=room, error=str(exc))
            raise
        call = Call(room_name=room, message_id=new_message_id(), chat=claims.chat,
                    call_type=claims.call_type, started_by=claims.user_id, initiator=initiator,
                    is_diamond=claims.is_diamond, state=CallState.STARTING, created_at=now,
                    room_exp=exp)
        await self._store.commit(Change(put_calls=[call], add_notifications=await self._outbox.plan_start(call)))
        self._outbox.wake()
        self._empty_polls.pop(room, None)
        if self._observer:
            self._observer.call_started()
        log.info("call_started", room=room, message_id=str(call.message_id), chat_kind=call.chat.kind.value,
                 call_type=call.call_type.value, room_reused=reused, room_exp=exp)
        self._record("call_started", room, f"{call.call_type.value}, {call.chat.kind.value}")
        return call

    async def _grant(self, call: Call, user_id: str, initiator: Initiator, *, joining: bool) -> AccessGrant:
        grant = TokenGrant(room_name=call.room_name, user_id=user_id, user_name=initiator.username,
                           owner=user_id == call.started_by,
                           broadcast=call.call_type is CallType.BROADCAST, exp=call.room_exp,
                           audio_only=call.call_type is CallType.AUDIO)
        token = await self._minter.mint(grant)  # a DailyError is the middleware's to answer
        return AccessGrant(token=token, room_name=call.room_name, message_id=call.message_id, joining=joining)

    # -- ending ------------------------------------------------------------------------------
    async def request_end(self, claims: VideoCallClaims) -> EndAnswer:
        """`POST /room/end_meeting`: end only if nobody else is still in the room."""
        return await self._exits.request_end(claims)

    # -- decline and leave (SPEC §9; the logic lives in call_exits.py) -------------------------
    async def decline(self, claims: VideoCallClaims) -> DeclineOutcome:
        """`POST /room/decline`: "ended" (direct chat) or "declined" (group/channel, the call goes on)."""
        return await self._exits.decline(claims)

    async def leave(self, claims: VideoCallClaims, session_id: str | None) -> None:
        """`POST /room/leave`: eject the user's Daily session; never ends the call."""
        await self._exits.leave(claims, session_id)

    async def end_call(self, room: str, reason: str, *, message_id: int | None = None,
                       background_delete: bool = False) -> bool:
        """Queue the end notification(s), delete the Daily room, drop the call. Idempotent.

        With `message_id`, only that call ends: a signal about an earlier call in the same room
        (a late webhook, a queued retry) must not end the call that replaced it.
        """
        async with self._hold(room):
            call = await self._store.get_call(room)
            if call is None or (message_id is not None and call.message_id != message_id):
                return False
            self.meetings.call_ended(call)
            if call.state is not CallState.ENDING:
                change = await self._outbox.plan_end(call)
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

    async def _still_ending(self, room: str, message_id: int) -> bool:
        call = await self._store.get_call(room)
        return call is not None and call.message_id == message_id and call.state is CallState.ENDING

    async def remove_room(self, room: str, message_id: int) -> bool:
        """Delete the Daily room of an ending call, then drop the call; False if Daily failed.

        The wait for Daily's delete limit (2/s, 50 per 30 s: minutes after a mass end) happens
        before the room's lock is taken, so a new call in the same room is not held up by it.
        """
        if not await self._still_ending(room, message_id):
            return True
        async with self._rooms.delete_slot() as slot, self._hold(room):
            current = await self._store.get_call(room)
            if current is None or current.message_id != message_id or current.state is not CallState.ENDING:
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

    def meeting_ended_soon(self, room: str, payload: Mapping[str, Any]) -> None:
        """`meeting.ended`: handled after the webhook's answer."""
        self._background.spawn(self.on_meeting_ended(room, payload), name=f"ended-{room}")

    async def on_meeting_ended(self, room: str, payload: Mapping[str, Any]) -> bool:
        """`meeting.ended`: Daily sends it up to ~20 s late, so check it is about this call."""
        call = await self._store.get_call(room)
        if call is None:
            return False
        if not self.meetings.belongs(call, payload, clock_offset=self._rooms.clock_offset):
            log.info("meeting_ended_ignored", room=room, reason="event is about another meeting")
            return False
        self.end_soon(room, "meeting.ended", call.message_id)
        return True

    def _spawn(self, key: tuple[str, str, int], work: Any) -> None:
        """One background task per (what, room, message id): a repeated signal starts no second one."""
        self._background.spawn(work, name=f"{key[0]}-{key[1]}", key=key)

    async def drain(self) -> None:
        """Wait for background ends (tests, shutdown)."""
        await self._background.drain()

    async def aclose(self) -> None:
        await self._background.aclose()

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

    def mark_live_soon(self, room: str, meeting_id: str | None = None) -> None:
        """`meeting.started` / `participant.joined`: recorded after the webhook's answer."""
        self._background.spawn(self.mark_live(room, meeting_id), name=f"live-{room}")

    async def mark_live(self, room: str, meeting_id: str | None = None) -> None:
        """A webhook saw the call in Daily (`meeting.started` names its meeting)."""
        if meeting_id is not None and self.meetings.is_past(meeting_id):
            meeting_id = None  # a retried meeting.started of an earlier call's meeting
        call = await self._store.get_call(room)
        self._empty_polls.pop(room, None)
        if call is None or call.state is CallState.ENDING or self._seen(call, meeting_id, 0.0) is None:
            return
        async with self._hold(room):
            call = await self._store.get_call(room)
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
        if went_live and self._store.shared:
            # other instances write these rooms too: each change under its room's lock
            await asyncio.gather(*(self.mark_live(c.room_name, meetings.get(c.room_name)) for c in went_live))
        elif went_live:
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
