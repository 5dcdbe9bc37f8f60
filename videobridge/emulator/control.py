"""Unauthenticated /_emulator/ routes so a human can drive the sandbox with curl."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from videobridge.emulator.state import EmulatorError

if TYPE_CHECKING:
    from videobridge.emulator.app import DailyEmulator

PREFIX = "/_emulator/"


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "json-parsing-error", "info": "body must be a JSON object"}),
            content_type="application/json",
        )
    return data


def _refused(exc: EmulatorError, status: int = 400) -> web.Response:
    return web.json_response({"error": exc.reason, "info": exc.detail or exc.reason}, status=status)


def add_control_routes(app: web.Application, emu: DailyEmulator) -> None:
    async def join(request: web.Request) -> web.Response:
        body = await _json(request)
        token = body.get("token")
        session_id = body.get("session_id")
        if (token is not None and not isinstance(token, str)) or (
            session_id is not None and not isinstance(session_id, str)
        ):
            return web.json_response({"error": "invalid-request-error", "info": "token must be a string"}, status=400)
        try:
            sid = emu.join(request.match_info["name"], token, session_id=session_id)
        except EmulatorError as exc:
            return _refused(exc)
        return web.json_response({"session_id": sid})

    async def leave(request: web.Request) -> web.Response:
        body = await _json(request)
        room = request.match_info["name"]
        try:
            if body.get("all"):
                emu.leave_all(room)
            else:
                emu.leave(room, str(body.get("session_id", "")))
        except EmulatorError as exc:
            return _refused(exc, 404)
        return web.json_response({"left": True})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(emu.stats())

    app.router.add_post(PREFIX + "rooms/{name}/join", join)
    app.router.add_post(PREFIX + "rooms/{name}/leave", leave)
    app.router.add_get(PREFIX + "stats", stats, allow_head=False)
