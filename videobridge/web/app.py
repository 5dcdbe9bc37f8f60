"""The application factory: routes, the middleware, and resources owned by `cleanup_ctx`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

import videobridge.web.handlers as handlers
from videobridge.config import Settings
from videobridge.metrics import Metrics
from videobridge.outbox import RetryPolicy
from videobridge.web.keys import BRIDGE
from videobridge.web.middleware import Cors, make_middleware
from videobridge.wiring import open_bridge

if TYPE_CHECKING:
    from videobridge.notifier import Notifier

# Room for a 4 KiB JWT plus the rest; longer headers still get aiohttp's own 400.
MAX_FIELD_SIZE = 32 * 1024


def make_app(settings: Settings, *, notifier: Notifier | None = None, metrics: Metrics | None = None,
             clock: Callable[[], float] = time.time, notify_retry: RetryPolicy | None = None) -> web.Application:
    metrics = metrics if metrics is not None else Metrics()
    app = web.Application(middlewares=[make_middleware(Cors(settings.cors_origins), metrics.observe_http)],
                          handler_args={"max_field_size": MAX_FIELD_SIZE, "max_line_size": MAX_FIELD_SIZE},
                          client_max_size=256 * 1024)

    async def bridge_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_bridge(settings, notifier=notifier, metrics=metrics, clock=clock,
                               notify_retry=notify_retry) as bridge:
            app[BRIDGE] = bridge
            yield

    app.cleanup_ctx.append(bridge_ctx)
    app.router.add_get("/room/meeting_access_token", handlers.meeting_access_token)
    app.router.add_post("/room/end_meeting", handlers.end_meeting)
    app.router.add_post("/room/decline", handlers.decline)
    app.router.add_post("/room/leave", handlers.leave)
    app.router.add_post("/room/hook", handlers.hook)
    app.router.add_get("/room/meetings", handlers.meetings)
    app.router.add_post("/room/meetings/{room}/end", handlers.admin_end)
    app.router.add_get("/room/status", handlers.status)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
    return app
