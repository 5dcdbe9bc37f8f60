"""`videobridge serve` as systemd runs it: real child processes, real signals, real sockets.

Each test starts `python -m videobridge serve` (through `procs.ServeProcess`) against a Daily
emulator running in a thread, with a clean environment and its cwd in tmp_path. Children are
always killed in teardown; everything listens on 127.0.0.1 only.

What is shown here (SPEC §1, §8; reference/peers.md §2):
- SIGTERM and SIGINT stop the daemon gracefully with exit status 0; a bad setting exits 2 with one
  line on stderr and no traceback.
- sd_notify over a real AF_UNIX datagram socket: READY=1 only once the port accepts, WATCHDOG=1 at
  half of WATCHDOG_USEC, STOPPING=1 on SIGTERM (and no ping after it).
- Socket activation: the daemon serves the inherited fd 3 and does not bind HOST:PORT itself.
- A restart under steady load through the inherited socket loses no request.
- An in-flight request (slow Daily) completes across SIGTERM, and its call is persisted.
- No secret, JWT, meeting token or PEM reaches stdout/stderr over a full run.
- /metrics exposes the documented series on a running daemon.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fakeic import FakeIC, generate_pem, principal_of_pem
from helpers import ALICE, BOB, CAROL, GROUP, end_token, join_token, start_token
from procs import EmulatorThread, NotifySocket, ServeProcess, free_port, listening_socket, serve_env

from videobridge.devjwt import DevSigner
from videobridge.models import CanisterKind

JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


# ---- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(name="daily")
def _daily(api_key: str) -> Iterator[EmulatorThread]:
    with EmulatorThread(api_key) as daily:
        yield daily


@pytest.fixture(name="notify")
def _notify() -> Iterator[NotifySocket]:
    with NotifySocket() as notify:
        yield notify


Spawn = Callable[..., ServeProcess]


@pytest.fixture(name="spawn")
def _spawn(tmp_path: Path, daily: EmulatorThread, signer: DevSigner, notify: NotifySocket) -> Iterator[Spawn]:
    """Start serve children (kept for teardown); each gets NOTIFY_SOCKET unless given env overrides it.

    Teardown kills whatever is still running and, for every child, checks that nothing shaped like
    a JWT ever reached its stdout or stderr: the leak check runs after every test in this module.
    """
    children: list[ServeProcess] = []

    def spawn(*, listener: Any = None, env: dict[str, str] | None = None, port: int | None = None,
              name: str | None = None, **extra: str) -> ServeProcess:
        chosen = env if env is not None else serve_env(tmp_path, daily, signer, NOTIFY_SOCKET=notify.path)
        chosen.update(extra)
        label = name or f"serve{len(children)}"
        if listener is not None:
            proc = ServeProcess.start_on_socket(listener, chosen, cwd=tmp_path, name=label)
        else:
            if port is not None:
                chosen["PORT"] = str(port)
            chosen.setdefault("PORT", str(free_port()))
            proc = ServeProcess.start(chosen, cwd=tmp_path, port=int(chosen["PORT"]), name=label)
        children.append(proc)
        return proc

    try:
        yield spawn
    finally:
        for proc in children:
            proc.kill()
    for proc in children:
        leaked = JWT_RE.findall(proc.stdout() + proc.stderr())
        assert not leaked, f"{proc.out_path.name}: JWT-shaped text in the output: {leaked[:3]}"


def ready(notify: NotifySocket, proc: ServeProcess, count: int = 1, timeout: float = 20.0) -> None:
    notify.wait_for("READY=1", count=count, timeout=timeout, proc=proc)


def log_lines(proc: ServeProcess) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object (journald stores one entry per line)."""
    lines = []
    for raw in proc.stdout().splitlines():
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                pytest.fail(f"stdout line is not JSON: {raw[:200]!r}")
    return lines


def assert_clean_exit(proc: ServeProcess, code: int) -> None:
    assert code == 0, f"exit status {code}\n{proc.output()}"
    assert "Traceback" not in proc.stderr() + proc.stdout(), proc.output()
    events = [line.get("event") for line in log_lines(proc)]
    assert "stopping" in events and "stopped" in events and "bridge_stopped" in events, events


def query(name: str = "alice") -> dict[str, str]:
    return {"initiator-username": name}


