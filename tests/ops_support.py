"""Helpers for the operator-facing tests: external tools (promtool, tmux) and a tmux driver.

A missing tool skips the test on a developer's machine but fails it in CI (CI=true): `.ci/run`
installs both, so a skip there would hide a test that never ran.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def require_tool(name: str, package: str) -> str:
    """The tool's path; skip (fail under CI=true) when it is not installed."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (Debian package {package}; .ci/run installs it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


class Tmux:
    """A private tmux server (own socket): sessions running commands, read back with capture-pane."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self._dir = tempfile.mkdtemp(prefix="vbtmux-")  # short path: tmux sockets are AF_UNIX
        self.socket = os.path.join(self._dir, "sock")

    def _run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([self.binary, "-S", self.socket, *args], capture_output=True, text=True,
                              timeout=30, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def start(self, name: str, command: str, *, cwd: Path, width: int = 120, height: int = 40) -> None:
        self._run("-f", "/dev/null", "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
                  "-c", str(cwd), command)

    def screen(self, name: str) -> str:
        return self._run("capture-pane", "-p", "-t", name)

    def wait_for(self, name: str, check: Callable[[str], bool] | str, *, timeout: float = 60.0,
                 what: str = "") -> str:
        """Poll the pane until `check` (a function, or text that must appear) holds; the screen then."""
        test = (lambda screen: check in screen) if isinstance(check, str) else check
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen(name)
            if test(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"tmux pane {name}: {what or check!r} not seen within {timeout}s; screen:\n{screen}")

    def keys(self, name: str, *keys: str) -> None:
        self._run("send-keys", "-t", name, *keys)

    def resize(self, name: str, width: int, height: int) -> None:
        self._run("resize-window", "-t", name, "-x", str(width), "-y", str(height))

    def close(self) -> None:
        self._run("kill-server", check=False)
        with contextlib.suppress(OSError):
            shutil.rmtree(self._dir)


@contextlib.contextmanager
def tmux_server() -> Iterator[Tmux]:
    tmux = Tmux(require_tool("tmux", "tmux"))
    try:
        yield tmux
    finally:
        tmux.close()
