"""One middleware for every request: CORS, JSON errors, the canonical log line and metrics.

A single function rather than a stack keeps the per-request cost of the hot join path low.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

import structlog
from aiohttp import web

from videobridge.daily.errors import DailyError, DailyRateLimited, DailyUnavailable
from videobridge.errors import (
    AuthError,
    BadRequest,
    BodyTooLarge,
    Conflict,
    NotFound,
    RequestError,
    StateError,
    TryAgain,
    VideoBridgeError,
)
from videobridge.logs import access_line
from videobridge.web.keys import CLAIMS, OUTCOME
from videobridge.web.responses import error_response

log = structlog.get_logger("videobridge.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOW_HEADERS = "x-auth-jwt, content-type, authorization"
ALLOW_METHODS = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE = "600"

# The one place an error becomes an HTTP status: the most specific class in an error's MRO wins.
ERROR_STATUS: dict[type[VideoBridgeError], int] = {
    RequestError: 400,
    BadRequest: 400,
    AuthError: 401,
    NotFound: 404,
    Conflict: 409,
    BodyTooLarge: 413,
    TryAgain: 503,
    DailyError: 502,  # Daily answered badly
    DailyUnavailable: 503,  # Daily could not be reached (after retries)
    DailyRateLimited: 503,
}


def error_status(exc: VideoBridgeError) -> int:
    for cls in type(exc).__mro__:
        status = ERROR_STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_message(exc: VideoBridgeError) -> str:
    return f"Daily: {exc}" if isinstance(exc, DailyError) else str(exc)


class Cors:
    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(origins)
        self._any = "*" in self._origins

    def allow(self, origin: str | None) -> str | None:
        if origin is None:
            return None
        if self._any:
            return "*"
        return origin if origin.rstrip("/") in self._origins else None

    def headers(self, origin: str | None) -> dict[str, str]:
        allowed = self.allow(origin)
        if allowed is None:
            return {}
        headers = {"Access-Control-Allow-Origin": allowed}
        if allowed != "*":
            headers["Vary"] = "Origin"
        return headers

    def preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        headers = self.headers(origin)
        if headers:
            headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return web.Response(status=204, headers=headers)


def route_label(request: web.Request) -> str:
    match = request.match_info
    if match.http_exception is not None:
        return "unmatched"
    resource = match.route.resource
    return resource.canonical if resource is not None else "unmatched"


def make_middleware(cors: Cors, observe: Callable[[str, str, int, float], None],
                    ) -> Callable[..., Awaitable[web.StreamResponse]]:
    # bound once (logging is configured before the app is built): skips the proxy's per-call lookup
    access_log = structlog.get_logger("videobridge.http").bind()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = cors.preflight(request)
        else:
            try:
                response = await handler(request)
            except StateError as exc:
                log.error("state_unwritable", error=str(exc))
                response = error_response(503, "the bridge cannot save state right now")
            except (RequestError, DailyError) as exc:
                response = error_response(error_status(exc), error_message(exc))
            except web.HTTPException as exc:
                response = error_response(exc.status, exc.reason if exc.status != 404 else "no such endpoint",
                                          headers={k: v for k, v in exc.headers.items() if k == "Allow"})
            except Exception:
                log.exception("request_crashed", method=request.method, path=request.path)
                response = error_response(500, "internal error")
            if origin is not None:
                response.headers.update(cors.headers(origin))
        elapsed = time.perf_counter() - started
        route = route_label(request)
        observe(route, request.method, response.status, elapsed)
        claims = request.get(CLAIMS)
        access_line(access_log, method=request.method, path=request.path, status=response.status,
                    duration_ms=elapsed * 1000,
                    claim_type=claims.claim_type.value if claims is not None else None,
                    chat_kind=claims.chat.kind.value if claims is not None else None,
                    outcome=request.get(OUTCOME))
        return response

    return middleware
