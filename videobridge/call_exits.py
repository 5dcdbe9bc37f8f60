"""The ways out of a call a user asks for: end_meeting, decline and leave (SPEC §9).

All three read Daily presence for the room through the shared `PresenceReads`. `end_meeting`
ends the call only if nobody else is in it. A decline in a direct chat ends the call through
the call service's own end path; in a group or channel the call goes on and the decliner's
local user index is told through the durable outbox. A leave ejects one Daily session and never
ends the call (the poller and webhooks do, once the room is empty).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from videobridge.auth import VideoCallClaims
from videobridge.call_results import DeclineOutcome, EndAnswer, KeptBecause
from videobridge.chats import DirectChat, room_name
from videobridge.daily.errors import DailyError, DailyNotFound
from videobridge.daily.tokens import USER_ID_MAX
from videobridge.errors import BadRequest, Conflict, NoCallInProgress, TryAgain
from videobridge.models import Call, CallState, CallType
from videobridge.outbox import Outbox
from videobridge.presence_reads import PresenceReads
from videobridge.state.base import Store

log = structlog.get_logger("videobridge.calls")

# Android gives each request 3 s: a presence read and an eject must both fit, retries included.
PRESENCE_DEADLINE = 1.5
EJECT_DEADLINE = 1.2
MEMO_KEPT = 1024  # calls remembered before ended calls' entries are dropped


class ExitRooms(Protocol):
    async def eject(self, name: str, session_ids: Sequence[str], *, deadline: float | None = None) -> list[str]: ...
    async def get_meeting(self, meeting_id: str, *, deadline: float | None = None) -> Any: ...


def sessions_of(people: Sequence[Any], user_id: str) -> list[Any]:
    """The user's Daily sessions: presence `userId` is the meeting token's `ud` (36 characters kept)."""
    ud = user_id[:USER_ID_MAX]
    return [p for p in people if p.user_id == ud]


class CallMemo:
    """Work done once per call and key (a user's decline, a session's eject), kept in memory: a
    concurrent or later request for the same key shares its outcome. A new call in the room
    starts empty; ended calls' entries are dropped once there are many."""

    def __init__(self, calls: Callable[[], Mapping[str, Call]], *, keep: int = MEMO_KEPT) -> None:
        self._calls = calls  # the store's view (a shared store replaces it on every reload)
        self._keep = keep
        self._done: dict[str, tuple[int, dict[str, asyncio.Future[None]]]] = {}

    def of(self, call: Call) -> dict[str, asyncio.Future[None]]:
        entry = self._done.get(call.room_name)
        if entry is None or entry[0] != call.message_id:
            if len(self._done) >= self._keep:
                calls = self._calls()
                for gone in [r for r, (mid, _) in self._done.items()
                             if r not in calls or calls[r].message_id != mid]:
                    del self._done[gone]
            entry = self._done[call.room_name] = (call.message_id, {})
        return entry[1]

    async def once(self, call: Call, key: str, work: Callable[[], Awaitable[None]]) -> bool:
        """Run `work` unless it ran or runs for `key`; True if this call ran it. A failure is
        shared with whoever waited, then forgotten, so a retry tries again."""
        done = self.of(call)
        existing = done.get(key)
        if existing is not None:
            await asyncio.shield(existing)
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        done[key] = future  # before the await: a concurrent request waits for this one
        try:
            await work()
        except BaseException as exc:
            if done.get(key) is future:
                del done[key]
            future.set_exception(exc if isinstance(exc, Exception) else
                                 TryAgain("interrupted; try again"))
            raise
        future.set_result(None)
        return True


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # nobody else may have waited: no "never retrieved" warning


