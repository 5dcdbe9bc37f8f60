"""Daily's protocol facts, stated once for the bridge (reference/daily-api.md). No I/O, no imports
beyond `re`: the CLI's light commands read it. The emulator keeps its own copies on purpose, so it
stays an independent check of these."""

from __future__ import annotations

import re

# Room names: letters, digits, `-` and `_`, at most 128 characters (§2).
ROOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

# The webhook events the bridge subscribes to and handles (§6).
MEETING_STARTED = "meeting.started"
MEETING_ENDED = "meeting.ended"
PARTICIPANT_JOINED = "participant.joined"
PARTICIPANT_LEFT = "participant.left"
EVENT_TYPES = (MEETING_STARTED, MEETING_ENDED, PARTICIPANT_JOINED, PARTICIPANT_LEFT)

# Self-signed meeting token claim abbreviations and what they stand for (§4.4).
TOKEN_CLAIMS = {
    "r": "room_name", "d": "domain_id", "ud": "user_id", "u": "user_name", "o": "is_owner",
    "p": "permissions", "vo": "start_video_off", "ao": "start_audio_off", "ss": "enable_screenshare",
    "er": "enable_recording", "k": "knocking", "ejt": "eject_at_token_exp", "eje": "eject_after_elapsed",
    "uil": "lang", "ctoe": "close_tab_on_exit", "rome": "redirect_on_meeting_exit", "mjh": "meeting_join_hook",
    "erui": "enable_recording_ui", "ij": "intercom_join_alert", "sr": "start_cloud_recording",
    "sro": "start_cloud_recording_opts", "ast": "auto_start_transcription", "iat": "issued at",
    "exp": "expires", "nbf": "not before",
}
# Within `p` (permissions): `hp` has presence, `cs` can send (true, false or a subset such as "a"
# for audio only), `ca` can admin.
PERMISSION_CLAIMS = {"hp": "hasPresence", "cs": "canSend", "ca": "canAdmin"}