async def get_token(http: aiohttp.ClientSession, proc: ServeProcess, jwt: str,
                    name: str = "alice") -> tuple[int, dict[str, Any]]:
    async with http.get(f"{proc.base_url}/room/meeting_access_token", params=query(name),
                        headers={"x-auth-jwt": jwt}) as resp:
        return resp.status, await resp.json()


# ---- signals and exit codes ------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_stops_gracefully_with_status_0(spawn: Spawn, notify: NotifySocket, signer: DevSigner,
                                                      signum: int) -> None:
    proc = spawn()
    await asyncio.to_thread(ready, notify, proc)
    async with aiohttp.ClientSession() as http:
        status, body = await get_token(http, proc, start_token(signer))
        assert status == 200, body
    code = await asyncio.to_thread(proc.stop, signum)
    assert_clean_exit(proc, code)
    assert proc.stderr() == ""
    # The call survived in the state file: graceful stop persists state.
    state = json.loads((proc.out_path.parent / "state.json").read_text())
    assert body["roomName"] in json.dumps(state)


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"OC_PUBLIC": None}, "OC_PUBLIC"),
        ({"DAILY_API_KEY": None}, "DAILY_API_KEY"),
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"OC_PUBLIC": "-----BEGIN PUBLIC KEY-----\\nnope\\n-----END PUBLIC KEY-----"}, "OC_PUBLIC"),
        ({"DAILY_HOOK_HMAC": "not base64!"}, "DAILY_HOOK_HMAC"),
        ({"DAILY_API_URL": "ftp://daily"}, "DAILY_API_URL"),
        ({"VIDEOBRIDGE_PRESENCE_INTERVAL": "nan"}, "VIDEOBRIDGE_PRESENCE_INTERVAL"),
        ({"VIDEOBRIDGE_LOG_LEVEL": "loud"}, "VIDEOBRIDGE_LOG_LEVEL"),
    ],
    ids=["no-OC_PUBLIC", "no-DAILY_API_KEY", "PORT-text", "PORT-range", "OC_PUBLIC-garbage", "HMAC-not-b64",
         "URL-scheme", "interval-nan", "level"],
)
def test_bad_setting_exits_2_with_one_line(tmp_path: Path, daily: EmulatorThread, signer: DevSigner,
                                           changes: dict[str, str | None], names: str) -> None:
    env = serve_env(tmp_path, daily, signer, PORT=str(free_port()))
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    proc = ServeProcess.start(env, cwd=tmp_path, port=0)
    try:
        code = proc.wait(timeout=20)
    finally:
        proc.kill()
    err = proc.stderr()
    assert code == 2, proc.output()
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("videobridge: ") and names in err, err
    assert "Traceback" not in err + proc.stdout()
    assert "nope" not in err  # never echo a (possibly secret) PEM body


def test_port_in_use_exits_2_with_one_line(spawn: Spawn) -> None:
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        proc = spawn(port=port, VIDEOBRIDGE_LOG_LEVEL="warning")
        code = proc.wait(timeout=20)
    err = proc.stderr()
    assert code == 2, proc.output()
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err, err
    assert "Traceback" not in err + proc.stdout()


def test_second_serve_on_a_locked_state_file_fails_cleanly(spawn: Spawn, notify: NotifySocket) -> None:
    """What an overlapping restart would hit: the running daemon keeps the state; the newcomer says why."""
    first = spawn()
    ready(notify, first)
    second = spawn(VIDEOBRIDGE_LOG_LEVEL="warning")
    code = second.wait(timeout=20)
    err = second.stderr()
    assert code == 1, second.output()
    assert err.count("\n") == 1 and "state.json" in err and "in use" in err, err
    assert "Traceback" not in err + second.stdout()
    assert first.returncode() is None
    assert_clean_exit(first, first.stop())


# ---- sd_notify -------------------------------------------------------------------------------

