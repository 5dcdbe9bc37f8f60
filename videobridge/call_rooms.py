"""The Daily side of starting a call: a private room that opens now and closes at `exp`.

A room outlives its calls (its delete waits for Daily's 2/s limit), so a start may find the
previous call's room still there; it is refreshed rather than created.
"""

from __future__ import annotations

from videobridge.call_ports import Rooms
from videobridge.daily.errors import DailyNotFound, DailyRoomExists
from videobridge.models import CallType
from videobridge.roomconfig import reuse_properties, room_properties


async def open_room(rooms: Rooms, room: str, call_type: CallType, *, nbf: int, exp: int,
                    previous_ending: bool, deadline: float) -> bool:
    """Make the room ready for a new call; True if an existing room was reused. Raises DailyError."""
    try:
        if previous_ending and await _refresh_ending_room(rooms, room, call_type, nbf=nbf, exp=exp,
                                                          deadline=deadline):
            return True
        await rooms.create_room(room, properties=room_properties(call_type, nbf=nbf, exp=exp), deadline=deadline)
        return False
    except DailyRoomExists as taken:
        # Left over from an earlier call: refresh it so its old expiry cannot cut this call
        # short, reset what an earlier call type set, and make sure it is private.
        existing = getattr(taken.room, "config", None) or {}
        await rooms.update_room(room, privacy="private", deadline=deadline,
                                properties=reuse_properties(call_type, nbf=nbf, exp=exp, existing=existing))
        return True


async def _refresh_ending_room(rooms: Rooms, room: str, call_type: CallType, *, nbf: int, exp: int,
                               deadline: float) -> bool:
    """The previous call's room is still there: refresh it in one call instead of a create that
    Daily refuses plus a lookup and an update."""
    try:
        await rooms.update_room(room, privacy="private", deadline=deadline,
                                properties=reuse_properties(call_type, nbf=nbf, exp=exp))
    except DailyNotFound:
        return False  # deleted after all: create it
    return True
