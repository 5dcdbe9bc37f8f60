"""The small part of the systemd service protocol we use, without libsystemd.

- `sd_notify(3)`: one datagram per message to `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
  namespace): `READY=1` once listening with state loaded, `WATCHDOG=1` from the event loop,
  `STOPPING=1` when shutdown starts, `STATUS=` for `systemctl status`.
- `sd_watchdog_enabled(3)`: ping at half of `$WATCHDOG_USEC` when `$WATCHDOG_PID` is unset or ours.
- `sd_listen_fds(3)`: sockets passed by a `.socket` unit start at fd 3; `$LISTEN_PID` must be ours.

Everything reads an injectable environment mapping so tests need no real systemd. Outside systemd
every call is a cheap no-op, so callers never branch on "are we under systemd".
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, MutableMapping

import structlog

SD_LISTEN_FDS_START = 3
_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")

log = structlog.get_logger("videobridge.systemd")


class Systemd:
    """Talks to the service manager described by `env` (default: the process environment)."""

    def __init__(
        self,
        env: MutableMapping[str, str] | None = None,
        *,
        pid: int | None = None,
        listen_fds_start: int = SD_LISTEN_FDS_START,
    ) -> None:
        self._env: MutableMapping[str, str] = os.environ if env is None else env
        self._pid = pid  # None: ask os.getpid() each time (survives a fork)
        self._listen_fds_start = listen_fds_start

    @property
    def pid(self) -> int:
        return os.getpid() if self._pid is None else self._pid

    @property
    def enabled(self) -> bool:
        """True when a service manager listens for our notifications."""
        return bool(self._env.get("NOTIFY_SOCKET"))

    # -- sd_notify ---------------------------------------------------------------------------

    def notify(self, state: str) -> bool:
        """Send one notification; False when there is no socket or the send failed.

        Never raises: losing a status message must not take the daemon down (systemd will notice
        missing READY/WATCHDOG on its own and act on it).
        """
        address = self._env.get("NOTIFY_SOCKET", "")
        if not address:
            return False
        if address[0] == "@":
            address = "\0" + address[1:]  # abstract namespace
        elif address[0] != "/":
            # vsock:… and other transports are for VMs/containers managers, not for us.
            log.warning("sd_notify_unsupported_socket", notify_socket=address)
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(state.encode(), address)
        except OSError as exc:
            log.warning("sd_notify_failed", error=str(exc), state=state.split("\n", 1)[0])
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1" if status is None else f"STOPPING=1\nSTATUS={_one_line(status)}")

    def watchdog_ping(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time to start or stop (e.g. while draining requests)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    # -- sd_watchdog_enabled -----------------------------------------------------------------

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None when off."""
        raw_usec = self._env.get("WATCHDOG_USEC")
        if not raw_usec:
            return None
        raw_pid = self._env.get("WATCHDOG_PID")
        try:
            usec = int(raw_usec)
            if raw_pid and int(raw_pid) != self.pid:
                return None  # meant for another process (e.g. our parent)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 2 / 1_000_000

    # -- sd_listen_fds -----------------------------------------------------------------------

    def listen_sockets(self) -> list[socket.socket]:
        """Sockets passed by socket activation, non-blocking; [] when there are none.

        The LISTEN_* variables are removed afterwards (like sd_listen_fds(unset_environment=1)),
        so a child process can never mistake our sockets for its own.
        """
        try:
            raw_pid, raw_count = self._env.get("LISTEN_PID"), self._env.get("LISTEN_FDS")
            if not raw_pid or not raw_count:
                return []
            try:
                if int(raw_pid) != self.pid:
                    return []
                count = int(raw_count)
            except ValueError:
                log.warning("listen_fds_malformed", listen_pid=raw_pid, listen_fds=raw_count)
                return []
            sockets = []
            for fd in range(self._listen_fds_start, self._listen_fds_start + max(count, 0)):
                sock = _adopt_socket(fd)
                if sock is not None:
                    sockets.append(sock)
            return sockets
        finally:
            for name in _LISTEN_VARS:
                self._env.pop(name, None)


def _adopt_socket(fd: int) -> socket.socket | None:
    """Wrap an inherited fd; the family/type/protocol come from the kernel (SO_DOMAIN, SO_TYPE)."""
    try:
        # With fileno= and no family, CPython asks the kernel (getsockopt SO_DOMAIN/SO_TYPE/
        # SO_PROTOCOL), so AF_INET, AF_INET6 and AF_UNIX listeners all come out right.
        sock = socket.socket(fileno=fd)
    except OSError as exc:  # ENOTSOCK / EBADF: systemd passed something else (FIFO, file)
        log.warning("listen_fd_not_a_socket", fd=fd, error=str(exc))
        return None
    os.set_inheritable(fd, False)  # like sd_listen_fds: FD_CLOEXEC from here on
    sock.setblocking(False)
    return sock


def _one_line(text: str) -> str:
    # A newline would start a new KEY=VALUE assignment in the datagram.
    return " ".join(text.splitlines())


async def watchdog_loop(
    sd: Systemd,
    interval: float,
    healthy: Callable[[], bool],
) -> None:
    """Ping WATCHDOG=1 every `interval` seconds while `healthy()` is true; run until cancelled.

    It runs on the event loop on purpose: a blocked loop stops the pings and systemd restarts us.
    An unhealthy check (or one that raises) skips the ping, so a wedged poller does the same.
    """
    was_healthy = True
    while True:
        try:
            ok = bool(healthy())
        except Exception as exc:  # a broken probe counts as unhealthy, it must not kill the loop
            log.warning("watchdog_probe_failed", error=repr(exc))
            ok = False
        if ok:
            sd.watchdog_ping()
        if ok != was_healthy:  # log transitions only: one line when pings stop, one when they resume
            if ok:
                log.info("watchdog_pings_resumed")
            else:
                log.warning("watchdog_pings_paused", reason="health check failing; systemd will restart us")
            was_healthy = ok
        await asyncio.sleep(interval)
