"""The Daily room a call gets: the original bridge's properties, expiry from the call type.

A room left over in Daily is reused by `POST /rooms/:name`, which changes only what it is sent:
`reuse_properties` also sends `null` (Daily's "back to the default") for every property some
other call type sets, so a Broadcast room reused for a Default call loses its Broadcast settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from videobridge.models import CallType

HOUR = 3600
MAX_PARTICIPANTS = 20
MAX_BROADCAST_PARTICIPANTS = 200
NBF_SLACK = 60  # seconds: a bridge clock running ahead of Daily's must not lock people out


def room_lifetime(is_diamond: bool) -> int:
    """Seconds a room lives; equals the max_duration OpenChat's canister timer gets."""
    return 2 * HOUR if is_diamond else HOUR


def room_properties(call_type: CallType, *, nbf: int, exp: int) -> dict[str, Any]:
    """`nbf` is the call's start; the room opens NBF_SLACK seconds before it."""
    properties: dict[str, Any] = {
        "nbf": nbf - NBF_SLACK,
        "exp": exp,
        "eject_at_room_exp": True,
        "max_participants": MAX_PARTICIPANTS,
        "enable_people_ui": True,
        "enable_pip_ui": True,
        "enable_emoji_reactions": False,
        "enable_hand_raising": False,
        "enable_prejoin_ui": False,
        "enable_network_ui": False,
        "enable_noise_cancellation_ui": True,
        "enable_breakout_rooms": False,
        "enable_knocking": False,
        "enable_screenshare": True,
        "permissions": {"hasPresence": True, "canSend": True, "canAdmin": False},
    }
    if call_type is CallType.BROADCAST:
        properties.update(
            max_participants=MAX_BROADCAST_PARTICIPANTS,
            enable_hidden_participants=True,
            enable_mesh_sfu=True,
            enable_terse_logging=True,
            owner_only_broadcast=False,
            experimental_optimize_large_calls=True,
        )
    return properties


def _every_key() -> frozenset[str]:
    return frozenset().union(*(room_properties(t, nbf=0, exp=0) for t in CallType))


def reuse_properties(call_type: CallType, *, nbf: int, exp: int,
                     existing: Iterable[str] = ()) -> dict[str, Any]:
    """`room_properties` plus `null` for every property another call type sets, or the leftover
    room has (`existing`: its config keys), that this call type does not set."""
    properties = room_properties(call_type, nbf=nbf, exp=exp)
    stale = (_every_key() | set(existing)) - properties.keys()
    return {**{key: None for key in sorted(stale)}, **properties}
