"""Decline and leave (SPEC §9): a ringing user says no, a user's device drops out of a call.

Both read Daily presence for the room through the shared `PresenceReads`. A decline in a direct
chat ends the call through the call service's own end path; in a group or channel the call goes
on and the decliner's local user index is told through the durable outbox. A leave ejects one
Daily session and never ends the call (the poller and webhooks do, once the room is empty).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import structlog

from videobridge.auth import VideoCallClaims
from videobridge.chats import DirectChat, room_name
from videobridge.daily.errors import DailyError, DailyNotFound, DailyRateLimited, DailyUnavailable
from videobridge.daily.tokens import USER_ID_MAX
from videobridge.errors import BadRequest, Conflict, NoCallInProgress, UpstreamError
from videobridge.models import Call, CallState
from videobridge.outbox import Outbox
from videobridge.presence_reads import PresenceReads
from videobridge.store import StateStore

log = structlog.get_logger("videobridge.calls")

# Android gives each request 3 s: a presence read and an eject must both fit, retries included.
PRESENCE_DEADLINE = 1.5
EJECT_DEADLINE = 1.2
MEMO_KEPT = 1024  # calls remembered before ended calls' entries are dropped


class Ejector(Protocol):
    async def eject(self, name: str, session_ids: Sequence[str], *, deadline: float | None = None) -> list[str]: ...


def sessions_of(people: Sequence[Any], user_id: str) -> list[Any]:
    """The user's Daily sessions: presence `userId` is the meeting token's `ud` (36 characters kept)."""
    ud = user_id[:USER_ID_MAX]
    return [p for p in people if p.user_id == ud]


class CallMemo:
    """Per-call sets kept in memory (who declined, which sessions were ejected); a new call in
    the room starts empty, and ended calls' entries are dropped once there are many."""

    def __init__(self, calls: Mapping[str, Call], *, keep: int = MEMO_KEPT) -> None:
        self._calls = calls
        self._keep = keep
        self._sets: dict[str, tuple[int, set[str]]] = {}

    def of(self, call: Call) -> set[str]:
        entry = self._sets.get(call.room_name)
        if entry is None or entry[0] != call.message_id:
            if len(self._sets) >= self._keep:
                for gone in [r for r, (mid, _) in self._sets.items()
                             if r not in self._calls or self._calls[r].message_id != mid]:
                    del self._sets[gone]
            entry = self._sets[call.room_name] = (call.message_id, set())
        return entry[1]


class CallExits:
    def __init__(self, *, store: StateStore, rooms: Ejector, outbox: Outbox, presence: PresenceReads[list[Any]],
                 room_lock: Callable[[str], AbstractAsyncContextManager[None]],
                 end_call: Callable[..., Awaitable[bool]]) -> None:
        self._store = store
        self._rooms = rooms
        self._outbox = outbox
        self._presence = presence
        self._room_lock = room_lock
        self._end_call = end_call
        self._declined = CallMemo(store.calls)  # users whose decline is queued
        # Sessions ejected (or being ejected): Daily's presence shows them for up to 15 s more,
        # and a retried or concurrent leave must not eject again.
        self._ejected = CallMemo(store.calls)

    def _tracked(self, room: str) -> Call:
        call = self._store.calls.get(room)
        if call is None or call.state is CallState.ENDING:
            raise NoCallInProgress()
        return call

    async def _people(self, call: Call) -> list[Any]:
        try:
            return await self._presence.get(call.room_name, tag=call.message_id, deadline=PRESENCE_DEADLINE)
        except DailyNotFound:
            return []  # the room is gone already: nobody is in it

    # -- decline -----------------------------------------------------------------------------
    async def decline(self, claims: VideoCallClaims) -> str:
        """"ended" (direct chat: the call is over) or "declined" (group/channel: the call goes on)."""
        room = room_name(claims.chat)
        call = self._tracked(room)
        if claims.message_id is not None and claims.message_id != call.message_id:
            raise Conflict("this decline is for another call in this chat")
        direct = isinstance(call.chat, DirectChat)
        if not direct and claims.local_user_index is None:
            raise BadRequest("a decline in a group or channel needs local_user_index in the JWT")
        try:
            people = await self._people(call)
        except DailyError as exc:
            log.warning("decline_presence_failed", room=room, error=str(exc))
            raise UpstreamError("could not check who is in the call (Daily presence); try again",
                                status=503) from None
        ejected = self._ejected.of(call)
        if any(p.id not in ejected for p in sessions_of(people, claims.user_id)):
            raise Conflict("you are in the call: leave it instead of declining")
        if direct:
            # exactly as an end: both users' canisters told, the Daily room deleted
            await self._end_call(room, "declined", message_id=call.message_id, background_delete=True)
            return "ended"
        assert claims.local_user_index is not None
        async with self._room_lock(room):
            current = self._store.calls.get(room)
            if current is None or current.message_id != call.message_id or current.state is CallState.ENDING:
                raise NoCallInProgress()
            declined = self._declined.of(call)
            if claims.user_id in declined:
                return "declined"  # already queued: a retry or a second device tells the IC nothing new
            await self._store.commit(self._outbox.plan_decline(call, user_id=claims.user_id,
                                                               local_user_index=claims.local_user_index))
            declined.add(claims.user_id)
        self._outbox.wake()
        log.info("call_declined", room=room, message_id=str(call.message_id), chat_kind=call.chat.kind.value)
        return "declined"

    # -- leave -------------------------------------------------------------------------------
    async def leave(self, claims: VideoCallClaims, session_id: str | None) -> str:
        """Eject the user's session (`session_id`, or their only one) from the room."""
        room = room_name(claims.chat)
        call = self._tracked(room)
        try:
            present = sessions_of(await self._people(call), claims.user_id)
        except DailyError as exc:
            log.warning("leave_presence_failed", room=room, error=str(exc))
            raise _upstream(exc) from None
        ejected = self._ejected.of(call)
        if session_id is not None:
            chosen = [p.id for p in present if p.id.lower() == session_id]
            if not chosen:
                raise Conflict("that Daily session is not yours in this call")
            target = chosen[0]
            if target in ejected:
                return "left"  # already out (or on its way): nothing more to ask Daily
        else:
            mine = [p.id for p in present if p.id not in ejected]
            if len(mine) != 1:
                raise Conflict("you are not in the call" if not mine else
                               f"you have {len(mine)} sessions in the call: name one (sessionId)")
            target = mine[0]
        ejected.add(target)  # before the await: a concurrent leave for it must not eject again
        try:
            await self._rooms.eject(room, [target], deadline=EJECT_DEADLINE)
        except DailyNotFound:
            pass  # the room is gone: so is the session
        except DailyError as exc:
            ejected.discard(target)
            log.warning("leave_eject_failed", room=room, error=str(exc))
            raise _upstream(exc) from None
        except BaseException:
            ejected.discard(target)
            raise
        log.info("call_left", room=room, message_id=str(call.message_id), sessions=len(present))
        return "left"


def _upstream(exc: DailyError) -> UpstreamError:
    status = 503 if isinstance(exc, (DailyUnavailable, DailyRateLimited)) else 502
    return UpstreamError(f"Daily: {exc}", status=status)
