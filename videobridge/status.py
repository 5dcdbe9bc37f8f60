"""`GET /room/status` (admin): one snapshot of the running bridge for `videobridge calls watch`.

Everything is read from memory (no Daily or IC call), so it is cheap enough to ask every second.
Times are unix seconds from the bridge's clock; ages are seconds. `version` lets a client refuse
a shape it does not know.
"""

from __future__ import annotations

import os
import time
from typing import Any

from videobridge.views import public_call
from videobridge.wiring import Bridge

STATUS_VERSION = 1
RECENT_EVENTS = 10


def snapshot(bridge: Bridge, *, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    polled = bridge.poller.last_success is not None
    occupancy = bridge.poller.occupancy
    calls = [
        {**public_call(c), "participants": occupancy.get(c.room_name, 0) if polled else None}
        for c in sorted(bridge.store.calls.values(), key=lambda c: c.created_at)
    ]
    outbox = bridge.outbox
    checks = bridge.readiness()
    failing_since = bridge.health.failing_since
    hook = bridge.webhook
    return {
        "version": STATUS_VERSION,
        "now": now,
        "pid": os.getpid(),
        "startedAt": bridge.started_at,
        "ready": all(checks.values()),
        "checks": checks,
        "calls": calls,
        "outbox": {
            "depth": outbox.depth,
            "oldestAgeSeconds": outbox.oldest_age(),
            "lastError": None if outbox.last_error is None
            else {"at": outbox.last_error[0], "message": outbox.last_error[1]},
        },
        "poller": {
            "interval": bridge.settings.presence_interval,
            "lastSuccessAgeSeconds": bridge.poller.seconds_since_success(),
            "failures": bridge.poller.failures,
            "healthy": checks.get("poller", True),
        },
        "daily": {
            "reachable": checks.get("daily", True),
            "failingForSeconds": None if failing_since is None else time.monotonic() - failing_since,
        },
        "ic": {
            "enabled": bridge.settings.notifications_enabled,
            "lastDeliveryAt": outbox.last_delivered_at,
            "failures": outbox.failures,
        },
        "webhook": {
            **(hook.status.to_json() if hook is not None else {"state": "unknown"}),
            "checkInterval": bridge.settings.webhook_check_interval,
            "autoheal": bridge.settings.webhook_autoheal,
        },
        "events": [e.to_json() for e in bridge.events.last(RECENT_EVENTS)],
    }
