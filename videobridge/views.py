"""The public view of a call: what the admin API (`GET /room/meetings`, `GET /room/status`)
and `videobridge calls list --json` show, rather than the state file's storage format."""

from __future__ import annotations

from typing import Any

from videobridge.models import Call


def public_call(call: Call) -> dict[str, Any]:
    return {"roomName": call.room_name, "messageId": str(call.message_id), "state": call.state.value,
            "callType": call.call_type.value, "startedBy": call.started_by, "createdAt": call.created_at,
            "chatKind": call.chat.kind.value, "roomExp": call.room_exp}
