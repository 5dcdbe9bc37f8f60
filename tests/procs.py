"""Real `videobridge serve` processes for tests: a Daily emulator in a thread, a notify socket, launchers.

    with EmulatorThread(api_key) as daily:                   # its own thread and event loop
        daily.emulator.latency = 2.0                          # plain attributes are safe to set
        env = serve_env(tmp_path, daily, signer)              # a clean environment, no venv leakage
        with NotifySocket() as notify:                        # sd_notify(3) receiver, AF_UNIX datagrams
            env["NOTIFY_SOCKET"] = notify.path
            proc = ServeProcess.start(env, cwd=tmp_path, port=port)  # or .start_on_socket(listener, ...)
            try:
                notify.wait_for("READY=1")
                ...
            finally:
                proc.kill()                                   # never leaves a server running

ServeProcess is the one wrapper of a `serve` child in the tests: `command=` runs another build of it
(the zipapp), `log_path=` appends stdout and stderr to one file (rel_support's restartable `Daemon`
is built on that), `listening_url()` reads the port of a child started with PORT=0.

Everything listens on 127.0.0.1 only. Output goes to files (a full pipe would block the child).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from videobridge.devjwt import DevSigner
from videobridge.emulator import DailyEmulator

T = TypeVar("T")
HOST = "127.0.0.1"

# Becomes the child itself (exec), so LISTEN_PID is the pid of the process that reads it, as
# systemd arranges: put the inherited listener on fd 3, announce one fd, exec the real command.
LAUNCHER = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "os.environ['LISTEN_FDS'] = '1'\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


def free_port() -> int:
    """A port nobody listens on right now (clients need a real number; PORT=0 cannot be reached)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def listening_socket(backlog: int = 4096) -> socket.socket:
    """What a .socket unit holds: a bound, listening TCP socket on 127.0.0.1 (backlog capped by somaxconn)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(backlog)
    return sock


def accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmulatorThread:
    """A DailyEmulator on its own event loop in a daemon thread, usable from any test."""

    def __init__(self, api_key: str, **options: Any) -> None:
        self.api_key = api_key
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="daily-emulator", daemon=True)
        self.emulator: DailyEmulator | None = None
        self.url = ""

    def __enter__(self) -> EmulatorThread:
        self._thread.start()

        async def start() -> str:
            self.emulator = DailyEmulator(api_key=self.api_key, **self._options)
            return await self.emulator.start(HOST, 0)

        self.url = self.call(start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.emulator is not None:
                self.call(self.emulator.stop(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def close(self) -> None:
        """For hosts started without `with` (rel_support's and the CLI tests' start at once)."""
        self.__exit__(None, None, None)

    @property
    def emu(self) -> DailyEmulator:
        assert self.emulator is not None, "emulator not started"
        return self.emulator

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def run(self, func: Callable[[], T], timeout: float = 30) -> T:
        """Run a plain function on the emulator's loop (for methods that touch its state)."""

        async def wrapper() -> T:
            return func()

        return self.call(wrapper(), timeout)


@dataclass
class Note:
    at: float  # time.monotonic() when it arrived
    text: str
    port_accepting: bool | None = None  # for READY=1: did the watched port accept at that moment?

    @property
    def fields(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.text.splitlines() if "=" in line)


