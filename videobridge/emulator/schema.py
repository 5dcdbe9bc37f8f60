"""Room properties the emulator accepts, with their types: its own copy of Daily's list.

Daily refuses unknown room properties and wrong types with 400 (its OpenAPI schema for
POST /rooms has `additionalProperties: false`). Sources: daily-api.md §3.2 and Daily's generated
Ruby client (`docs/RoomProperties.md`). Deliberately not imported from the bridge: the emulator is
the oracle the bridge's room configuration is checked against.
"""

from __future__ import annotations

from typing import Any

_BOOL = frozenset({
    "enable_people_ui", "enable_pip_ui", "enable_emoji_reactions", "enable_hand_raising",
    "enable_prejoin_ui", "enable_live_captions_ui", "enable_network_ui", "enable_noise_cancellation_ui",
    "enable_breakout_rooms", "enable_knocking", "enable_screenshare", "enable_video_processing_ui",
    "enable_chat", "enable_shared_chat_history", "start_video_off", "start_audio_off",
    "owner_only_broadcast", "eject_at_room_exp", "enable_advanced_chat", "enable_hidden_participants",
    "enable_mesh_sfu", "enable_adaptive_simulcast", "enable_multiparty_adaptive_simulcast",
    "enforce_unique_user_ids", "experimental_optimize_large_calls", "disable_rtmp_geo_fallback",
    "enable_terse_logging", "enable_transcription_storage", "enable_cpu_warning_notifications",
    "enable_dialout",
})  # fmt: skip
_INT = frozenset({"nbf", "exp", "max_participants", "eject_after_elapsed"})
_NUMBER = frozenset({"sfu_switchover"})
_STRING = frozenset({"lang", "meeting_join_hook", "geo", "rtmp_geo", "recordings_template"})
_OBJECT = frozenset({"recordings_bucket", "auto_transcription_settings", "transcription_bucket",
                     "dialout_config", "permissions"})
_ARRAY = frozenset({"streaming_endpoints"})
_RECORDING = ("cloud", "cloud-audio-only", "local", "raw-tracks")
_SEND = ("video", "audio", "screenVideo", "screenAudio")
_ADMIN = ("participants", "streaming", "transcription")
KNOWN = _BOOL | _INT | _NUMBER | _STRING | _OBJECT | _ARRAY | {"enable_recording"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _permissions_problem(value: dict[str, Any]) -> str | None:
    for key, item in value.items():
        if key == "hasPresence":
            if not isinstance(item, bool):
                return "permissions.hasPresence must be a boolean"
        elif key in ("canSend", "canAdmin"):
            allowed = _SEND if key == "canSend" else _ADMIN
            if not isinstance(item, bool) and not (
                isinstance(item, list) and all(isinstance(v, str) and v in allowed for v in item)
            ):
                return f"permissions.{key} must be a boolean or an array of {', '.join(allowed)}"
        elif key == "canReceive":
            if not isinstance(item, dict):
                return "permissions.canReceive must be an object"
        else:
            return f"unknown permission {key}"
    return None


def property_problem(key: str, value: Any) -> str | None:
    """Why Daily would refuse `key: value` in a room's properties, or None. `null` resets a key."""
    if key not in KNOWN:
        return f"unknown room property {key}"
    if value is None:
        return None
    if key in _BOOL and not isinstance(value, bool):
        return f"{key} must be a boolean"
    if key in _INT and not _is_int(value):
        return f"{key} must be an integer"
    if key in _NUMBER and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{key} must be a number"
    if key in _STRING and not isinstance(value, str):
        return f"{key} must be a string"
    if key == "meeting_join_hook" and len(value) > 255:
        return "meeting_join_hook must be at most 255 characters"
    if key in _OBJECT and not isinstance(value, dict):
        return f"{key} must be an object"
    if key in _ARRAY and not isinstance(value, list):
        return f"{key} must be an array"
    if key == "enable_recording" and value not in _RECORDING:
        return f"enable_recording must be one of {', '.join(_RECORDING)}"
    if key == "permissions":
        return _permissions_problem(value)
    return None
