"""Route handlers: thin adapters from HTTP to the call service."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web

from videobridge.auth import ACCESS_CLAIMS, DECLINE_CLAIMS, END_CLAIMS, LEAVE_CLAIMS
from videobridge.daily.protocol import MEETING_ENDED, MEETING_STARTED, PARTICIPANT_JOINED, PARTICIPANT_LEFT
from videobridge.errors import AuthError, BadRequest, BodyTooLarge, NotFound
from videobridge.models import Initiator
from videobridge.views import public_call
from videobridge.web.keys import BRIDGE, CLAIMS, OUTCOME
from videobridge.web.responses import error_response, join_answer, json_response
from videobridge.webhooks.signature import MAX_BODY, PAST_WINDOW_SECONDS, WINDOW_SECONDS, Verdict, WebhookEvent
from videobridge.wiring import Bridge

log = structlog.get_logger("videobridge.http")

MAX_NAME = 256
U128_MAX = 2**128 - 1
MAX_LEAVE_BODY = 4096
REMEMBER_EVENT_SECONDS = PAST_WINDOW_SECONDS + WINDOW_SECONDS  # beyond that a replay is refused as stale
# Daily session (participant) ids are UUIDs; anything else cannot name a session.
SESSION_ID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_initiator(query: Mapping[str, str]) -> Initiator:
    """The front end builds the query unencoded: accept odd display names, insist on a username."""
    username = query.get("initiator-username", "").strip()
    if not username:
        raise BadRequest("initiator-username is required")
    if len(username) > MAX_NAME:
        raise BadRequest(f"initiator-username is longer than {MAX_NAME} characters")
    display = query.get("initiator-displayname")
    display = display.strip()[:MAX_NAME] or None if display is not None else None
    avatar_text = query.get("initiator-avatarid", "").strip()
    avatar: int | None = None
    if avatar_text:
        if not (avatar_text.isascii() and avatar_text.isdecimal()) or len(avatar_text) > 39 \
                or int(avatar_text) > U128_MAX:
            raise BadRequest("initiator-avatarid must be a decimal u128")
        avatar = int(avatar_text) or None
    return Initiator(username=username, display_name=display, avatar_id=avatar)


async def meeting_access_token(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    claims = bridge.verifier.verify(request.headers.get("x-auth-jwt"), accept=ACCESS_CLAIMS)
    request[CLAIMS] = claims
    grant = await bridge.calls.access(claims, parse_initiator(request.query))
    request[OUTCOME] = "joined" if grant.joining else "started"
    return join_answer(grant.token, grant.room_name, str(grant.message_id), grant.joining)


async def end_meeting(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    claims = bridge.verifier.verify(request.headers.get("x-auth-jwt"), accept=END_CLAIMS)
    request[CLAIMS] = claims
    answer = await bridge.calls.request_end(claims)
    request[OUTCOME] = "ended" if answer.ended else "kept"
    body: dict[str, Any] = {"ended": answer.ended, "roomName": answer.room_name}
    if answer.participants is not None:
        body["participants"] = answer.participants
    if answer.kept is not None:
        body["reason"] = answer.kept.value
    return json_response(body)


async def decline(request: web.Request) -> web.Response:
    """SPEC §9: the body is ignored (the ring screen sends none)."""
    bridge = request.app[BRIDGE]
    claims = bridge.verifier.verify(request.headers.get("x-auth-jwt"), accept=DECLINE_CLAIMS)
    request[CLAIMS] = claims
    request[OUTCOME] = (await bridge.calls.decline(claims)).value
    return web.Response(status=204)


async def leave(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    claims = bridge.verifier.verify(request.headers.get("x-auth-jwt"), accept=LEAVE_CLAIMS)
    request[CLAIMS] = claims
    session_id = parse_leave_body(await read_small_body(request, MAX_LEAVE_BODY))
    await bridge.calls.leave(claims, session_id)
    request[OUTCOME] = "left"
    return web.Response(status=204)


async def read_small_body(request: web.Request, limit: int) -> bytes:
    """The body, or 413 past `limit` bytes (read no further than that, chunked or not)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"body larger than {limit} bytes")
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
    return bytes(body)


def parse_leave_body(raw: bytes) -> str | None:
    """Empty, or JSON `{"sessionId": "<Daily session id>"}` (null or absent: no session named).

    Any Content-Type (or none) is taken: Android sets one only when it sends a body.
    """
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        raise BadRequest('body must be empty or JSON {"sessionId": "..."}') from None
    if not isinstance(data, dict):
        raise BadRequest('body must be empty or JSON {"sessionId": "..."}')
    session_id = data.get("sessionId")
    if session_id is None:
        return None
    if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id):
        raise BadRequest("sessionId must be a Daily session id (a UUID)")
    return session_id.lower()


