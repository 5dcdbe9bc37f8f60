"""Async client for the Daily REST API (rooms, meeting tokens, presence, webhooks).

Only 429, 5xx, transport errors and timeouts are retried, within a per-call deadline. Client-side
limits follow Daily's published tiers (limits.py): 20 req/s and 100 per 5 s overall; 2 req/s and
50 per 30 s for DELETE /rooms/:name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from videobridge.daily.errors import DailyNotFound, DailyRejected, DailyRoomExists, DailyUnavailable
from videobridge.daily.limits import DAILY_DELETE_LIMITS, DAILY_LIMITS, Ticket, Window, per_second
from videobridge.daily.models import DomainInfo, Meeting, Participant, Room, Webhook
from videobridge.daily.retry import DailyObserver, RetryPolicy
from videobridge.daily.transport import DailyTransport

DEFAULT_BASE_URL = "https://api.daily.co/v1"
_WEBHOOK_FIELDS = {"event_types": "eventTypes", "retry_type": "retryType", "basic_auth": "basicAuth"}


def _room_path(name: str) -> str:
    return "/rooms/" + quote(name, safe="")


def _webhook_path(uuid: str) -> str:
    return "/webhooks/" + quote(uuid, safe="")


class DailyClient:
    """Typed Daily REST calls. Every method takes `deadline=` (seconds, retries included)."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        request_timeout: float = 10.0,
        deadline: float = 20.0,
        rate_per_second: float | None = None,
        delete_rate_per_second: float | None = None,
        limits: Sequence[Window] = DAILY_LIMITS,
        delete_limits: Sequence[Window] = DAILY_DELETE_LIMITS,
        observer: DailyObserver | None = None,
        retry_policy: RetryPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """`rate_per_second`/`delete_rate_per_second` replace the windows with one simple rate
        (tests); `monotonic`/`sleep` let a test run the limits on a faster clock."""
        self._transport = DailyTransport(
            api_key=api_key,
            base_url=base_url,
            session=session,
            request_timeout=request_timeout,
            deadline=deadline,
            limits=limits if rate_per_second is None else per_second(rate_per_second),
            delete_limits=delete_limits if delete_rate_per_second is None else per_second(delete_rate_per_second),
            observer=observer,
            retry_policy=retry_policy,
            monotonic=monotonic,
            sleep=sleep,
        )
        self._call = self._transport.call

    def __repr__(self) -> str:  # never show the key
        return f"DailyClient(base_url={self._transport.base_url!r})"

    async def close(self) -> None:
        await self._transport.close()

    @property
    def clock_offset(self) -> float | None:
        """Daily's wall clock minus ours (seconds), from the Date header of the last answer."""
        return self._transport.clock_offset

    async def __aenter__(self) -> DailyClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- API -------------------------------------------------------------------------------------

    async def get_domain(self, *, deadline: float | None = None) -> DomainInfo:
        return DomainInfo.from_json(await self._call("GET", "GET /", "/", deadline=deadline))

    async def create_room(
        self,
        name: str,
        *,
        privacy: str = "private",
        properties: Mapping[str, Any],
        deadline: float | None = None,
    ) -> Room:
        """DailyRoomExists (carrying the room) when the name is taken.

        Daily does not document that answer and says `info` texts may change, so any 400 is
        checked with GET /rooms/:name: the room exists -> DailyRoomExists, else the 400 stands.
        """
        body = {"name": name, "privacy": privacy, "properties": dict(properties)}
        try:
            data = await self._call("POST", "POST /rooms", "/rooms", body=body, deadline=deadline)
        except DailyRejected as exc:
            if exc.status != 400:
                raise
            try:
                existing = await self.get_room(name, deadline=deadline)
            except DailyNotFound:
                raise exc from None
            raise DailyRoomExists(endpoint=exc.endpoint, status=exc.status, error=exc.error, info=exc.info,
                                  attempts=exc.attempts, room=existing) from None
        return Room.from_json(data)

    async def get_room(self, name: str, *, deadline: float | None = None) -> Room:
        return Room.from_json(await self._call("GET", "GET /rooms/:name", _room_path(name), deadline=deadline))

    async def update_room(
        self,
        name: str,
        *,
        properties: Mapping[str, Any],
        privacy: str | None = None,
        deadline: float | None = None,
    ) -> Room:
        body: dict[str, Any] = {"properties": dict(properties)}
        if privacy is not None:
            body["privacy"] = privacy
        data = await self._call("POST", "POST /rooms/:name", _room_path(name), body=body, deadline=deadline)
        return Room.from_json(data)

    async def delete_room(self, name: str, *, deadline: float | None = None, slot: Ticket | None = None) -> bool:
        """True if deleted now, False if Daily no longer had it (deletes are idempotent for us).

        `slot`: from `delete_slot()`, so the wait for Daily's delete limit can happen first."""
        try:
            await self._call("DELETE", "DELETE /rooms/:name", _room_path(name), deadline=deadline, slow=True,
                             reserved=slot if slot is not None and not slot.done else None)
        except DailyNotFound:
            return False
        return True

    @asynccontextmanager
    async def delete_slot(self) -> AsyncIterator[Ticket]:
        """Wait for room-delete capacity (no deadline); an unspent slot is handed back on exit."""
        ticket = await self._transport.reserve_slow()
        try:
            yield ticket
        finally:
            ticket.limiter.release(ticket, sent=False)  # no-op once a request spent it

    async def list_rooms(self, *, page_size: int = 100, deadline: float | None = None) -> AsyncIterator[Room]:
        """All live rooms, newest first; `deadline` applies to each page."""
        params: dict[str, str] = {"limit": str(max(1, min(page_size, 100)))}
        while True:
            data = await self._call("GET", "GET /rooms", "/rooms", params=params, deadline=deadline)
            page = [item for item in data.get("data") or [] if isinstance(item, dict)]
            if not page:
                return
            for item in page:
                yield Room.from_json(item)
            params["starting_after"] = str(page[-1].get("id", ""))

    async def create_meeting_token(self, properties: Mapping[str, Any], *, deadline: float | None = None) -> str:
        body = {"properties": dict(properties)}
        data = await self._call("POST", "POST /meeting-tokens", "/meeting-tokens", body=body, deadline=deadline)
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise DailyUnavailable(endpoint="POST /meeting-tokens", status=200, info="answer has no token")
        return token

    async def get_meeting(self, meeting_id: str, *, deadline: float | None = None) -> Meeting:
        """GET /meetings/:meeting (id, room, start_time, duration, ongoing, max_participants)."""
        path = "/meetings/" + quote(meeting_id, safe="")
        return Meeting.from_json(await self._call("GET", "GET /meetings/:meeting", path, deadline=deadline))

    async def room_presence(self, name: str, *, deadline: float | None = None) -> list[Participant]:
        path = _room_path(name) + "/presence"
        data = await self._call("GET", "GET /rooms/:name/presence", path, deadline=deadline)
        return [Participant.from_json(p, room=name) for p in data.get("data") or [] if isinstance(p, dict)]

    async def eject(self, name: str, session_ids: Sequence[str], *,
                    deadline: float | None = None) -> list[str]:
        """POST /rooms/:name/eject by participant (session) id; the ids Daily ejected (absent ones are not an error)."""
        path = _room_path(name) + "/eject"
        data = await self._call("POST", "POST /rooms/:name/eject", path, body={"ids": list(session_ids)},
                                deadline=deadline)
        ejected = data.get("ejectedIds")
        return [str(i) for i in ejected] if isinstance(ejected, list) else []

    async def presence(self, *, deadline: float | None = None) -> dict[str, list[Participant]]:
        data = await self._call("GET", "GET /presence", "/presence", deadline=deadline)
        return {
            room: [Participant.from_json(p, room=room) for p in people if isinstance(p, dict)]
            for room, people in data.items()
            if isinstance(people, list) and people
        }

    async def list_webhooks(self, *, deadline: float | None = None) -> list[Webhook]:
        data = await self._call("GET", "GET /webhooks", "/webhooks", deadline=deadline, shape=(list, dict))
        items = data if isinstance(data, list) else data.get("data") or []
        return [Webhook.from_json(w) for w in items if isinstance(w, dict)]

    async def get_webhook(self, uuid: str, *, deadline: float | None = None) -> Webhook:
        path = _webhook_path(uuid)
        return Webhook.from_json(await self._call("GET", "GET /webhooks/:uuid", path, deadline=deadline))

    async def create_webhook(
        self,
        *,
        url: str,
        hmac: str | None,
        event_types: list[str] | tuple[str, ...],
        retry_type: str = "exponential",
        deadline: float | None = None,
    ) -> Webhook:
        body: dict[str, Any] = {"url": url, "eventTypes": list(event_types), "retryType": retry_type}
        if hmac is not None:
            body["hmac"] = hmac
        return Webhook.from_json(await self._call("POST", "POST /webhooks", "/webhooks", body=body, deadline=deadline))

    async def update_webhook(self, uuid: str, *, deadline: float | None = None, **fields: Any) -> Webhook:
        """POST /webhooks/:uuid (also reactivates a FAILED hook). snake_case names are translated."""
        body = {_WEBHOOK_FIELDS.get(k, k): list(v) if k == "event_types" else v for k, v in fields.items()}
        path = _webhook_path(uuid)
        return Webhook.from_json(await self._call("POST", "POST /webhooks/:uuid", path, body=body, deadline=deadline))

    async def delete_webhook(self, uuid: str, *, deadline: float | None = None) -> None:
        path = _webhook_path(uuid)
        await self._call("DELETE", "DELETE /webhooks/:uuid", path, deadline=deadline)
