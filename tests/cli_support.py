"""Helpers for the CLI tests: a Daily emulator (and optionally the bridge) on a background loop.

typer's CliRunner calls the app in this thread and the commands run their own `asyncio.run`,
so the servers they talk to live on an event loop in another thread. Each test gets a fresh
emulator, an empty working directory (no stray ./.env) and an environment holding only the
settings the test chooses.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web
from helpers import ALICE, BOB, COMMUNITY, GROUP, start_token  # noqa: F401 - principals are defined once, in helpers
from procs import EmulatorThread
from typer.testing import CliRunner, Result

from videobridge.cli import app
from videobridge.config import KNOWN, Settings
from videobridge.devjwt import DevSigner

API_KEY = "cli-test-api-key-" + "0123456789abcdef" * 2  # >= 32 bytes: PyJWT warns on short HMAC keys
ADMIN_TOKEN = "cli-admin-token-0123456789abcdef"
DEFAULT_PORT = 5050  # where the CLI looks for a daemon when neither --url nor HOST/PORT says


class Servers(EmulatorThread):
    """procs' emulator host (probes time out after 2 s), started at once, that also serves aiohttp apps
    (bridge daemons, webhook receivers) on its loop."""

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__(api_key, probe_timeout=2.0)
        self._runners: list[web.AppRunner] = []
        self.__enter__()

    def serve(self, app: web.Application) -> str:
        """Serve an aiohttp app (the bridge, a webhook receiver) on 127.0.0.1; returns its URL."""

        async def start() -> str:
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            host, port = runner.addresses[0][:2]
            return f"http://{host}:{port}"

        return self.call(start())

    def stop_app(self, url: str) -> None:
        for runner in list(self._runners):
            host, port = runner.addresses[0][:2]
            if url == f"http://{host}:{port}":
                self._runners.remove(runner)
                self.call(runner.cleanup())

    def close(self) -> None:
        for runner in reversed(self._runners):
            self.call(runner.cleanup())
        super().close()


def bridge_settings(servers: Servers, state: Path, oc_public: str, **changes: Any) -> Settings:
    """Settings for a bridge daemon against `servers`' emulator: admin API on, presence polls off."""
    values: dict[str, Any] = {"daily_api_key": servers.api_key, "daily_api_url": servers.url,
                              "oc_public": oc_public, "state_path": state, "presence_interval": 3600.0,
                              "admin_token": ADMIN_TOKEN}
    values.update(changes)
    return Settings(**values)


def start_call(url: str, signer: DevSigner, call_type: str = "Default") -> dict[str, Any]:
    """ALICE starts a group call on the bridge at `url` (blocking: CLI tests run outside an event loop)."""
    request = urllib.request.Request(f"{url}/room/meeting_access_token?initiator-username=alice",
                                     headers={"x-auth-jwt": start_token(signer, ALICE, call_type=call_type)})
    with urllib.request.urlopen(request, timeout=15) as resp:
        return dict(json.loads(resp.read()))


def bridge_app(settings: Settings) -> web.Application:
    """The real daemon app, notifications recorded instead of sent."""
    from videobridge.notifier import LoggingNotifier
    from videobridge.web import make_app

    return make_app(settings, notifier=LoggingNotifier())


def hook_receiver() -> web.Application:
    """Answers Daily's {"test":"test"} probe (and every event) with 200, like the bridge."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"test": "test"})

    app = web.Application()
    app.router.add_post("/{path:.*}", handle)
    return app


def base_env(**values: str | None) -> dict[str, str | None]:
    """Every known setting cleared, then `values` (None removes a variable)."""
    env: dict[str, str | None] = {name: None for name in KNOWN}
    env.update(CREDENTIALS_DIRECTORY=None, STATE_DIRECTORY=None, JOURNAL_STREAM=None)
    env.update(values)
    return env


def daily_env(servers: Servers, state: Path, **values: str | None) -> dict[str, str | None]:
    defaults: dict[str, str | None] = {"DAILY_API_KEY": servers.api_key, "DAILY_API_URL": servers.url,
                                       "VIDEOBRIDGE_STATE": str(state)}
    return base_env(**{**defaults, **values})


def invoke(args: list[str], env: dict[str, str | None], input: str | None = None) -> Result:
    return CliRunner().invoke(app, args, env=env, input=input)


def one_line_error(result: Result, code: int, *fragments: str) -> str:
    """The command failed with `code` and said so on one stderr line, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("videobridge: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
    return lines[-1]


def track_call(state: Path, room: str, *, chat: Any = None, started_by: str = ALICE,
               call_state: str = "live", exp_in: int = 3600, message_id: int | None = None) -> int:
    """Write a tracked call into the state file, as `serve` would have (returns its message id)."""
    from videobridge.chats import GroupChat
    from videobridge.models import Call, CallState, CallType, Initiator
    from videobridge.state.filestore import Change, FileStore

    now = time.time()
    message_id = message_id or secrets.randbits(63) + 1
    call = Call(room_name=room, message_id=message_id, chat=chat or GroupChat(GROUP), call_type=CallType.DEFAULT,
                started_by=started_by, initiator=Initiator(username="alice"), is_diamond=False,
                state=CallState(call_state), created_at=now, room_exp=int(now) + exp_in)

    async def write() -> None:
        store = FileStore(state)
        store.open()
        try:
            await store.commit(Change(put_calls=[call]))
        finally:
            await store.aclose()

    asyncio.run(write())
    return message_id


def room_config(servers: Servers, name: str) -> dict[str, Any]:
    room = servers.emu.room(name)
    assert room is not None, f"no room {name} in the emulator"
    return dict(room["config"])


def make_room(servers: Servers, name: str, *, privacy: str = "private", exp_in: int = 3600, age: float = 0) -> None:
    """Create a room straight in the emulator's store (no HTTP round trip, no request counted)."""
    now = int(time.time())

    def create() -> None:
        record = servers.emu.store.create(name, privacy, {"nbf": now - int(age), "exp": now + exp_in})
        record.created_at -= age

    servers.run(create)


def join(servers: Servers, room: str, *, user_id: str = "someone") -> str:
    """Put a simulated participant in a room (self-signed token, as the bridge would mint)."""
    from videobridge.daily import TokenGrant, self_signed_token

    now = int(time.time())
    grant = TokenGrant(room_name=room, user_id=user_id, user_name=user_id, owner=True, broadcast=False,
                       exp=now + 3600)
    token = self_signed_token(grant, api_key=servers.api_key, domain_id=servers.emu.domain_id, now=now)
    return servers.run(lambda: servers.emu.join(room, token))
