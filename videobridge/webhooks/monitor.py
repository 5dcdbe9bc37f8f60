"""The daemon's watch over its Daily webhook, and the self-heal.

Daily's circuit breaker stops a webhook (state FAILED) after 3 failed deliveries, e.g. while the
bridge was down, and never restarts it by itself. Every `interval` seconds (the first time once
`serve` listens: Daily's reactivation probe must reach us) the monitor reads the webhook, keeps
what it saw for metrics and `GET /room/status`, and reactivates a FAILED webhook that points at
this bridge unless self-heal is off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import structlog

from videobridge.daily.errors import DailyError
from videobridge.daily.models import Webhook
from videobridge.events import EventSink
from videobridge.webhooks.ownership import WebhookApi, points_here, reactivate

log = structlog.get_logger("videobridge.webhook")


class WebhookObserver(Protocol):
    def webhook_checked(self, outcome: str) -> None: ...
    def webhook_reactivated(self, outcome: str) -> None: ...


@dataclass(frozen=True, slots=True)
class WebhookStatus:
    """What the last check saw. `state` is Daily's (ACTIVE, FAILED, ...) or one of ours:
    `unknown` (not checked yet), `missing` (none registered), `disabled` (no DAILY_HOOK_HMAC)."""

    state: str = "unknown"
    failed_count: int = 0
    url: str | None = None
    ours: bool | None = None
    checked_at: float | None = None
    error: str | None = None  # the last check's failure, None when it got an answer
    reactivated_at: float | None = None
    reactivation_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "failedCount": self.failed_count, "url": self.url, "ours": self.ours,
                "checkedAt": self.checked_at, "error": self.error, "reactivatedAt": self.reactivated_at,
                "reactivationError": self.reactivation_error}


class WebhookMonitor:
    def __init__(self, *, daily: WebhookApi, secret: bytes | None, interval: float, autoheal: bool = True,
                 observer: WebhookObserver | None = None, events: EventSink | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._daily = daily
        self._secret = secret
        self.interval = interval
        self.check_deadline = 5.0  # retries included; a failed check is simply tried again next interval
        self.autoheal = autoheal
        self._observer = observer
        self._events = events
        self._clock = clock
        self.status = WebhookStatus(state="unknown" if secret else "disabled")
        self.listening = asyncio.Event()  # set by `serve` once the port accepts (Daily's probe needs it)

    @property
    def enabled(self) -> bool:
        return self._secret is not None and self.interval > 0

    async def check_once(self) -> WebhookStatus:
        """Look at Daily's webhook; reactivate it if it is ours, FAILED and self-heal is on."""
        if self._secret is None:
            return self.status
        try:
            hooks = await self._daily.list_webhooks(deadline=self.check_deadline)
        except DailyError as exc:
            self._count("checked", "error")
            log.warning("webhook_check_failed", error=str(exc))
            self.status = replace(self.status, checked_at=self._clock(), error=str(exc)[:200])
            return self.status
        self._count("checked", "ok")
        previous = self.status
        if not hooks:
            self.status = WebhookStatus(state="missing", checked_at=self._clock(),
                                        reactivated_at=previous.reactivated_at)
            if previous.state != "missing":
                log.warning("webhook_missing", hint="run `videobridge webhook register URL`")
                self._record("webhook_missing", "none registered at Daily")
            return self.status
        hook = hooks[0]
        ours = points_here(hook, self._secret)
        self.status = WebhookStatus(state=hook.state, failed_count=hook.failed_count, url=hook.url, ours=ours,
                                    checked_at=self._clock(), reactivated_at=previous.reactivated_at,
                                    reactivation_error=previous.reactivation_error if not hook.active else None)
        if hook.active:
            if previous.state not in ("ACTIVE", "unknown", "disabled"):
                log.info("webhook_active", url=hook.url, was=previous.state)
            return self.status
        if hook.state != "FAILED" or not ours or not self.autoheal:
            if previous.state != hook.state:
                why = ("self-heal is off (VIDEOBRIDGE_WEBHOOK_AUTOHEAL)" if not self.autoheal
                       else "it points elsewhere" if not ours else "only FAILED webhooks are reactivated")
                log.warning("webhook_not_active", state=hook.state, url=hook.url, failed_count=hook.failed_count,
                            left_alone=why)
                self._record("webhook_not_active", f"{hook.state}; left alone: {why}")
            return self.status
        await self._reactivate(hook)
        return self.status

    async def _reactivate(self, hook: Webhook) -> None:
        try:
            healed = await reactivate(self._daily, hook)
        except DailyError as exc:
            self._count("reactivated", "failed")
            log.warning("webhook_reactivation_failed", url=hook.url, error=str(exc), retry_in=self.interval)
            self.status = replace(self.status, reactivation_error=str(exc)[:200])
            self._record("webhook_reactivation_failed", str(exc)[:120])
            return
        self._count("reactivated", "ok")
        log.warning("webhook_reactivated", url=healed.url, state=healed.state, was=hook.state,
                    failed_count=hook.failed_count)
        self._record("webhook_reactivated", f"{hook.state} -> {healed.state}")
        self.status = replace(self.status, state=healed.state, failed_count=healed.failed_count,
                               reactivated_at=self._clock(), reactivation_error=None)

    async def run(self) -> None:
        if not self.enabled:
            return
        await self.listening.wait()
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("webhook_check_crashed")
            await asyncio.sleep(self.interval)

    def _count(self, what: str, outcome: str) -> None:
        if self._observer is not None:
            (self._observer.webhook_checked if what == "checked" else self._observer.webhook_reactivated)(outcome)

    def _record(self, event: str, detail: str) -> None:
        if self._events is not None:
            self._events.record(event, None, detail)
