"""The Daily room a call gets: the original bridge's properties, expiry from the call type."""

from __future__ import annotations

from typing import Any

from videobridge.models import CallType

HOUR = 3600
MAX_PARTICIPANTS = 20
MAX_BROADCAST_PARTICIPANTS = 200


def room_lifetime(is_diamond: bool) -> int:
    """Seconds a room lives; equals the max_duration OpenChat's canister timer gets."""
    return 2 * HOUR if is_diamond else HOUR


def room_properties(call_type: CallType, *, nbf: int, exp: int) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "nbf": nbf,
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
