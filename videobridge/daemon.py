"""Running the app as a daemon: sockets (inherited or bound), systemd, signals, draining."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from videobridge.config import Settings
from videobridge.systemd import Systemd, watchdog_loop
from videobridge.web import BRIDGE, make_app

if TYPE_CHECKING:
    from videobridge.notifier import Notifier

log = structlog.get_logger("videobridge")

DRAIN_SECONDS = 30.0  # in-flight requests get this long after SIGTERM; TimeoutStopSec is above it


def site_addresses(runner: web.AppRunner) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for site in runner.sites:
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or ():
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                host, port = sock.getsockname()[:2]
                found.append((host, port))
    return found


async def serve(settings: Settings, *, notifier: Notifier | None = None,
                systemd: Systemd | None = None, drain_seconds: float = DRAIN_SECONDS,
                stop: asyncio.Event | None = None,
                on_ready: Callable[[web.Application, list[tuple[str, int]]], Awaitable[None]] | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set), then drain and return."""
    sd = systemd or Systemd()
    app = make_app(settings, notifier=notifier)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=drain_seconds, access_log=None)
    await runner.setup()  # opens the state file and Daily session before we accept anything
    try:
        inherited = sd.listen_sockets()
        if inherited:
            sites: list[web.BaseSite] = [web.SockSite(runner, sock) for sock in inherited]
        else:
            sites = [web.TCPSite(runner, settings.host, settings.port, reuse_address=True, backlog=1024)]
        for site in sites:
            await site.start()
    except OSError as exc:
        await runner.cleanup()
        from videobridge.errors import ConfigError

        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    addresses = site_addresses(runner)
    log.info("listening", addresses=[f"{h}:{p}" for h, p in addresses], socket_activated=bool(inherited))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bridge = app[BRIDGE]
    watchdog: asyncio.Task[None] | None = None
    interval = sd.watchdog_interval()
    if interval:
        watchdog = asyncio.create_task(watchdog_loop(sd, interval, bridge.poller.healthy), name="watchdog")
    sd.ready(status=f"serving {len(bridge.store.calls)} calls")
    if on_ready is not None:
        await on_ready(app, addresses)
    if bridge.webhook is not None:
        bridge.webhook.listening.set()  # Daily's reactivation probe can reach us now
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        sd.stopping(status="draining")
        log.info("stopping", drain_seconds=drain_seconds)
        if watchdog is not None:
            watchdog.cancel()
        await runner.cleanup()
        log.info("stopped")
