"""Shared machinery for the reliability tests and the benchmarks.

- `EmulatorThread`: procs' emulator host (the Daily emulator on a loop in a daemon thread, so a test
  or benchmark can count its requests while `serve` runs in another process), started at once.
- `Daemon`: a restartable `python -m videobridge serve`: each start() is a procs.ServeProcess
  logging (JSON, info) to one file, READY seen through procs' NotifySocket, the port read from the
  "listening" log line.
- principals, signed IC identities and small statistics helpers.
"""

from __future__ import annotations

import base64
import collections
import os
import random
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import procs
from procs import NotifySocket, ServeProcess

from videobridge.config import KNOWN
from videobridge.principal import bytes_to_principal

PYTHON = sys.executable
HOOK_SECRET = b"videobridge-reliability-webhook!"
ADMIN_TOKEN = "reliability-admin-token-0123456789"
API_KEY = "reliability-daily-api-key-" + "0123456789abcdef" * 2  # >= 32 bytes for HS256


# ---- principals ---------------------------------------------------------------------------------

def principal(rng: random.Random | None = None, size: int = 10) -> str:
    """A random principal (10 bytes: the size of OpenChat canister ids)."""
    rng = rng or random.Random()
    return bytes_to_principal(bytes(rng.getrandbits(8) for _ in range(size)))


def principals(count: int, seed: int | None = None, size: int = 10) -> list[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        p = principal(rng, size)
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


# ---- a loop in a thread -------------------------------------------------------------------------

class EmulatorThread(procs.EmulatorThread):
    """procs' emulator host, started at once, with the reliability suites' API key."""

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__(api_key)
        self.__enter__()

    def requests(self) -> collections.Counter[str]:
        return self.run(lambda: collections.Counter(self.emu.requests))  # on the emulator's loop


# ---- the daemon as a subprocess -----------------------------------------------------------------

def daemon_env(*, emulator_url: str, oc_public: str, state: Path, api_key: str = API_KEY,
               extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in KNOWN and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "JOURNAL_STREAM",
                                           "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                           "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")}
    env.update({
        "DAILY_API_KEY": api_key,
        "DAILY_API_URL": emulator_url,
        "DAILY_HOOK_HMAC": base64.b64encode(HOOK_SECRET).decode(),
        "OC_PUBLIC": oc_public,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "VIDEOBRIDGE_STATE": str(state),
        "VIDEOBRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
        "VIDEOBRIDGE_LOG_FORMAT": "json",
        "VIDEOBRIDGE_LOG_LEVEL": "info",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.update(extra or {})
    return env


class Daemon:
    """`python -m videobridge serve` in its own process, ready when it says READY=1, restartable.

    Each start() spawns a fresh procs.ServeProcess appending stdout and stderr to `log_path` (so the
    log keeps every run); its URL comes from that run's "listening" log line (the env has PORT=0).
    """

    def __init__(self, env: Mapping[str, str], *, log_path: Path, cwd: Path) -> None:
        self._env = dict(env)
        self.log_path = log_path
        self._cwd = cwd
        self.child: ServeProcess | None = None  # the current (or last) run
        self.url = ""
        self.ready_seconds = 0.0

    def start(self, timeout: float = 30.0) -> Daemon:
        with NotifySocket() as notify:
            env = {**self._env, "NOTIFY_SOCKET": notify.path}
            self.child = child = ServeProcess.start(env, cwd=self._cwd, port=0, log_path=self.log_path)
            try:
                ready_at = notify.wait_for("READY=1", timeout=timeout)[0].at
            except (AssertionError, OSError):
                self.kill()
                raise RuntimeError(f"serve did not get ready; log tail:\n{self.log_tail()}") from None
            self.ready_seconds = ready_at - child.started
        self.url = child.listening_url()
        return self

    def _running(self) -> ServeProcess:
        assert self.child is not None, "serve was never started"
        return self.child

    @property
    def pid(self) -> int:
        return self._running().pid

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.child is not None:
            self.child.kill()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: graceful shutdown (-9 when it had to be killed after `timeout`)."""
        if self.child is None:
            return 0
        try:
            return self.child.stop(signal.SIGTERM, timeout)
        except AssertionError:  # ServeProcess.wait killed it
            return -9

    def rss_kib(self) -> int:
        return self._running().rss_kib()

    def cpu_seconds(self) -> float:
        return self._running().cpu_seconds()

    def log_tail(self, lines: int = 30) -> str:
        return procs.log_tail(self.log_path, lines)

    def log_events(self, *names: str) -> list[dict[str, Any]]:
        return procs.log_events(self.log_path, *names)


# ---- the IC side ---------------------------------------------------------------------------------

def ic_identity() -> tuple[str, str]:
    """(PEM with literal \\n as in .env files, principal text) of a fresh secp256k1 identity."""
    from fakeic import generate_pem, principal_of_pem

    pem = generate_pem()
    return pem, principal_of_pem(pem)


# ---- statistics ----------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