async def test_ready_watchdog_and_stopping_over_a_real_notify_socket(spawn: Spawn, notify: NotifySocket) -> None:
    port = free_port()
    notify.watch_port = port
    proc = spawn(port=port, WATCHDOG_USEC="200000")
    await asyncio.to_thread(ready, notify, proc)
    ready_note = notify.matching("READY=1")[0]
    assert ready_note.port_accepting is True, "READY=1 was sent before the port accepted connections"
    assert ready_note.fields.get("STATUS", "").startswith("serving"), ready_note.text
    assert notify.texts()[0] == ready_note.text, notify.texts()  # nothing before READY
    # WATCHDOG_USEC=200000 -> a ping every 0.1 s from the event loop.
    pings = await asyncio.to_thread(notify.wait_for, "WATCHDOG=1", count=6, timeout=5, proc=proc)
    gaps = [b.at - a.at for a, b in zip(pings, pings[1:], strict=False)]
    assert 0.05 < statistics.median(gaps) < 0.2, gaps
    code = await asyncio.to_thread(proc.stop, signal.SIGTERM)
    assert_clean_exit(proc, code)
    stopping = notify.matching("STOPPING=1")
    assert len(stopping) == 1, notify.texts()
    after = [n for n in notify.notes if n.at > stopping[0].at]
    assert not [n for n in after if "WATCHDOG=1" in n.text], "watchdog kept pinging after STOPPING=1"
    assert len(notify.matching("READY=1")) == 1


async def test_no_watchdog_pings_without_watchdog_usec(spawn: Spawn, notify: NotifySocket) -> None:
    proc = spawn()
    await asyncio.to_thread(ready, notify, proc)
    await asyncio.sleep(0.5)
    assert notify.matching("WATCHDOG=1") == []
    assert_clean_exit(proc, await asyncio.to_thread(proc.stop))


# ---- socket activation -----------------------------------------------------------------------

async def test_serves_an_inherited_socket(spawn: Spawn, notify: NotifySocket, signer: DevSigner) -> None:
    own_port = free_port()
    with listening_socket() as listener:
        notify.watch_port = listener.getsockname()[1]
        # PORT names a different, free port: the daemon must not bind it when it has fd 3.
        proc = spawn(listener=listener, PORT=str(own_port))
        await asyncio.to_thread(ready, notify, proc)
        assert notify.matching("READY=1")[0].port_accepting is True
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{proc.base_url}/healthz") as resp:
                assert resp.status == 200
            status, body = await get_token(http, proc, start_token(signer))
            assert status == 200 and body["joining"] is False, body
            status, body = await get_token(http, proc, join_token(signer), "bob")
            assert status == 200 and body["joining"] is True, body
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{own_port}/healthz"):
                pass
        code = await asyncio.to_thread(proc.stop)
    assert_clean_exit(proc, code)
    listening = [line for line in log_lines(proc) if line.get("event") == "listening"]
    assert listening and listening[0]["socket_activated"] is True, listening


class Load:
    """N workers hammering the join endpoint, one fresh connection per request (force_close)."""

    def __init__(self, base_url: str, jwts: list[str], workers: int = 4) -> None:
        self.base_url = base_url
        self.jwts = jwts
        self.workers = workers
        self.ok = 0
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self.t0 = time.monotonic()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self.workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _worker(self, index: int) -> None:
        # Generous: a request queued in the backlog waits for the whole restart (exit + the new
        # process's start-up), which a busy 2-core CI machine can stretch to many seconds.
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(force_close=True, limit=1)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            n = 0
            while not self._stop.is_set():
                jwt = self.jwts[(index + n) % len(self.jwts)]
                n += 1
                began = time.monotonic()
                try:
                    async with http.get(f"{self.base_url}/room/meeting_access_token", params=query("bob"),
                                        headers={"x-auth-jwt": jwt}) as resp:
                        body = await resp.json()
                        if resp.status == 200 and body.get("joining") is True and body.get("token"):
                            self.ok += 1
                        else:
                            self.failures.append(f"{self._when(began)} {resp.status} {body}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failures.append(f"{self._when(began)} {exc!r}")
                self.latencies.append(time.monotonic() - began)

    def _when(self, began: float) -> str:
        return f"[sent at {began - self.t0:.3f}s, failed at {time.monotonic() - self.t0:.3f}s]"

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)


