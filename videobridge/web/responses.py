"""JSON answers in the shape the original bridge (NestJS) used for errors."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

_dumps = json.JSONEncoder(separators=(",", ":")).encode


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
