"""Assembles the running bridge: store, Daily client, tokens, outbox, calls, poller.

`open_bridge` is the one place these services are built and wired. It is an async context
manager: everything it starts it also stops, in order (background tasks first, then the state
file, then HTTP sessions). `serve` runs it with its background workers; `calls end` without a
daemon runs it with them off, so what it plans waits in the state file's outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

from videobridge.auth import JwtVerifier
from videobridge.background import BackgroundTasks
from videobridge.calls import CallService
from videobridge.config import Settings
from videobridge.daily import DailyClient, DailyError, TokenMinter
from videobridge.errors import ConfigError
from videobridge.events import EventLog
from videobridge.health import DailyHealth
from videobridge.metrics import Metrics
from videobridge.outbox import Outbox, RetryPolicy
from videobridge.poller import PresencePoller
from videobridge.state import Store, describe_store, open_store, summarize
from videobridge.webhooks.monitor import WebhookMonitor
from videobridge.webhooks.signature import WebhookVerifier

if TYPE_CHECKING:
    from videobridge.notifier import Notifier

log = structlog.get_logger("videobridge")
DOMAIN_RETRY_SECONDS = 30.0


@dataclass(slots=True)
class Bridge:
    settings: Settings
    store: Store
    daily: DailyClient
    minter: TokenMinter
    jwt: JwtVerifier | None  # None only without workers (no HTTP edge, OC_PUBLIC not needed)
    webhooks: WebhookVerifier
    outbox: Outbox
    calls: CallService
    poller: PresencePoller
    health: DailyHealth
    metrics: Metrics
    events: EventLog = field(default_factory=EventLog)
    webhook: WebhookMonitor | None = None
    started_at: float = field(default_factory=time.time)
    leading: bool = False  # runs the poller and the outbox worker (on a shared store: holds the lease)

    @property
    def verifier(self) -> JwtVerifier:
        if self.jwt is None:
            raise ConfigError("OC_PUBLIC is required but not set (environment, .env or credential)")
        return self.jwt

    def readiness(self) -> dict[str, bool]:
        """GET /readyz's checks (also the videobridge_ready series)."""
        return {self.store.kind: self.store.is_open, "daily": self.health.reachable(), "poller": self.poller.healthy()}


MAINNET_HOSTS = ("icp-api.io", "ic0.app", "icp0.io")


def build_notifier(settings: Settings) -> Notifier:
    from videobridge.notifier import IcNotifier, LoggingNotifier, identity_principal, load_identity

    if not settings.notifications_enabled:
        log.warning("notifications_disabled",
                    reason="IC_URL and OC_IDENTITY are both needed; OpenChat will not hear of calls")
        return LoggingNotifier()
    assert settings.ic_url and settings.oc_identity
    try:
        identity = load_identity(settings.oc_identity)
    except ValueError as exc:
        raise ConfigError(f"OC_IDENTITY: {exc}") from None
    log.info("ic_identity", principal=identity_principal(identity), ic_url=settings.ic_url,
             ic_root_key="mainnet" if settings.ic_root_key is None else "VIDEOBRIDGE_IC_ROOT_KEY")
    if settings.ic_root_key is None:
        host = urlsplit(settings.ic_url).hostname or ""
        if not any(host == h or host.endswith("." + h) for h in MAINNET_HOSTS):
            # agent-js would fetch this network's key; we trust only mainnet's unless told
            log.warning("ic_root_key_mainnet", ic_url=settings.ic_url,
                        reason="IC_URL is not a mainnet boundary node: replies verify only if "
                               "VIDEOBRIDGE_IC_ROOT_KEY is set (videobridge config check shows the key)")
        return IcNotifier(ic_url=settings.ic_url, identity=identity)
    return IcNotifier(ic_url=settings.ic_url, identity=identity, root_key=settings.ic_root_key)


async def _fetch_domain(daily: DailyClient, minter: TokenMinter, *, deadline: float) -> bool:
    try:
        domain = await daily.get_domain(deadline=deadline)
    except DailyError as exc:
        log.warning("daily_domain_unknown", error=str(exc), fallback="POST /meeting-tokens",
                    retry_in=DOMAIN_RETRY_SECONDS)
        return False
    minter.set_domain_id(domain.domain_id)
    log.info("daily_domain", domain=domain.domain_name, self_signed_tokens=True)
    return True


async def _resolve_domain(daily: DailyClient, minter: TokenMinter) -> None:
    """Self-signed tokens need the domain id; until it is known, tokens come from the REST API."""
    while not await _fetch_domain(daily, minter, deadline=10.0):  # noqa: ASYNC110 - a retry, not a wait for an event
        await asyncio.sleep(DOMAIN_RETRY_SECONDS)


