"""JSON answers in the shape the original bridge (NestJS) used for errors."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_str = json.encoder.encode_basestring_ascii  # what _dumps writes for a string


def join_answer(token: str, room_name: str, message_id: str, joining: bool) -> web.Response:
    """json_response({"token", "roomName", "messageId", "joining"}) for the join endpoint.

    The same bytes as _dumps of that dict (compact separators, ASCII-escaped strings), written
    out: JSONEncoder's per-call set-up costs more than the join's JSON itself.
    """
    body = (f'{{"token":{_str(token)},"roomName":{_str(room_name)},"messageId":{_str(message_id)},'
            f'"joining":{"true" if joining else "false"}}}')
    return web.Response(body=body.encode(), content_type="application/json")


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_dumps(data).encode(), status=status, headers=headers,
                        content_type="application/json")


def error_response(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return json_response({"statusCode": status, "error": reason, "message": message},
                         status=status, headers=headers)