class NotifySocket:
    """An AF_UNIX datagram socket playing systemd's notify socket; a thread records each datagram.

    `watch_port`: when a READY=1 arrives, try connecting to that port at once and record whether it
    accepted, so a test can show READY is only sent once the daemon is really listening.
    """

    def __init__(self, watch_port: int | None = None) -> None:
        # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer than that.
        self._dir = tempfile.mkdtemp(prefix="vbsd-")
        self.path = os.path.join(self._dir, "notify")
        self.watch_port = watch_port
        self.notes: list[Note] = []
        self._cond = threading.Condition()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="notify-socket", daemon=True)

    def __enter__(self) -> NotifySocket:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            note = Note(at=time.monotonic(), text=data.decode("utf-8", "replace"))
            if "READY" in note.fields and self.watch_port is not None:
                note.port_accepting = accepts(self.watch_port)
            with self._cond:
                self.notes.append(note)
                self._cond.notify_all()

    def texts(self) -> list[str]:
        with self._cond:
            return [n.text for n in self.notes]

    def matching(self, key: str) -> list[Note]:
        """Notes that carry `key` (e.g. 'READY=1' or 'WATCHDOG=1') as one of their lines."""
        with self._cond:
            return [n for n in self.notes if key in n.text.splitlines()]

    def wait_for(self, key: str, *, count: int = 1, timeout: float = 15.0,
                 proc: ServeProcess | None = None) -> list[Note]:
        """Block until `count` notes carry `key`; fail early when `proc` exits first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [n for n in self.notes if key in n.text.splitlines()]
                if len(found) >= count:
                    return found
                if proc is not None and proc.returncode() is not None:
                    raise AssertionError(f"serve exited ({proc.returncode()}) before {key}:\n{proc.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count}x {key} within {timeout}s; got {[n.text for n in self.notes]}")
                self._cond.wait(min(left, 0.1))


@dataclass
class ServeProcess:
    """One `videobridge serve` child, its output in files: the one subprocess wrapper of the tests.

    By default stdout and stderr go to `<name>.stdout` / `<name>.stderr` in `cwd`. With `log_path`
    both go to that one file, opened for appending, so a process restarted on the same log (as
    rel_support's `Daemon` does) keeps every run's lines; `offset` is where this run's begin.
    """

    popen: subprocess.Popen[bytes]
    port: int  # 0 until known: listening_url() reads it from the log when serve was given PORT=0
    out_path: Path
    err_path: Path | None  # None: stderr goes to out_path too
    started: float = field(default_factory=time.monotonic)  # just before exec
    offset: int = 0

    @classmethod
    def start(cls, env: dict[str, str], *, cwd: Path, port: int, args: tuple[str, ...] = (),
              name: str = "serve", command: list[str] | None = None, log_path: Path | None = None) -> ServeProcess:
        """`command` (default `python -m videobridge serve`) + `args`; e.g. a zipapp's `[python, pyz, "serve"]`."""
        base = command or [sys.executable, "-m", "videobridge", "serve"]
        return cls._spawn([*base, *args], env, cwd, port, name, (), log_path)

    @classmethod
    def start_on_socket(cls, listener: socket.socket, env: dict[str, str], *, cwd: Path,
                        name: str = "serve") -> ServeProcess:
        """Start serve as systemd does with a .socket unit: the listener on fd 3, LISTEN_FDS=1."""
        fd = listener.fileno()
        port = int(listener.getsockname()[1])
        command = [sys.executable, "-c", LAUNCHER, str(fd), "-m", "videobridge", "serve"]
        return cls._spawn(command, env, cwd, port, name, (fd,), None)

    @classmethod
    def _spawn(cls, command: list[str], env: Mapping[str, str], cwd: Path, port: int, name: str,
               pass_fds: tuple[int, ...], log_path: Path | None) -> ServeProcess:
        if log_path is None:
            out_path, err_path, mode, offset = cwd / f"{name}.stdout", cwd / f"{name}.stderr", "wb", 0
        else:
            out_path, err_path, mode = log_path, None, "ab"
            offset = log_path.stat().st_size if log_path.exists() else 0
        clean = {k: v for k, v in env.items() if k not in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")}
        with contextlib.ExitStack() as files:
            out = files.enter_context(open(out_path, mode))
            err = subprocess.STDOUT if err_path is None else files.enter_context(open(err_path, "wb"))
            started = time.monotonic()
            popen = subprocess.Popen(command, env=clean, cwd=cwd, stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, pass_fds=pass_fds)
        return cls(popen=popen, port=port, out_path=out_path, err_path=err_path, started=started, offset=offset)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def returncode(self) -> int | None:
        return self.popen.poll()

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        """What went to stderr ("" when it shares the log with stdout: stdout() has it)."""
        return "" if self.err_path is None else self.err_path.read_text(errors="replace")

    def output(self) -> str:
        if self.err_path is None:
            return f"--- log ---\n{self.stdout()}"
        return f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}"

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.out_path, lines)

    def log_events(self, *names: str) -> list[dict[str, Any]]:
        """The JSON log lines (VIDEOBRIDGE_LOG_FORMAT=json) whose event is one of `names` (all without)."""
        return log_events(self.out_path, *names)

    def listening_url(self, timeout: float = 5.0) -> str:
        """The URL from this run's "listening" log line (JSON logs), for a child started with PORT=0."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.out_path, "rb") as fh:
                fh.seek(self.offset)
                for line in fh:
                    if b'"listening"' in line:
                        address = json.loads(line)["addresses"][0]
                        self.port = int(address.rsplit(":", 1)[1])
                        return f"http://{address}"
            time.sleep(0.01)
        raise RuntimeError(f"no listening line in the log:\n{self.log_tail()}")

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    def wait_listening(self, timeout: float = 15.0) -> None:
        """Poll until the port accepts (for children started without a notify socket)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.returncode() is not None:
                raise AssertionError(f"serve exited with {self.returncode()}:\n{self.output()}")
            if accepts(self.port, timeout=0.2):
                return
            time.sleep(0.05)
        raise AssertionError(f"serve did not listen on {self.port} within {timeout}s:\n{self.output()}")

    def send(self, signum: int = signal.SIGTERM) -> None:
        if self.returncode() is None:
            self.popen.send_signal(signum)

    def wait(self, timeout: float = 40.0) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"serve did not exit within {timeout}s:\n{self.output()}") from None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        self.send(signum)
        return self.wait(timeout)

    def kill(self) -> None:
        """Last resort for `finally:` blocks: no-op once the child has exited."""
        if self.popen.poll() is None:
            self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def log_events(path: Path, *names: str) -> list[dict[str, Any]]:
    out = []
    wanted = set(names)
    with open(path, "rb") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not wanted or entry.get("event") in wanted:
                out.append(entry)
    return out


def serve_env(tmp_path: Path, daily: EmulatorThread, signer: DevSigner, **extra: str) -> dict[str, str]:
    """A minimal environment for `serve`: no inherited settings, no .env (cwd is tmp_path)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DAILY_API_KEY": daily.api_key,
        "DAILY_API_URL": daily.url,
        "OC_PUBLIC": signer.public_pem,
        "VIDEOBRIDGE_STATE": str(tmp_path / "state.json"),
        "VIDEOBRIDGE_LOG_FORMAT": "json",
        "HOST": HOST,
    }
    env.update(extra)
    return env