@pytest.mark.slow
async def test_restart_under_load_through_the_socket_loses_no_request(
    spawn: Spawn, notify: NotifySocket, signer: DevSigner,
) -> None:
    with listening_socket() as listener:
        first = spawn(listener=listener, name="first")
        await asyncio.to_thread(ready, notify, first)
        async with aiohttp.ClientSession() as http:
            status, started = await get_token(http, first, start_token(signer))
            assert status == 200, started
        jwts = [join_token(signer, user) for user in (BOB, CAROL)]
        async with Load(first.base_url, jwts) as load:
            await asyncio.sleep(1.0)
            before = load.total
            # systemctl restart: SIGTERM, wait for the exit (the state file is locked until then),
            # start the new process on the same socket. The socket keeps queueing throughout.
            restart_began = time.monotonic()
            code = await asyncio.to_thread(first.stop, signal.SIGTERM)
            exited = time.monotonic()
            assert_clean_exit(first, code)
            second = spawn(listener=listener, name="second")
            await asyncio.to_thread(ready, notify, second, 2, 60.0)
            restart_took = time.monotonic() - restart_began
            await asyncio.sleep(1.0)
        timeline = (f"SIGTERM at {restart_began - load.t0:.3f}s, first exited at {exited - load.t0:.3f}s, "
                    f"second READY at {restart_began + restart_took - load.t0:.3f}s")
        assert load.failures == [], f"{len(load.failures)} failed of {load.total} ({timeline}): {load.failures[:8]}"
        assert before >= 20 and load.total - before >= 20, (before, load.total)
        # Every answered request was logged by exactly one of the two processes.
        served = [sum(1 for line in log_lines(p) if line.get("event") == "http_request"
                      and line.get("path") == "/room/meeting_access_token") for p in (first, second)]
        assert served[0] > 1 and served[1] > 0, served
        assert sum(served) == load.ok + 1, (served, load.ok)  # +1: the start
        assert max(load.latencies) < restart_took + 5, (max(load.latencies), restart_took)
        code = await asyncio.to_thread(second.stop)
    assert_clean_exit(second, code)
    print(f"restart under load: {load.ok} requests, 0 failed, restart {restart_took:.2f}s, "
          f"worst latency {max(load.latencies):.2f}s")


async def test_in_flight_request_completes_across_sigterm(spawn: Spawn, notify: NotifySocket,
                                                          daily: EmulatorThread, signer: DevSigner) -> None:
    proc = spawn()
    await asyncio.to_thread(ready, notify, proc)
    daily.emu.latency = 2.0  # every Daily request now takes 2 s: the start is in flight for that long
    async with aiohttp.ClientSession() as http:
        request = asyncio.create_task(get_token(http, proc, start_token(signer)))
        deadline = time.monotonic() + 5
        while not daily.emu.requests.get("POST /rooms") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert daily.emu.requests.get("POST /rooms") == 1, dict(daily.emu.requests)
        signalled = time.monotonic()
        proc.send(signal.SIGTERM)
        await asyncio.to_thread(notify.wait_for, "STOPPING=1", proc=None)
        assert not request.done()
        status, body = await request
        answered = time.monotonic()
    assert status == 200 and body["token"] and body["joining"] is False, body
    code = await asyncio.to_thread(proc.wait)
    exited = time.monotonic()
    assert_clean_exit(proc, code)
    assert answered - signalled > 1.0, "the request did not overlap the shutdown"
    assert exited >= answered - 0.5
    state = json.loads((proc.out_path.parent / "state.json").read_text())
    assert body["roomName"] in json.dumps(state)  # written before the answer, still there after


# ---- secrets never reach the logs ------------------------------------------------------------

