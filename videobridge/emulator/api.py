"""The Daily REST routes the emulator serves (daily-api.md §3-§7). Errors are JSON {"error","info"}."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from videobridge.emulator.schema import property_problem
from videobridge.emulator.state import (
    ROOM_NAME_RE,
    EmulatorError,
    RoomRecord,
    WebhookRecord,
    random_room_name,
)
from videobridge.emulator.tokens import validate_rest_properties

if TYPE_CHECKING:
    from videobridge.emulator.app import DailyEmulator

EVENT_TYPES = ("meeting.started", "meeting.ended", "participant.joined", "participant.left")
_RETRY_TYPES = ("circuit-breaker", "exponential")
_ROOM_FIELDS = frozenset({"name", "privacy", "properties"})


class ApiError(Exception):
    def __init__(self, status: int, error: str, info: str, **extra: Any) -> None:
        super().__init__(info)
        self.status, self.error, self.info, self.extra = status, error, info, extra


def _invalid(info: str) -> ApiError:
    return ApiError(400, "invalid-request-error", info)


def _not_found(info: str, **extra: Any) -> ApiError:
    return ApiError(404, "not-found", info, **extra)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "json-parsing-error", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _invalid("request body must be a JSON object")
    return data


def _check_properties(props: Any) -> dict[str, Any]:
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise _invalid("properties must be an object")
    for key, value in props.items():
        problem = property_problem(key, value)
        if problem:
            raise _invalid(problem)
    return props


def _check_fields(body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - _ROOM_FIELDS)
    if unknown:
        raise _invalid(f"unknown field {unknown[0]}; a room takes name, privacy and properties")


def _id_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"{key} must be an array of strings")
    if len(value) > 100:
        raise _invalid(f"{key} takes at most 100 entries")
    return value


def _check_privacy(privacy: Any) -> str:
    if privacy not in ("public", "private"):
        raise _invalid("privacy must be 'public' or 'private'")
    return str(privacy)


class DailyApi:
    def __init__(self, emu: DailyEmulator) -> None:
        self._emu = emu

    def register(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/", self.domain, allow_head=False)
        r.add_post("/rooms", self.create_room)
        r.add_get("/rooms", self.list_rooms, allow_head=False)
        r.add_get("/rooms/{name}", self.get_room, allow_head=False)
        r.add_post("/rooms/{name}", self.update_room)
        r.add_delete("/rooms/{name}", self.delete_room)
        r.add_get("/rooms/{name}/presence", self.room_presence, allow_head=False)
        r.add_post("/rooms/{name}/eject", self.eject)
        r.add_get("/presence", self.presence, allow_head=False)
        r.add_get("/meetings/{meeting}", self.get_meeting, allow_head=False)
        r.add_post("/meeting-tokens", self.create_token)
        r.add_get("/meeting-tokens/{token}", self.get_token, allow_head=False)
        r.add_get("/webhooks", self.list_webhooks, allow_head=False)
        r.add_post("/webhooks", self.create_webhook)
        r.add_get("/webhooks/{uuid}", self.get_webhook, allow_head=False)
        r.add_post("/webhooks/{uuid}", self.update_webhook)
        r.add_delete("/webhooks/{uuid}", self.delete_webhook)

    async def domain(self, request: web.Request) -> web.Response:
        emu = self._emu
        return web.json_response({"domain_name": emu.domain_name, "domain_id": emu.domain_id, "config": {}})

    # -- rooms -----------------------------------------------------------------------------------

    def _live_room(self, name: str) -> RoomRecord:
        room = self._emu.store.live(name)
        if room is None:
            raise _not_found(f"room {name} was not found")
        return room

    async def create_room(self, request: web.Request) -> web.Response:
        body = await _body(request)
        _check_fields(body)
        name = body.get("name")
        if name is None:
            name = random_room_name()
        if not isinstance(name, str) or not ROOM_NAME_RE.match(name):
            raise _invalid("name must be 1-128 characters from A-Z, a-z, 0-9, '-' and '_'")
        privacy = _check_privacy(body.get("privacy", "public"))
        props = _check_properties(body.get("properties"))
        store = self._emu.store
        if store.live(name) is not None:
            # Daily documents no wording for this (and says `info` may change): say it differently
            # from the "already exists" clients like to match, so only a lookup can tell.
            raise _invalid(f"the name {name} is in use by another room")
        room = store.create(name, privacy, props)
        return web.json_response(room.to_json(self._emu.domain_name))

    async def list_rooms(self, request: web.Request) -> web.Response:
        store, query = self._emu.store, request.query
        try:
            limit = int(query.get("limit", "100"))
        except ValueError:
            raise _invalid("limit must be an integer") from None
        if not 1 <= limit <= 100:
            raise _invalid("limit must be between 1 and 100")
        rooms = store.newest_first()
        total = len(rooms)  # Daily counts every room, not just this page
        cursor = query.get("starting_after")
        if cursor:
            seq = store.seq_of(cursor)
            if seq is None:
                raise _invalid("starting_after is not a known room id")
            rooms = [r for r in rooms if r.seq < seq]
        domain = self._emu.domain_name
        return web.json_response({"total_count": total, "data": [r.to_json(domain) for r in rooms[:limit]]})

    async def get_room(self, request: web.Request) -> web.Response:
        room = self._live_room(request.match_info["name"])
        return web.json_response(room.to_json(self._emu.domain_name))

    async def update_room(self, request: web.Request) -> web.Response:
        room = self._live_room(request.match_info["name"])
        body = await _body(request)
        _check_fields(body)
        if "privacy" in body:
            room.privacy = _check_privacy(body["privacy"])
        for key, value in _check_properties(body.get("properties")).items():
            if value is None:  # null resets a property to its default
                room.config.pop(key, None)
            else:
                room.config[key] = value
        self._emu.store.touch()
        return web.json_response(room.to_json(self._emu.domain_name))

    async def delete_room(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        emu = self._emu
        stored = emu.store.stored(name)
        if stored is None:
            raise _not_found(f"room {name} was not found")
        live = emu.store.live(name) is not None
        emu.meetings.remove_all(name)  # deleting a room kicks everyone out
        emu.store.remove(name)
        if not live:  # expired but not collected yet: Daily answers 404 with deleted: true
            raise _not_found(f"room {name} was not found", deleted=True)
        return web.json_response({"deleted": True, "name": name})

    async def room_presence(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._live_room(name)
        query = request.query
        people = [self._emu.meetings.presence_json(p) for p in self._emu.visible_participants(name)]
        if "userId" in query:
            people = [p for p in people if p["userId"] == query["userId"]]
        if "userName" in query:
            people = [p for p in people if p["userName"] == query["userName"]]
        total = len(people)
        if "limit" in query and query["limit"].isdigit():
            people = people[: int(query["limit"])]
        return web.json_response({"total_count": total, "data": people})

    async def eject(self, request: web.Request) -> web.Response:
        """Participants leave at once (participant.left fires); unknown ids are not an error."""
        name = request.match_info["name"]
        self._live_room(name)
        body = await _body(request)
        ids, user_ids = _id_list(body, "ids"), _id_list(body, "user_ids")
        if not ids and not user_ids:
            raise _invalid("ids or user_ids is required")
        if body.get("ban", False) is not False:
            raise _invalid("ban must be false (banning is not emulated)")
        meetings = self._emu.meetings
        wanted = set(ids)
        ejected = [p.session_id for p in meetings.participants(name)
                   if p.session_id in wanted or (p.user_id is not None and p.user_id in user_ids)]
        for session_id in ejected:
            meetings.remove(name, session_id)
        return web.json_response({"ejectedIds": ejected})

    async def presence(self, request: web.Request) -> web.Response:
        emu = self._emu
        out: dict[str, list[dict[str, Any]]] = {}
        for room in emu.meetings.occupied_rooms():
            people = [emu.meetings.presence_json(p) for p in emu.visible_participants(room)]
            if people:
                out[room] = people
        return web.json_response(out)

    async def get_meeting(self, request: web.Request) -> web.Response:
        meeting = self._emu.meetings.meeting_json(request.match_info["meeting"])
        if meeting is None:
            raise _not_found(f"meeting {request.match_info['meeting']} was not found")
        return web.json_response(meeting)

    # -- meeting tokens --------------------------------------------------------------------------

    async def create_token(self, request: web.Request) -> web.Response:
        props = (await _body(request)).get("properties") or {}
        if not isinstance(props, dict):
            raise _invalid("properties must be an object")
        problem = validate_rest_properties(props)
        if problem:
            raise _invalid(problem)
        return web.json_response({"token": self._emu.tokens.issue(props)})

    async def get_token(self, request: web.Request) -> web.Response:
        ignore_nbf = request.query.get("ignoreNbf", "").lower() == "true"
        try:
            props = self._emu.tokens.properties(request.match_info["token"], ignore_nbf=ignore_nbf)
        except EmulatorError as exc:
            raise _invalid(f"token is not valid: {exc.reason}") from None
        return web.json_response({k: v for k, v in props.items() if k not in ("domain_id", "iat")})

    # -- webhooks --------------------------------------------------------------------------------

    def _hook(self, uuid_: str) -> WebhookRecord:
        hook = self._emu.dispatcher.hooks.get(uuid_)
        if hook is None:
            raise _not_found(f"webhook {uuid_} was not found")
        return hook

    async def list_webhooks(self, request: web.Request) -> web.Response:
        emu = self._emu
        return web.json_response([h.to_json(emu.domain_id) for h in emu.dispatcher.hooks.values()])

    async def get_webhook(self, request: web.Request) -> web.Response:
        return web.json_response(self._hook(request.match_info["uuid"]).to_json(self._emu.domain_id))

    async def create_webhook(self, request: web.Request) -> web.Response:
        emu = self._emu
        if emu.dispatcher.hooks:
            raise _invalid("a domain can only have one webhook; update or delete the existing one")
        body = await _body(request)
        if not isinstance(body.get("url"), str):
            raise _invalid("url is required")
        now = emu.clock()
        hook = WebhookRecord(
            uuid=str(uuid.uuid4()),
            url="",
            hmac=base64.b64encode(secrets.token_bytes(32)).decode(),
            event_types=list(EVENT_TYPES),
            created_at=now,
            updated_at=now,
        )
        self._apply(hook, body)
        await self._probe(hook)
        emu.dispatcher.hooks[hook.uuid] = hook
        return web.json_response(hook.to_json(emu.domain_id))

    async def update_webhook(self, request: web.Request) -> web.Response:
        existing = self._hook(request.match_info["uuid"])
        candidate = WebhookRecord(**{f: getattr(existing, f) for f in WebhookRecord.__dataclass_fields__})
        self._apply(candidate, await _body(request))
        await self._probe(candidate)  # also how a FAILED hook is reactivated
        for f in ("url", "hmac", "basic_auth", "retry_type", "event_types"):
            setattr(existing, f, getattr(candidate, f))
        existing.state, existing.failed_count, existing.updated_at = "ACTIVE", 0, self._emu.clock()
        return web.json_response(existing.to_json(self._emu.domain_id))

    async def delete_webhook(self, request: web.Request) -> web.Response:
        hook = self._hook(request.match_info["uuid"])
        self._emu.dispatcher.forget(hook.uuid)
        return web.json_response(hook.to_json(self._emu.domain_id))

    def _apply(self, hook: WebhookRecord, body: dict[str, Any]) -> None:
        if "url" in body:
            url = body["url"]
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise _invalid("url must be an http(s) URL")
            hook.url = url
        if body.get("hmac") is not None:
            secret = body["hmac"]
            try:
                if not isinstance(secret, str) or not base64.b64decode(secret, validate=True):
                    raise ValueError
            except (ValueError, binascii.Error):
                raise _invalid("hmac must be a non-empty base64 string") from None
            hook.hmac = secret
        if "eventTypes" in body:
            events = body["eventTypes"]
            if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
                raise _invalid("eventTypes must be a non-empty array of strings")
            hook.event_types = list(events)
        if "retryType" in body:
            if body["retryType"] not in _RETRY_TYPES:
                raise _invalid("retryType must be 'circuit-breaker' or 'exponential'")
            hook.retry_type = body["retryType"]
        if "basicAuth" in body:
            basic = body["basicAuth"]
            if basic is not None and not isinstance(basic, str):
                raise _invalid("basicAuth must be a string")
            hook.basic_auth = basic

    async def _probe(self, hook: WebhookRecord) -> None:
        if not await self._emu.dispatcher.probe(hook.url, hook.hmac, hook.basic_auth):
            raise _invalid("non-200 status code returned from webhook endpoint, or no answer within a few seconds")
