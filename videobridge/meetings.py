"""Which Daily meeting a `meeting.ended` is about: keyed on Daily's meeting id, not on clocks.

A room outlives its calls, so a late `meeting.ended` (Daily sends it up to ~20 s after the last
person leaves, and retries failed deliveries for ~15 min) may be about an earlier call's meeting.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from videobridge.models import Call

PAST_MEETINGS = 10_000  # meeting ids of ended calls kept, so their late meeting.ended is known


class MeetingBook:
    def __init__(self, *, remember: int = PAST_MEETINGS) -> None:
        self._remember = remember
        self._past: OrderedDict[str, None] = OrderedDict()  # in memory: a restart falls back on clocks

    def call_ended(self, call: Call) -> None:
        if call.meeting_id is None:
            return
        self._past[call.meeting_id] = None
        self._past.move_to_end(call.meeting_id)
        while len(self._past) > self._remember:
            self._past.popitem(last=False)

    def is_past(self, meeting_id: str) -> bool:
        """The meeting of a call that has ended (a late or retried meeting.started names it)."""
        return meeting_id in self._past

    def forget(self) -> None:
        self._past.clear()

    def belongs(self, call: Call, payload: Mapping[str, Any], *, clock_offset: float | None) -> bool:
        """Whether a meeting.ended `payload` is about `call`'s meeting.

        By meeting id when the call has one; an id that belonged to an earlier call is not this
        call's; otherwise the meeting's `start_ts` (Daily's clock, shifted by `clock_offset` =
        Daily minus ours) must not be before the call started.
        """
        ended = payload.get("meeting_id")
        ended = ended if isinstance(ended, str) and ended else None
        if ended is not None and call.meeting_id is not None:
            return ended == call.meeting_id
        if ended is not None and ended in self._past:
            return False
        when = payload.get("start_ts", payload.get("end_ts"))
        if not isinstance(when, (int, float)) or isinstance(when, bool):
            return True
        return when - (clock_offset or 0.0) >= call.created_at
