"""Who is in which room, meeting sessions, and the webhook events they produce (daily-api.md §6.5-6.6)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from videobridge.emulator.state import EmulatedParticipant, EmulatorError, iso


@dataclass(slots=True)
class _Meeting:
    id: str
    room: str
    start_ts: float
    max_participants: int = 0  # hidden participants count (the bridge's stated assumption)
    end_ts: float | None = None


_HISTORY = 10_000  # ended meetings kept for GET /meetings/:meeting


class Meetings:
    def __init__(
        self,
        *,
        clock: Callable[[], float],
        ended_delay: float,
        publish: Callable[[dict[str, Any]], None],
    ) -> None:
        self._clock = clock
        self.ended_delay = ended_delay
        self._publish = publish
        self._people: dict[str, dict[str, EmulatedParticipant]] = {}
        self._meetings: dict[str, _Meeting] = {}  # room -> its current meeting
        self._by_id: dict[str, _Meeting] = {}  # current and past meetings
        self._ending: dict[str, asyncio.Task[None]] = {}  # room -> delayed meeting.ended
        self._event_ids: set[str] = set()

    # -- queries ---------------------------------------------------------------------------------

    def participants(self, room: str) -> list[EmulatedParticipant]:
        return list(self._people.get(room, {}).values())

    def count(self, room: str) -> int:
        return len(self._people.get(room, ()))

    def occupied_rooms(self) -> list[str]:
        return [room for room, people in self._people.items() if people]

    def presence_json(self, p: EmulatedParticipant) -> dict[str, Any]:
        meeting = self._meetings.get(p.room)
        return {
            "room": p.room,
            "id": p.session_id,
            "userId": p.user_id,
            "userName": p.user_name,
            "mtgSessionId": meeting.id if meeting else None,
            "joinTime": iso(p.joined_at),
            "duration": int(max(0.0, self._clock() - p.joined_at)),
        }

    def meeting_json(self, meeting_id: str) -> dict[str, Any] | None:
        """GET /meetings/:meeting. `ongoing`: anyone (hidden or not) in the room in this meeting."""
        meeting = self._by_id.get(meeting_id)
        if meeting is None:
            return None
        ongoing = meeting.end_ts is None and self.count(meeting.room) > 0
        until = self._clock() if meeting.end_ts is None else meeting.end_ts
        return {"id": meeting.id, "room": meeting.room, "start_time": int(meeting.start_ts),
                "duration": int(max(0.0, until - meeting.start_ts)), "ongoing": ongoing,
                "max_participants": meeting.max_participants}

    # -- changes ---------------------------------------------------------------------------------

    def add(self, p: EmulatedParticipant) -> None:
        people = self._people.setdefault(p.room, {})
        if p.session_id in people:
            raise EmulatorError("duplicate-session", "session id already in the room")
        pending = self._ending.pop(p.room, None)
        if pending is not None:  # a rejoin inside Daily's grace period continues the meeting
            pending.cancel()
        if p.room not in self._meetings:
            meeting = _Meeting(id=str(uuid.uuid4()), room=p.room, start_ts=p.joined_at)
            self._meetings[p.room] = meeting
            self._by_id[meeting.id] = meeting
            while len(self._by_id) > _HISTORY:
                self._by_id.pop(next(iter(self._by_id)))
            self._emit("meeting.started", f"met-sta-{meeting.id}-{int(meeting.start_ts)}", {
                "start_ts": meeting.start_ts, "meeting_id": meeting.id, "room": p.room,
            })  # fmt: skip
        people[p.session_id] = p
        current = self._meetings[p.room]
        current.max_participants = max(current.max_participants, len(people))
        if not p.hidden:  # hidden participants produce no participant events
            payload = self._participant_payload(p)
            event_id = f"ptcpt-join-{p.user_id or p.session_id}-{int(p.joined_at * 1000)}"
            self._emit("participant.joined", event_id, payload)

    def remove(self, room: str, session_id: str) -> EmulatedParticipant:
        people = self._people.get(room, {})
        p = people.pop(session_id, None)
        if p is None:
            raise EmulatorError("not-in-room", "no such session in the room")
        now = self._clock()
        if not p.hidden:
            payload = self._participant_payload(p)
            payload["duration"] = max(0.0, now - p.joined_at)
            self._emit("participant.left", f"ptcpt-left-{p.user_id or p.session_id}-{int(now * 1000)}", payload)
        if not people:
            self._people.pop(room, None)
            self._schedule_end(room)
        return p

    def remove_all(self, room: str) -> None:
        for p in self.participants(room):
            self.remove(room, p.session_id)

    async def settle(self) -> None:
        """Wait for delayed meeting.ended events that are still pending."""
        while self._ending:
            await asyncio.gather(*list(self._ending.values()), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._ending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._ending.clear()

    # -- internals -------------------------------------------------------------------------------

    def _schedule_end(self, room: str) -> None:
        if self.ended_delay <= 0:
            self._end(room)
            return
        self._ending[room] = asyncio.get_running_loop().create_task(self._end_later(room))

    async def _end_later(self, room: str) -> None:
        try:
            await asyncio.sleep(self.ended_delay)
            if not self._people.get(room):
                self._end(room)
        finally:
            if self._ending.get(room) is asyncio.current_task():
                del self._ending[room]

    def _end(self, room: str) -> None:
        meeting = self._meetings.pop(room, None)
        if meeting is None:
            return
        end_ts = meeting.end_ts = self._clock()
        self._emit("meeting.ended", f"met-end-{meeting.id}-{int(end_ts)}", {
            "start_ts": meeting.start_ts, "end_ts": end_ts, "meeting_id": meeting.id, "room": room,
        })  # fmt: skip

    def _participant_payload(self, p: EmulatedParticipant) -> dict[str, Any]:
        perms = p.permissions
        payload: dict[str, Any] = {"room": p.room}
        if p.user_id is not None:
            payload["user_id"] = p.user_id
        payload.update(
            user_name=p.user_name,
            session_id=p.session_id,
            joined_at=p.joined_at,
            will_eject_at=p.will_eject_at,
            owner=p.owner,
            permissions={
                "hasPresence": perms.get("hasPresence", True),
                "canSend": perms.get("canSend", True),
                "canReceive": perms.get("canReceive", {"base": True}),
                "canAdmin": perms.get("canAdmin", False),
            },
        )
        return payload

    def _emit(self, kind: str, event_id: str, payload: dict[str, Any]) -> None:
        unique, n = event_id, 1
        while unique in self._event_ids:  # a frozen test clock must not produce duplicate ids
            n += 1
            unique = f"{event_id}-{n}"
        self._event_ids.add(unique)
        self._publish({"version": "1.0.0", "type": kind, "id": unique, "payload": payload, "event_ts": self._clock()})
