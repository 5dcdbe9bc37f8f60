"""sd_notify, the watchdog loop and socket activation against real sockets (no systemd needed)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from videobridge.systemd import Systemd, watchdog_loop

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(name="path_socket")
def _path_socket() -> Iterator[tuple[socket.socket, str]]:
    # A short directory: AF_UNIX paths are limited to 108 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="vb-") as tmp:
        address = os.path.join(tmp, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
            sock.settimeout(2)
            yield sock, address


@pytest.fixture(name="abstract_socket")
def _abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"videobridge-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        yield sock, "@" + name


def drain(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(2)


@pytest.mark.parametrize("which", ["path_socket", "abstract_socket"])
def test_notify_messages_arrive(which: str, request: pytest.FixtureRequest) -> None:
    """READY, STOPPING, WATCHDOG and STATUS arrive as single datagrams, path or abstract socket."""
    sock, address = request.getfixturevalue(which)
    sd = Systemd({"NOTIFY_SOCKET": address})
    assert sd.enabled
    assert sd.ready()
    assert sd.watchdog_ping()
    assert sd.status("serving\n2 calls")
    assert sd.extend_timeout(1.5)
    assert sd.stopping()
    assert [sock.recv(4096).decode() for _ in range(5)] == [
        "READY=1",
        "WATCHDOG=1",
        "STATUS=serving 2 calls",  # a newline would start a new assignment
        "EXTEND_TIMEOUT_USEC=1500000",
        "STOPPING=1",
    ]


def test_ready_with_status_is_one_datagram(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, address = abstract_socket
    Systemd({"NOTIFY_SOCKET": address}).ready("listening on 127.0.0.1:5050")
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening on 127.0.0.1:5050"


def test_notify_without_systemd_is_a_noop() -> None:
    sd = Systemd({})
    assert not sd.enabled
    assert sd.ready() is False
    assert sd.watchdog_ping() is False
    assert sd.watchdog_interval() is None
    assert sd.listen_sockets() == []


@pytest.mark.parametrize("address", ["/nonexistent/videobridge/notify", "vsock:2:1234"])
def test_notify_failure_never_raises(address: str) -> None:
    assert Systemd({"NOTIFY_SOCKET": address}).ready() is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),  # ours (pid=4242 below)
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # someone else's watchdog
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert Systemd(env, pid=4242).watchdog_interval() == expected


def test_watchdog_interval_uses_real_pid_by_default() -> None:
    env = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Systemd(env).watchdog_interval() == 1.0


async def test_watchdog_loop_pings_only_while_healthy(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, address = abstract_socket
    sd = Systemd({"NOTIFY_SOCKET": address})
    healthy = True
    task = asyncio.create_task(watchdog_loop(sd, 0.02, lambda: healthy))
    try:
        await asyncio.sleep(0.21)
        pings = drain(sock)
        assert set(pings) == {"WATCHDOG=1"}
        assert 6 <= len(pings) <= 12  # ~11 at a 20 ms cadence; loose for slow CI

        healthy = False
        await asyncio.sleep(0.03)  # let a ping already in flight land
        drain(sock)
        await asyncio.sleep(0.15)
        assert drain(sock) == []  # systemd would now time out and restart us

        healthy = True
        await asyncio.sleep(0.1)
        assert len(drain(sock)) >= 2  # pings resume once healthy again
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_watchdog_loop_treats_a_failing_probe_as_unhealthy(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, address = abstract_socket

    def probe() -> bool:
        raise RuntimeError("poller state unreadable")

    task = asyncio.create_task(watchdog_loop(Systemd({"NOTIFY_SOCKET": address}), 0.01, probe))
    await asyncio.sleep(0.08)
    assert not task.done()  # the loop survives the broken probe
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert drain(sock) == []


class RecordingSystemd(Systemd):
    def __init__(self) -> None:
        super().__init__({})
        self.pings: list[float] = []

    def watchdog_ping(self) -> bool:
        self.pings.append(time.monotonic())
        return True


async def test_a_blocked_event_loop_stops_the_pings() -> None:
    sd = RecordingSystemd()
    task = asyncio.create_task(watchdog_loop(sd, 0.01, lambda: True))
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # the loop is stuck: no task runs, so no ping is sent
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gaps = [b - a for a, b in zip(sd.pings, sd.pings[1:], strict=False)]
    assert max(gaps) >= 0.29


# -- socket activation -------------------------------------------------------------------------


def _free_fd_block(count: int) -> int:
    """A run of `count` unused descriptor numbers (LISTEN_FDS passes consecutive fds)."""
    start = 100
    while any(_fd_in_use(fd) for fd in range(start, start + count)):
        start += count
    return start


def _fd_in_use(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _hello_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello from an inherited socket")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


async def test_listen_sockets_in_process_and_serve_with_sock_site() -> None:
    """Inherited TCP and Unix listeners are adopted with the right family and served by aiohttp."""
    tcp = socket.create_server(("127.0.0.1", 0))
    unix_dir = tempfile.TemporaryDirectory(prefix="vb-")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(os.path.join(unix_dir.name, "s"))
    unix.listen()
    port = tcp.getsockname()[1]
    start = _free_fd_block(2)
    os.dup2(tcp.fileno(), start)
    os.dup2(unix.fileno(), start + 1)
    tcp.close()
    unix.close()

    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:admin", "KEEP": "1"}
    sockets = Systemd(env, listen_fds_start=start).listen_sockets()
    assert env == {"KEEP": "1"}  # LISTEN_* gone: children cannot inherit them
    assert [s.fileno() for s in sockets] == [start, start + 1]
    assert [s.family for s in sockets] == [socket.AF_INET, socket.AF_UNIX]
    assert all(s.type == socket.SOCK_STREAM and not s.getblocking() for s in sockets)
    assert not os.get_inheritable(start)

    runner = web.AppRunner(_hello_app())
    await runner.setup()
    try:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
            assert resp.status == 200
            assert await resp.text() == "hello from an inherited socket"
        connector = aiohttp.UnixConnector(path=os.path.join(unix_dir.name, "s"))
        async with aiohttp.ClientSession(connector=connector) as session, session.get("http://localhost/") as resp:
            assert resp.status == 200
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()
        unix_dir.cleanup()


def test_listen_sockets_for_another_pid_are_ignored_but_unset() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1"}
    assert Systemd(env, pid=4242).listen_sockets() == []
    assert env == {}


def test_listen_fd_that_is_not_a_socket_is_skipped() -> None:
    read_end, write_end = os.pipe()
    try:
        start = _free_fd_block(1)
        os.dup2(read_end, start)
        env = {"LISTEN_PID": "7", "LISTEN_FDS": "1"}
        assert Systemd(env, pid=7, listen_fds_start=start).listen_sockets() == []
        os.close(start)
    finally:
        os.close(read_end)
        os.close(write_end)


# The child plays the daemon: adopt fd 3, serve it, say READY=1 over NOTIFY_SOCKET.
_CHILD = textwrap.dedent(
    """
    import asyncio, os
    from aiohttp import web
    from videobridge.systemd import Systemd

    async def main():
        sd = Systemd()
        [sock] = sd.listen_sockets()
        leftover = sorted(k for k in os.environ if k.startswith("LISTEN_"))

        async def hello(request):
            return web.json_response({"pid": os.getpid(), "fd": sock.fileno(),
                                      "family": sock.family.name, "leftover": leftover})

        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        sd.ready()
        await asyncio.sleep(30)

    asyncio.run(main())
    """
)
# What systemd does between fork and exec: move the socket to fd 3, set LISTEN_PID to the pid
# that the exec'd program will have (exec keeps the pid), then exec.
_LAUNCHER = textwrap.dedent(
    """
    import os, sys
    if int(sys.argv[1]) != 3:
        os.dup2(int(sys.argv[1]), 3)
        os.close(int(sys.argv[1]))
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[2]])
    """
)


async def test_socket_activated_child_process_serves_the_inherited_socket(
    abstract_socket: tuple[socket.socket, str],
) -> None:
    notify, address = abstract_socket
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    env = {**os.environ, "NOTIFY_SOCKET": address, "PYTHONPATH": str(REPO)}
    env.pop("LISTEN_PID", None)
    env.pop("LISTEN_FDS", None)
    child = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(listener.fileno()), _CHILD],
        pass_fds=[listener.fileno()],
        env=env,
        cwd=REPO,
    )
    try:
        notify.settimeout(10)
        assert await asyncio.to_thread(notify.recv, 4096) == b"READY=1"
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
            info = await resp.json()
        assert info == {"pid": child.pid, "fd": 3, "family": "AF_INET", "leftover": []}
    finally:
        child.terminate()
        child.wait(timeout=10)
        listener.close()