async def hook(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    if request.content_length is not None and request.content_length > MAX_BODY:
        bridge.metrics.webhook_event(Verdict.MALFORMED.value)
        return error_response(413, "webhook body too large")
    body = await request.read()  # bounded by the app's client_max_size
    if len(body) > MAX_BODY:
        bridge.metrics.webhook_event(Verdict.MALFORMED.value)
        return error_response(413, "webhook body too large")
    verdict, event = bridge.webhooks.check(body, request.headers.get("X-Webhook-Timestamp"),
                                           request.headers.get("X-Webhook-Signature"))
    # Daily retries to whichever instance the balancer picks: a shared store remembers event ids
    # for every instance (a held one answers at once: the verifier's memory is the whole story)
    if (verdict is Verdict.ACCEPTED and event is not None and event.id
            and not await bridge.store.first_sighting("webhook:" + event.id, REMEMBER_EVENT_SECONDS)):
        verdict = Verdict.DUPLICATE
    bridge.metrics.webhook_event(verdict.value)
    request[OUTCOME] = verdict.value
    if verdict is Verdict.ACCEPTED and event is not None:
        _dispatch(bridge, event)
    elif verdict in (Verdict.BAD_SIGNATURE, Verdict.STALE, Verdict.MALFORMED, Verdict.DISABLED):
        log.warning("webhook_refused", verdict=verdict.value)
        message = {Verdict.BAD_SIGNATURE: "webhook signature does not verify",
                   Verdict.STALE: "webhook timestamp outside the accepted window",
                   Verdict.MALFORMED: "webhook body is not a Daily event",
                   Verdict.DISABLED: "webhooks are not configured (DAILY_HOOK_HMAC)"}[verdict]
        return error_response(verdict.http_status, message)
    return json_response({"status": verdict.value})


def _dispatch(bridge: Bridge, event: WebhookEvent) -> None:
    """Work after the answer: Daily wants its 200 within seconds."""
    assert event.room is not None
    log.info("webhook_event", type=event.type, room=event.room, event_id=event.id)
    if event.type in (PARTICIPANT_JOINED, PARTICIPANT_LEFT):
        bridge.calls.presence.forget(event.room)  # the next decline or leave reads Daily again
    if event.type == MEETING_ENDED:
        bridge.calls.meeting_ended_soon(event.room, event.payload)
    elif event.type in (MEETING_STARTED, PARTICIPANT_JOINED):
        meeting_id = event.payload.get("meeting_id") if event.type == MEETING_STARTED else None
        bridge.calls.mark_live_soon(event.room, meeting_id if isinstance(meeting_id, str) and meeting_id else None)
    # participant.left needs nothing: meeting.ended follows the last one, and the poller (two
    # empty polls) backs it up. Polling at once would only see Daily's presence, which lags.


def _admin(request: web.Request) -> Bridge:
    bridge = request.app[BRIDGE]
    expected = bridge.settings.admin_token
    if not expected:
        raise NotFound("no such endpoint")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
        raise AuthError("admin endpoints need Authorization: Bearer <VIDEOBRIDGE_ADMIN_TOKEN>")
    return bridge


async def meetings(request: web.Request) -> web.Response:
    bridge = _admin(request)
    await bridge.store.refresh(outbox=False)  # on a shared store: what every instance changed
    return json_response([public_call(c) for c in bridge.store.calls.values()])


async def status(request: web.Request) -> web.Response:
    """Admin: everything `videobridge calls watch` shows, in one read from memory."""
    from videobridge.status import snapshot

    bridge = _admin(request)
    await bridge.store.refresh()  # on a shared store: what every instance changed
    return json_response(snapshot(bridge))


async def admin_end(request: web.Request) -> web.Response:
    bridge = _admin(request)
    room = request.match_info["room"]
    if await bridge.store.get_call(room) is None:
        raise NotFound(f"no tracked call in room {room[:64]}")
    await bridge.calls.end_call(room, "admin")
    return json_response({"ended": True, "roomName": room})


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    checks = bridge.readiness()
    ok = all(checks.values())
    body = {"status": "ready" if ok else "unready", "checks": checks, "leader": bridge.leading}
    return json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    return await request.app[BRIDGE].metrics.handle_metrics(request)