async def test_no_secret_in_logs_over_a_full_run(tmp_path: Path, spawn: Spawn, notify: NotifySocket,
                                                 daily: EmulatorThread, signer: DevSigner) -> None:
    hook_raw = secrets.token_urlsafe(24).encode()  # printable, so a raw leak is searchable too
    hook_b64 = base64.b64encode(hook_raw).decode()
    admin = secrets.token_urlsafe(24)
    identity = generate_pem()
    other = DevSigner()
    sent_jwts: list[str] = []
    tokens: list[str] = []

    def jwt(value: str) -> str:
        sent_jwts.append(value)
        return value

    with FakeIC(operators={principal_of_pem(identity)}) as ic:
        ic.add_canister(GROUP, CanisterKind.GROUP)
        env = serve_env(tmp_path, daily, signer, NOTIFY_SOCKET=notify.path, DAILY_HOOK_HMAC=hook_b64,
                        VIDEOBRIDGE_ADMIN_TOKEN=admin, OC_IDENTITY=identity.replace("\n", "\\n"),
                        IC_URL=ic.url, VIDEOBRIDGE_LOG_LEVEL="debug", VIDEOBRIDGE_PRESENCE_INTERVAL="0.3",
                        VIDEOBRIDGE_IC_ROOT_KEY=ic.root_key_hex)
        proc = spawn(env=env)
        await asyncio.to_thread(ready, notify, proc)
        base = proc.base_url
        async with aiohttp.ClientSession() as http:
            async def token(claim: str, expect: int, name: str = "alice") -> dict[str, Any]:
                async with http.get(f"{base}/room/meeting_access_token", params=query(name),
                                    headers={"x-auth-jwt": jwt(claim)}) as resp:
                    body = await resp.json()
                    assert resp.status == expect, body
                    if "token" in body:
                        tokens.append(body["token"])
                    return body

            started = await token(start_token(signer), 200)
            room = started["roomName"]
            await token(join_token(signer), 200, "bob")
            await token(start_token(signer, BOB, {"Direct": ALICE}), 200, "bob")
            # Bad JWTs of every kind: they are rejected, and they must not be echoed anywhere.
            now = int(time.time())
            await token(other.video_call_token("JoinVideoCall", user_id=BOB, chat_id={"Group": GROUP}), 401)
            await token(signer.video_call_token("JoinVideoCall", user_id=BOB, chat_id={"Group": GROUP},
                                                exp=now - 60), 401)
            await token(signer.sign({"exp": now + 60, "claim_type": "Translate", "user_id": BOB}), 401)
            await token(signer.sign({"exp": now + 60, "claim_type": "JoinVideoCall", "user_id": BOB,
                                     "chat_id": {"Group": GROUP}}, header={"alg": "none"}), 401)
            await token(start_token(signer)[:-10] + "AAAAAAAAAA", 401)
            await token("eyJhbGciOiJFUzI1NiJ9.not-a-jwt.at-all", 401)
            async with http.get(f"{base}/room/meeting_access_token", headers={"x-auth-jwt": jwt(start_token(signer))}) as resp:
                assert resp.status == 400  # no initiator-username
            # Participants appear in Daily with the meeting tokens; webhooks, signed and not.
            daily.run(lambda: daily.emu.join(room, tokens[0]))
            for event_type in ("meeting.started", "participant.joined"):
                body = json.dumps({"version": "1.0.0", "type": event_type, "id": secrets.token_hex(8),
                                   "event_ts": time.time(),
                                   "payload": {"room": room, "meeting_id": "m1", "start_ts": time.time(),
                                               "session_id": "s1", "user_id": ALICE, "user_name": "alice"}}).encode()
                async with http.post(f"{base}/room/hook", data=body, headers=signed(body, hook_raw)) as resp:
                    assert resp.status == 200, await resp.text()
            async with http.post(f"{base}/room/hook", data=b'{"test":"test"}', headers=signed(b'{"test":"test"}', hook_raw)) as resp:
                assert resp.status == 200
            forged = signed(b'{"type":"meeting.ended"}', secrets.token_bytes(16))
            async with http.post(f"{base}/room/hook", data=b'{"type":"meeting.ended"}', headers=forged) as resp:
                assert resp.status == 401
            # Admin endpoints, right and wrong token.
            async with http.get(f"{base}/room/meetings", headers={"Authorization": f"Bearer {admin}"}) as resp:
                assert resp.status == 200 and {c["roomName"] for c in await resp.json()} >= {room}
            async with http.get(f"{base}/room/meetings", headers={"Authorization": f"Bearer {admin[:-2]}xx"}) as resp:
                assert resp.status == 401
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status in (200, 503)
            # End: the one participant leaves, presence shows <= 1, end_meeting ends the call.
            daily.run(lambda: daily.emu.leave_all(room))
            async with http.post(f"{base}/room/end_meeting", headers={"x-auth-jwt": jwt(end_token(signer))}) as resp:
                assert resp.status < 300, await resp.text()
            async with http.get(f"{base}/room/meetings", headers={"Authorization": f"Bearer {admin}"}) as resp:
                # the ended group call may still be listed as "ending" until its room delete lands
                remaining = [c["roomName"] for c in await resp.json() if c["state"] != "ending"]
            for name in remaining:
                async with http.post(f"{base}/room/meetings/{name}/end",
                                     headers={"Authorization": f"Bearer {admin}"}) as resp:
                    assert resp.status == 200, await resp.text()
        # The IC heard of the calls (OC_IDENTITY was really used to sign).
        deadline = time.monotonic() + 10
        while not any(c.method == "end_video_call_v2" for c in ic.calls) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert any(c.method == "start_video_call_v2" for c in ic.calls), ic.bad_requests
        code = await asyncio.to_thread(proc.stop)
    assert_clean_exit(proc, code)

    output = proc.stdout() + proc.stderr()
    assert len(log_lines(proc)) > 20
    pem_body = "".join(line for line in identity.splitlines() if not line.startswith("-----"))
    forbidden = {
        "DAILY_API_KEY": daily.api_key,
        "DAILY_HOOK_HMAC (base64)": hook_b64,
        "DAILY_HOOK_HMAC (raw)": hook_raw.decode(),
        "VIDEOBRIDGE_ADMIN_TOKEN": admin,
        "OC_IDENTITY body": pem_body[:40],
        "PEM marker": "-----BEGIN",
        "PEM marker (end)": "PRIVATE KEY-----",
    }
    for what, secret in forbidden.items():
        assert secret not in output, f"{what} appears in the logs"
    for i, sent in enumerate(sent_jwts):
        assert sent not in output, f"JWT #{i} sent appears in the logs"
        signature = sent.rsplit(".", 1)[-1]
        if len(signature) > 20:
            assert signature not in output, f"signature of JWT #{i} appears in the logs"
    assert len(tokens) >= 3
    for i, meeting_token in enumerate(tokens):
        assert meeting_token not in output, f"meeting token #{i} appears in the logs"
        assert meeting_token.rsplit(".", 1)[-1] not in output