class CallExits:
    def __init__(self, *, store: Store, rooms: ExitRooms, outbox: Outbox, presence: PresenceReads[list[Any]],
                 end_call: Callable[..., Awaitable[bool]]) -> None:
        self._store = store
        self._rooms = rooms
        self._outbox = outbox
        self._presence = presence
        self._end_call = end_call
        self._declined = CallMemo(lambda: store.calls)  # users whose decline is queued (or being queued)
        # Sessions ejected (or being ejected): Daily's presence shows them for up to 15 s more,
        # so they no longer count as in the room, and a retried leave must not eject again.
        self._ejected = CallMemo(lambda: store.calls)
        self.presence_lists_hidden = False  # learnt once presence shows a Broadcast viewer

    async def _tracked(self, room: str) -> Call:
        call = await self._store.get_call(room)
        if call is None or call.state is CallState.ENDING:
            raise NoCallInProgress()
        return call

    async def _people(self, call: Call) -> list[Any]:
        try:
            return await self._presence.get(call.room_name, tag=call.message_id, deadline=PRESENCE_DEADLINE)
        except DailyNotFound:
            return []  # the room is gone already: nobody is in it

    # -- end_meeting -----------------------------------------------------------------------
    async def request_end(self, claims: VideoCallClaims) -> EndAnswer:
        room = room_name(claims.chat)
        call = await self._store.get_call(room)
        if call is None or call.state is CallState.ENDING:
            return EndAnswer(room, KeptBecause.NO_CALL)
        try:
            people = await self._presence.get(room, tag=call.message_id, deadline=PRESENCE_DEADLINE)
        except DailyError as exc:
            log.warning("end_meeting_presence_failed", room=room, error=str(exc))
            return EndAnswer(room, KeptBecause.ROOM_UNCHECKED)
        present = len(people)
        if call.call_type is CallType.BROADCAST and any(
                getattr(p, "user_id", None) not in (None, call.started_by) for p in people):
            self.presence_lists_hidden = True  # every non-starter in a Broadcast joins hidden
        if present > 1:
            return EndAnswer(room, KeptBecause.OTHERS_PRESENT, participants=present)
        if call.call_type is CallType.BROADCAST and await self._viewers_may_remain(call, people):
            return EndAnswer(room, KeptBecause.VIEWERS_MAY_REMAIN, participants=present)
        # the answer waits for the durable end, not for Daily's 2 req/s room deletes
        await self._end_call(room, "end_meeting", message_id=call.message_id, background_delete=True)
        return EndAnswer(room)

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

    # -- decline -----------------------------------------------------------------------------
    async def decline(self, claims: VideoCallClaims) -> DeclineOutcome:
        """"ended" (direct chat: the call is over) or "declined" (group/channel: the call goes on)."""
        room = room_name(claims.chat)
        call = await self._tracked(room)
        if claims.message_id is not None and claims.message_id != call.message_id:
            raise Conflict("this decline is for another call in this chat")
        direct = isinstance(call.chat, DirectChat)
        if not direct and claims.local_user_index is None:
            raise BadRequest("a decline in a group or channel needs local_user_index in the JWT")
        try:
            people = await self._people(call)
        except DailyError as exc:
            log.warning("decline_presence_failed", room=room, error=str(exc))
            raise TryAgain("could not check who is in the call (Daily presence); try again") from None
        ejected = self._ejected.of(call)
        if any(p.id not in ejected for p in sessions_of(people, claims.user_id)):
            raise Conflict("you are in the call: leave it instead of declining")
        if direct:
            # exactly as an end: both users' canisters told, the Daily room deleted
            await self._end_call(room, "declined", message_id=call.message_id, background_delete=True)
            return DeclineOutcome.ENDED
        assert claims.local_user_index is not None
        # No room lock: concurrent declines share one durable write (the store group-commits), and
        # a decline racing an end is harmless (the local user index only dismisses a ring).
        current = await self._store.get_call(room)
        if current is None or current.message_id != call.message_id or current.state is CallState.ENDING:
            raise NoCallInProgress()
        lui = claims.local_user_index

        async def queue() -> None:
            change = await self._outbox.plan_decline(call, user_id=claims.user_id, local_user_index=lui)
            await self._store.commit(change)
            self._outbox.wake()
            log.info("call_declined", room=room, message_id=str(call.message_id), chat_kind=call.chat.kind.value)

        # a retry or a second device waits for the same durable write, and tells the IC nothing new
        await self._declined.once(call, claims.user_id, queue)
        return DeclineOutcome.DECLINED

    # -- leave -------------------------------------------------------------------------------
    async def leave(self, claims: VideoCallClaims, session_id: str | None) -> None:
        """Eject the user's session (`session_id`, or their only one) from the room."""
        room = room_name(claims.chat)
        call = await self._tracked(room)
        try:
            present = sessions_of(await self._people(call), claims.user_id)
        except DailyError as exc:
            log.warning("leave_presence_failed", room=room, error=str(exc))
            raise
        ejected = self._ejected.of(call)
        if session_id is not None:
            chosen = [p.id for p in present if p.id.lower() == session_id]
            if not chosen:
                raise Conflict("that Daily session is not yours in this call")
            target = chosen[0]
        else:
            mine = [p.id for p in present if p.id not in ejected]
            if len(mine) != 1:
                raise Conflict("you are not in the call" if not mine else
                               f"you have {len(mine)} sessions in the call: name one (sessionId)")
            target = mine[0]

        async def eject() -> None:
            try:
                await self._rooms.eject(room, [target], deadline=EJECT_DEADLINE)
            except DailyNotFound:
                pass  # the room is gone: so is the session
            except DailyError as exc:
                log.warning("leave_eject_failed", room=room, error=str(exc))
                raise
            log.info("call_left", room=room, message_id=str(call.message_id), sessions=len(present))

        # a retried or concurrent leave for the session waits for this eject: Daily is asked once
        await self._ejected.once(call, target, eject)