async def _lead(bridge: Bridge) -> None:
    """What only one instance does at a time: deliver notifications and poll presence."""
    bridge.leading = True
    try:
        bridge.calls.resume()
        async with asyncio.TaskGroup() as group:
            group.create_task(bridge.outbox.run(), name="outbox")
            group.create_task(bridge.poller.run(), name="poller")
    finally:
        bridge.leading = False




@contextlib.asynccontextmanager
async def open_bridge(settings: Settings, *, notifier: Notifier | None = None, metrics: Metrics | None = None,
                      workers: bool = True, daily_deadline: float | None = None,
                      clock: Callable[[], float] = time.time,
                      notify_retry: RetryPolicy | None = None) -> AsyncIterator[Bridge]:
    """The bridge's services, wired. `workers=False`: no outbox worker, poller, webhook monitor or
    domain resolver, and no resumed room deletes; for a one-shot command on the state file."""
    store = open_store(store_url=settings.store_url, state_path=settings.state_path)
    await store.aopen(wait=workers)  # first: a held state file is the first thing to report
    try:
        if not settings.daily_api_key:
            raise ConfigError("DAILY_API_KEY is required but not set (environment, .env or credential)")
        if workers and not settings.oc_public:
            raise ConfigError("OC_PUBLIC is required but not set (environment, .env or credential)")
        notifier = notifier if notifier is not None else build_notifier(settings)
    except BaseException:
        await store.aclose()
        raise
    metrics = metrics if metrics is not None else Metrics()
    events = EventLog(clock=clock)
    health = DailyHealth(forward=metrics)
    if daily_deadline is None:
        daily = DailyClient(api_key=settings.daily_api_key, base_url=settings.daily_api_url, observer=health)
    else:  # a one-shot command: shorter deadlines than the daemon's
        daily = DailyClient(api_key=settings.daily_api_key, base_url=settings.daily_api_url, observer=health,
                            request_timeout=min(5.0, daily_deadline), deadline=daily_deadline)
    minter = TokenMinter(api_key=settings.daily_api_key, domain_id=settings.daily_domain_id, client=daily)
    outbox = Outbox(store=store, notifier=notifier, clock=clock, retry=notify_retry or RetryPolicy(),
                    observer=metrics, legacy_user_end=settings.legacy_user_end, events=events)
    calls = CallService(store=store, rooms=daily, minter=minter, outbox=outbox,
                        start_grace=settings.start_grace, clock=clock, observer=metrics, events=events)
    poller = PresencePoller(daily=daily, calls=calls, interval=settings.presence_interval, observer=metrics)
    monitor = WebhookMonitor(daily=daily, secret=settings.daily_hook_hmac, interval=settings.webhook_check_interval,
                             autoheal=settings.webhook_autoheal, observer=metrics.ops, events=events, clock=clock)
    bridge = Bridge(settings=settings, store=store, daily=daily, minter=minter,
                    jwt=JwtVerifier(settings.oc_public) if settings.oc_public else None,
                    webhooks=WebhookVerifier(settings.daily_hook_hmac, clock=clock),
                    outbox=outbox, calls=calls, poller=poller, health=health, metrics=metrics,
                    events=events, webhook=monitor)
    metrics.ops.set_sources(ready=lambda: all(bridge.readiness().values()),
                            webhook=lambda: (monitor.status.state, monitor.status.failed_count),
                            calls=lambda: store.calls, start_grace=settings.start_grace, clock=clock,
                            leading=lambda: bridge.leading)
    metrics.set_state_source(lambda: summarize(store.calls), outbox_depth=lambda: outbox.depth,
                             outbox_age=outbox.oldest_age, poll_age=poller.seconds_since_success)
    workers_ = BackgroundTasks("bridge")
    if workers:
        if not settings.daily_hook_hmac:
            log.warning("webhooks_disabled", reason="DAILY_HOOK_HMAC is not set; the poller alone ends calls")
        workers_.spawn(store.lead(lambda: _lead(bridge), on_change=lambda _: metrics.ops.leader_changed()),
                       name="leader")
        if monitor.enabled:
            workers_.spawn(monitor.run(), name="webhook-monitor")
        if not minter.self_signing and not await _fetch_domain(daily, minter, deadline=5.0):
            workers_.spawn(_resolve_domain(daily, minter), name="daily-domain")
        log.info("state_loaded", store=describe_store(settings), calls=len(store.calls), outbox=outbox.depth)
    try:
        yield bridge
    finally:
        await workers_.aclose()
        await calls.aclose()
        await store.aclose()
        await daily.close()
        with contextlib.suppress(Exception):
            await notifier.close()
        log.info("bridge_stopped", calls=len(store.calls), outbox=len(store.outbox))