def signed(body: bytes, secret: bytes) -> dict[str, str]:
    import hashlib
    import hmac

    ts = str(int(time.time()))
    mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).digest()
    return {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": base64.b64encode(mac).decode(),
            "Content-Type": "application/json"}


# ---- metrics ---------------------------------------------------------------------------------

def series(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_metrics_on_a_running_serve(spawn: Spawn, notify: NotifySocket, signer: DevSigner) -> None:
    proc = spawn(VIDEOBRIDGE_PRESENCE_INTERVAL="0.2")
    await asyncio.to_thread(ready, notify, proc)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{proc.base_url}/metrics") as resp:
            before = series(await resp.text())
        assert not any(k.startswith("videobridge_presence_last_success_age_seconds") for k in before)
        status, body = await get_token(http, proc, start_token(signer))
        assert status == 200, body
        deadline = time.monotonic() + 10
        while True:
            async with http.get(f"{proc.base_url}/metrics") as resp:
                assert resp.status == 200
                assert resp.content_type == "text/plain"
                text = await resp.text()
            found = series(text)
            if "videobridge_presence_last_success_age_seconds" in found or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    code = await asyncio.to_thread(proc.stop)
    assert_clean_exit(proc, code)

    route = 'route="/room/meeting_access_token"'
    assert any(k.startswith("videobridge_http_requests_total{") and route in k and 'status_class="2xx"' in k
               for k in found), sorted(found)
    assert any(k.startswith("videobridge_http_request_duration_seconds_bucket{") for k in found)
    assert any(k.startswith("videobridge_daily_requests_total{") and found[k] >= 1 for k in found), sorted(found)
    assert found['videobridge_calls_tracked{state="starting"}'] + found['videobridge_calls_tracked{state="live"}'] == 1
    assert "videobridge_outbox_depth" in found
    assert 0 <= found["videobridge_presence_last_success_age_seconds"] < 5
    assert any(k.startswith("videobridge_presence_polls_total{") and 'outcome="ok"' in k for k in found)
    assert any(k.startswith("videobridge_build_info{") for k in found)
    assert "videobridge_process_resident_memory_bytes" in found
    assert all(k.startswith("videobridge_") for k in found), [k for k in found if not k.startswith("videobridge_")]
    # Low cardinality: no room names, no user ids in any label.
    assert body["roomName"] not in text and ALICE not in text and GROUP not in text
