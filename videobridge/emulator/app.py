"""`DailyEmulator`: a Daily REST look-alike over real HTTP, for the sandbox and the tests.

It serves the API at the root of its base URL (use it as DAILY_API_URL as-is), simulates
participants joining with meeting tokens, delivers signed webhooks, and injects faults.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web

from videobridge.emulator.api import ApiError, DailyApi
from videobridge.emulator.control import PREFIX, add_control_routes
from videobridge.emulator.limits import RateLimits
from videobridge.emulator.meetings import Meetings
from videobridge.emulator.state import EmulatedParticipant, EmulatorError, Fault, RoomStore, json_error
from videobridge.emulator.tokens import TokenBook
from videobridge.emulator.webhooks import WebhookDispatcher

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PARAM = re.compile(r"\{(\w+)\}")
_DEFAULT_ERRORS = {400: "invalid-request-error", 401: "authentication-error", 403: "forbidden-error",
                   404: "not-found", 429: "rate-limit-error"}  # fmt: skip


class DailyEmulator:
    def __init__(
        self,
        *,
        api_key: str,
        domain_name: str = "openchat",
        domain_id: str | None = None,
        clock: Callable[[], float] = time.time,
        meeting_ended_delay: float = 0.0,
        hidden_in_presence: bool = True,  # undocumented in Daily; True never hides a busy call
        webhook_attempts: int = 5,
        webhook_backoff: float = 0.05,
        webhook_timeout: float = 5.0,
        probe_timeout: float = 3.0,
        webhook_retry_timestamp: str = "fresh",  # or "original": undocumented in Daily
        rate_limits: bool = True,  # Daily's documented REST limits, 429 beyond them
        monotonic: Callable[[], float] = time.monotonic,  # the rate limits' clock
    ) -> None:
        self._api_key = api_key
        self.domain_name = domain_name
        self.domain_id = domain_id or str(uuid.uuid4())
        self.clock = clock
        self.hidden_in_presence = hidden_in_presence
        self.latency = 0.0  # seconds added to every API request
        self.requests: collections.Counter[str] = collections.Counter()
        self.store = RoomStore(clock)
        self.tokens = TokenBook(api_key=api_key, domain_id=self.domain_id, clock=clock)
        self.dispatcher = WebhookDispatcher(
            clock=clock, attempts=webhook_attempts, backoff=webhook_backoff,
            timeout=webhook_timeout, probe_timeout=probe_timeout,
            retry_timestamp=webhook_retry_timestamp,
        )  # fmt: skip
        self.limits: RateLimits | None = RateLimits(clock=monotonic) if rate_limits else None
        self.meetings = Meetings(clock=clock, ended_delay=meeting_ended_delay, publish=self.dispatcher.publish)
        self.base_url: str | None = None
        self._faults: list[Fault] = []
        self._joins = 0  # a join may move collect()'s next eject time
        self._collected_at: tuple[int, int] | None = None
        self._collect_due = math.inf
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"DailyEmulator(domain_name={self.domain_name!r}, base_url={self.base_url!r})"

    @property
    def url(self) -> str:
        """The Daily API base URL (same as `base_url`); only valid between start() and stop()."""
        if self.base_url is None:
            raise RuntimeError("the emulator is not running")
        return self.base_url

    @property
    def meeting_ended_delay(self) -> float:
        return self.meetings.ended_delay

    @meeting_ended_delay.setter
    def meeting_ended_delay(self, seconds: float) -> None:
        self.meetings.ended_delay = seconds

    # -- lifecycle -------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        DailyApi(self).register(app)
        add_control_routes(app, self)
        app.on_cleanup.append(self._cleanup)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        self._stopping.clear()
        runner = web.AppRunner(self.make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # releases hang_next sleepers
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()  # runs _cleanup via on_cleanup
        else:
            await self._cleanup(None)
        self.base_url = None

    async def _cleanup(self, _app: web.Application | None) -> None:
        await self.meetings.close()
        await self.dispatcher.close()

    # -- observation -----------------------------------------------------------------------------

    def room(self, name: str) -> dict[str, Any] | None:
        room = self.store.live(name)
        return None if room is None else room.to_json(self.domain_name)

    @property
    def rooms(self) -> dict[str, dict[str, Any]]:
        """Live (unexpired) rooms by name."""
        return {r.name: r.to_json(self.domain_name) for r in self.store.newest_first()}

    def participants(self, room: str) -> list[EmulatedParticipant]:
        self.collect()
        return self.meetings.participants(room)

    def visible_participants(self, room: str) -> list[EmulatedParticipant]:
        """Participants as Daily's presence endpoints report them."""
        self.collect()
        people = self.meetings.participants(room)
        return people if self.hidden_in_presence else [p for p in people if not p.hidden]

    @property
    def rate_limited(self) -> int:
        """How many requests the emulator answered 429 for breaking Daily's rate limits."""
        return 0 if self.limits is None else sum(self.limits.limited.values())

    @property
    def webhooks(self) -> list[dict[str, Any]]:
        return [h.to_json(self.domain_id) for h in self.dispatcher.hooks.values()]

    async def drain_webhooks(self) -> None:
        """Wait for delayed meeting.ended events and every queued webhook delivery."""
        await self.meetings.settle()
        await self.dispatcher.drain()

    def stats(self) -> dict[str, Any]:
        self.collect()
        return {
            "base_url": self.base_url,
            "domain_name": self.domain_name,
            "requests": dict(self.requests),
            "rate_limited": self.rate_limited,
            "rooms": sorted(self.rooms),
            "participants": {
                room: [{"session_id": p.session_id, "user_id": p.user_id, "user_name": p.user_name,
                        "owner": p.owner, "can_send": sorted(p.can_send), "start_video_off": p.start_video_off}
                       for p in self.meetings.participants(room)]
                for room in self.meetings.occupied_rooms()
            },
            "webhooks": [{k: v for k, v in h.items() if k != "hmac"} for h in self.webhooks],
            "webhook_deliveries": self.dispatcher.delivered,
        }

    # -- simulated participants ------------------------------------------------------------------

    def join(self, room: str, token: str | None, *, session_id: str | None = None) -> str:
        """Join like a Daily client would; EmulatorError(reason) when Daily would refuse."""
        self.collect()
        record = self.store.live(room)
        if record is None:
            stored = self.store.stored(room)
            raise EmulatorError("exp-room" if stored else "no-room", f"room {room} cannot be joined")
        now = self.clock()
        if record.nbf is not None and record.nbf > now:
            raise EmulatorError("nbf-room", "room is not open yet")
        if token:
            props = self.tokens.properties(token)
            if props.get("room_name") not in (None, room):
                raise EmulatorError("invalid-token", "token is for another room")
        elif record.privacy == "private":
            raise EmulatorError("not-allowed", "private room needs a meeting token")
        else:
            props = {}
        if self.meetings.count(room) >= record.max_participants:
            raise EmulatorError("meeting-full", "max_participants reached")
        owner = props.get("is_owner") is True
        permissions = dict(props.get("permissions") or {})
        if record.config.get("enable_hidden_participants") and not owner:
            permissions.setdefault("hasPresence", False)
        token_exp = props.get("exp")
        will_eject_at = _token_eject_at(props, now)
        if will_eject_at is None and record.config.get("eject_at_room_exp"):
            will_eject_at = record.exp
        participant = EmulatedParticipant(
            session_id=session_id or str(uuid.uuid4()),
            room=room,
            user_id=props.get("user_id"),
            user_name=props.get("user_name"),
            owner=owner,
            permissions=permissions,
            token_exp=token_exp if isinstance(token_exp, int) else None,
            joined_at=now,
            start_video_off=props.get("start_video_off") is True,
            start_audio_off=props.get("start_audio_off") is True,
            will_eject_at=will_eject_at,
            claims=dict(props),
        )
        self.meetings.add(participant)
        self._joins += 1
        return participant.session_id

    def leave(self, room: str, session_id: str) -> None:
        self.meetings.remove(room, session_id)

    def leave_all(self, room: str) -> None:
        self.meetings.remove_all(room)

    def collect(self) -> None:
        """Eject people whose room was deleted or expired with eject_at_room_exp, or whose token says so.

        Runs on every request: it skips the scan until the earliest eject time it found comes due,
        or a join or a room change (RoomStore.version) may have moved it.
        """
        now = self.clock()
        key = (self.store.version, self._joins)
        if key == self._collected_at and now < self._collect_due:
            return
        due = math.inf
        for name in self.meetings.occupied_rooms():
            record = self.store.stored(name)
            room_eject = record.exp if record is not None and record.config.get("eject_at_room_exp") else None
            room_ejects = record is None or (room_eject is not None and record.expired(now))
            for p in self.meetings.participants(name):
                token_at = _token_eject_at(p.claims, p.joined_at)
                if (token_at is not None and token_at <= now) or (token_at is None and room_ejects):
                    self.meetings.remove(name, p.session_id)
                elif token_at is not None or room_eject is not None:
                    due = min(due, token_at if token_at is not None else float(room_eject or 0))
        self._collected_at, self._collect_due = (self.store.version, self._joins), due

    # -- faults ----------------------------------------------------------------------------------

    def fail_next(
        self,
        endpoint: str | None,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        error: str | None = None,
    ) -> None:
        """The next `times` requests to `endpoint` ("POST /rooms"; None = any) answer `status`."""
        self._faults.append(Fault(endpoint=endpoint, times=times, status=status, retry_after=retry_after, error=error))

    def hang_next(self, endpoint: str | None, *, times: int = 1, seconds: float = 30.0) -> None:
        """The next `times` matching requests stall `seconds` before being answered normally."""
        self._faults.append(Fault(endpoint=endpoint, times=times, seconds=seconds))

    def clear_faults(self) -> None:
        self._faults.clear()

    def _take_fault(self, endpoint: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(endpoint):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- request pipeline ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path.startswith(PREFIX):
            return await handler(request)
        response = await self._api(request, handler)
        # Daily's clock, not the host's: the bridge reads its offset from this header
        response.headers["Date"] = formatdate(self.clock(), usegmt=True)
        return response

    async def _api(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None:  # unknown path or method: answer like an API, count nothing
            return json_error(404, "not-found", f"no route {request.method} {request.path}")
        endpoint = request.method + " " + _PARAM.sub(r":\1", resource.canonical)
        self.requests[endpoint] += 1
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        problem = self._auth_problem(request.headers.get("Authorization"))
        if problem is not None:
            return problem
        if self.limits is not None and not self.limits.admit(endpoint):
            return json_error(429, "rate-limit-error", "too many requests")
        fault = self._take_fault(endpoint)
        if fault is not None and fault.status is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            error = fault.error or _DEFAULT_ERRORS.get(fault.status, "server-error")
            return web.json_response({"error": error, "info": "injected fault"}, status=fault.status, headers=headers)
        if fault is not None:
            try:
                await asyncio.wait_for(self._stopping.wait(), fault.seconds)
            except TimeoutError:
                pass
        self.collect()
        try:
            return await handler(request)
        except ApiError as exc:
            return json_error(exc.status, exc.error, exc.info, **exc.extra)
        except web.HTTPException as exc:
            return json_error(exc.status, _DEFAULT_ERRORS.get(exc.status, "invalid-request-error"), exc.reason)

    def _auth_problem(self, header: str | None) -> web.Response | None:
        scheme, _, key = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return json_error(400, "authorization-header-error", "bad Authorization header format")
        if not hmac.compare_digest(key.strip().encode(), self._api_key.encode()):
            return json_error(401, "authentication-error", "the API key is not valid")
        return None


def _token_eject_at(props: dict[str, Any], joined_at: float) -> float | None:
    """When a token's own eject settings remove its holder (they override the room's)."""
    exp, elapsed = props.get("exp"), props.get("eject_after_elapsed")
    if props.get("eject_at_token_exp") and isinstance(exp, int):
        return float(exp)
    if isinstance(elapsed, int) and not isinstance(elapsed, bool):
        return joined_at + elapsed
    return None
