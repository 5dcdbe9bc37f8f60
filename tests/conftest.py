"""Shared fixtures: a Daily emulator over real HTTP, a dev OpenChat signer, the bridge app, a fake IC,
the CLI tests' servers and working directory, a Redis server."""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cli_support import DEFAULT_PORT, Servers
from fakeic import FakeIC
from helpers import ADMIN_TOKEN, ALICE, BOB, COMMUNITY, GROUP, HOOK_SECRET, LOCAL_USER_INDEX, RecordingNotifier
from ic_support import FAST_RETRY, OPERATOR, OPERATOR_PEM, ICFactory
from redis_support import STORES, RedisServer

from videobridge.config import Settings
from videobridge.devjwt import DevSigner
from videobridge.emulator import DailyEmulator
from videobridge.models import CanisterKind
from videobridge.notifier import IcNotifier, load_identity
from videobridge.web import make_app


@pytest.fixture(name="signer", scope="session")
def _signer() -> DevSigner:
    return DevSigner()


@pytest.fixture(name="other_signer", scope="session")
def _other_signer() -> DevSigner:
    return DevSigner()


@pytest.fixture(name="api_key")
def _api_key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(name="emulator")
async def _emulator(api_key: str) -> AsyncIterator[DailyEmulator]:
    emulator = DailyEmulator(api_key=api_key)
    await emulator.start("127.0.0.1", 0)
    yield emulator
    await emulator.stop()


@pytest.fixture(name="settings")
def _settings(tmp_path: Path, emulator: DailyEmulator, api_key: str, signer: DevSigner) -> Settings:
    return Settings(
        daily_api_key=api_key,
        daily_api_url=emulator.url,
        daily_hook_hmac=HOOK_SECRET,
        oc_public=signer.public_pem,
        state_path=tmp_path / "state.json",
        presence_interval=3600.0,  # tests drive polls themselves unless they shorten this
        start_grace=300.0,
        admin_token=ADMIN_TOKEN,
    )


@pytest.fixture(name="notifier")
def _notifier() -> RecordingNotifier:
    return RecordingNotifier()


BridgeFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture(name="make_bridge")
async def _make_bridge(settings: Settings, notifier: RecordingNotifier) -> AsyncIterator[BridgeFactory]:
    clients: list[TestClient] = []

    async def make(**changes: Any) -> TestClient:
        chosen_notifier = changes.pop("notifier", notifier)
        retry = changes.pop("notify_retry", None)
        app = make_app(replace(settings, **changes), notifier=chosen_notifier, notify_retry=retry)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture(name="bridge")
async def _bridge(make_bridge: BridgeFactory) -> TestClient:
    return await make_bridge()


# ---- a fake IC, and the bridge notifying it ------------------------------------------------------

@pytest.fixture(name="fake_ic")
def _fake_ic() -> Iterator[FakeIC]:
    """A running FakeIC with no canisters and no operators, stopped after the test."""
    with FakeIC() as fake:
        yield fake


@pytest.fixture(name="make_ic")
def _make_ic() -> Iterator[ICFactory]:
    """Fake IC boundary nodes taking OPERATOR's calls, with GROUP's and COMMUNITY's canisters, the one
    holding each of `users` (a MultiUser canister for an indexed id) and, when asked, LOCAL_USER_INDEX."""
    fakes: list[FakeIC] = []

    def make(*, users: tuple[str, ...] = (ALICE, BOB), local_user_index: bool = False) -> FakeIC:
        fake = FakeIC(operators={OPERATOR}).start()
        fakes.append(fake)
        fake.add_canister(GROUP, CanisterKind.GROUP)
        fake.add_canister(COMMUNITY, CanisterKind.COMMUNITY)
        if local_user_index:
            fake.add_canister(LOCAL_USER_INDEX, CanisterKind.LOCAL_USER_INDEX)
        fake.add_users(*users)
        return fake

    yield make
    for fake in fakes:
        fake.stop()


@pytest.fixture(name="ic")
def _ic(make_ic: ICFactory) -> FakeIC:
    """The default fake IC (a module wanting other canisters overrides this with its own make_ic call)."""
    return make_ic()


@pytest.fixture(name="ic_bridge")
def _ic_bridge(make_bridge: BridgeFactory, ic: FakeIC) -> BridgeFactory:
    """make_bridge with an IcNotifier talking to `ic`: signing with `pem`, retrying fast unless `notify_retry`."""

    async def make(pem: str = OPERATOR_PEM, **changes: Any) -> TestClient:
        notifier = IcNotifier(ic_url=ic.url, identity=load_identity(pem), request_timeout=0.5, deadline=1.0,
                              root_key=ic.root_key_der)
        retry = changes.pop("notify_retry", FAST_RETRY)
        return await make_bridge(notifier=notifier, notify_retry=retry, **changes)

    return make


@pytest.fixture(name="redis_server", scope="session")
def _redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="store_url", params=STORES)
def _store_url(request: pytest.FixtureRequest) -> str | None:
    """VIDEOBRIDGE_STORE for a daemon, once per store: None (the state file) or a running Redis."""
    return None if request.param == "file" else str(request.getfixturevalue("redis_url"))


@pytest.fixture(name="redis_url")
def _redis_url(redis_server: RedisServer) -> str:
    """A running, empty Redis (restarted if a test stopped it)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.proc = None
        redis_server.start()
    redis_server.flush()
    return redis_server.url


# ---- the CLI tests ----------------------------------------------------------------------------

@pytest.fixture(name="servers")
def _servers() -> Iterator[Servers]:
    servers = Servers()
    yield servers
    servers.close()


@pytest.fixture(name="workdir")
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path

@pytest.fixture(name="default_port_busy")
def _default_port_busy() -> Iterator[None]:
    """Something that is not this test's daemon listens on 127.0.0.1:5050 (as a developer's sandbox would).

    A CLI test that forgets --url then talks to this decoy and fails, instead of passing only on a
    machine where 5050 happens to be free. If 5050 is already taken, it is busy anyway."""
    import http.server
    import socketserver

    class Decoy(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(418)
            self.end_headers()
            self.wfile.write(b"not the daemon under test")

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", DEFAULT_PORT), Decoy, bind_and_activate=True)
    except OSError:
        yield
        return
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="port-5050-decoy", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(name="quiet_daemon_logs")
def _quiet_daemon_logs() -> Iterator[None]:
    """A daemon thread logs while CliRunner owns sys.stdout: keep its lines out of the output."""
    from videobridge.logs import configure_logging, reset_logging

    configure_logging(fmt="json", level="warning", stream=io.StringIO(), journal=False)
    yield
    reset_logging()
