"""`videobridge calls watch --once` against a real bridge, and every way asking it can go wrong.

The live view itself is driven in a real terminal in test_cli_watch_tmux.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cli_support import ADMIN_TOKEN, Servers, bridge_app, bridge_settings, daily_env, invoke, one_line_error, start_call
from procs import free_port

from videobridge.devjwt import DevSigner

pytestmark = pytest.mark.usefixtures("default_port_busy", "quiet_daemon_logs")  # a forgotten --url meets a decoy


def serve_bridge(servers: Servers, workdir: Path, signer: DevSigner, **changes: Any) -> str:
    return servers.serve(bridge_app(bridge_settings(servers, workdir / "bridge.json", signer.public_pem, **changes)))


def watch_env(servers: Servers, workdir: Path, **values: str | None) -> dict[str, str | None]:
    return daily_env(servers, workdir / "cli.json", **{"VIDEOBRIDGE_ADMIN_TOKEN": ADMIN_TOKEN, **values})


def test_once_prints_one_frame_with_the_tracked_calls(servers: Servers, workdir: Path, signer: DevSigner) -> None:
    url = serve_bridge(servers, workdir, signer)
    env = watch_env(servers, workdir)
    empty = invoke(["calls", "watch", "--once", "--url", url], env)
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.startswith(f"ready  videobridge {url}") and "no calls tracked" in empty.stdout

    room = start_call(url, signer, call_type="Broadcast")["roomName"]
    result = invoke(["calls", "watch", "--once", "--url", url], env)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith(room))
    assert row.split()[1:5] == ["group", "Broadcast", "starting", "-"]  # no presence poll yet: people unknown
    assert "call_started" in result.stdout and "outbox  " in result.stdout and "webhook " in result.stdout

    as_json = invoke(["calls", "watch", "--once", "--json", "--url", url], env)
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert [c["roomName"] for c in data["calls"]] == [room] and data["calls"][0]["callType"] == "Broadcast"
    assert data["events"][-1]["event"] in ("call_started", "notification_settled")
    assert data["webhook"]["state"] == "disabled"  # these settings have no DAILY_HOOK_HMAC
    assert ADMIN_TOKEN not in as_json.output


def test_once_fails_in_one_line_when_the_daemon_cannot_be_asked(servers: Servers, workdir: Path,
                                                                 signer: DevSigner) -> None:
    env = watch_env(servers, workdir)
    down = f"http://127.0.0.1:{free_port()}"
    one_line_error(invoke(["calls", "watch", "--once", "--url", down], env), 1, "cannot reach the daemon",
                   "connection refused")
    one_line_error(invoke(["calls", "watch", "--once", "--json", "--url", down], env), 1, "cannot reach")

    no_admin = serve_bridge(servers, workdir, signer, admin_token=None, state_path=workdir / "b2.json")
    one_line_error(invoke(["calls", "watch", "--once", "--url", no_admin], env), 1, "no admin API", "HTTP 404")

    url = serve_bridge(servers, workdir, signer, state_path=workdir / "b3.json")
    other = watch_env(servers, workdir, VIDEOBRIDGE_ADMIN_TOKEN="another-admin-token-0123456789")
    one_line_error(invoke(["calls", "watch", "--once", "--url", url], other), 1, "refused VIDEOBRIDGE_ADMIN_TOKEN")

    unset = watch_env(servers, workdir, VIDEOBRIDGE_ADMIN_TOKEN=None)
    one_line_error(invoke(["calls", "watch", "--once", "--url", url], unset), 2, "VIDEOBRIDGE_ADMIN_TOKEN is not set")
    one_line_error(invoke(["calls", "watch", "--once", "--url", "ftp://x"], env), 2, "not an http(s) URL")
    # the live view needs a terminal (CliRunner's stdout is not one)
    one_line_error(invoke(["calls", "watch", "--url", url], env), 2, "draws on a terminal", "--once")


def garbage_server(mode: dict[str, str]) -> web.Application:
    """Something at the URL that is not a videobridge, or one that answers nonsense."""

    async def status(request: web.Request) -> web.Response:
        kind = mode["kind"]
        if kind == "html":
            return web.Response(text="<html><body>It works!</body></html>", content_type="text/html")
        if kind == "json":
            return web.json_response({"version": 1, "now": "later"})
        if kind == "500":
            return web.json_response({"statusCode": 500, "error": "Internal Server Error", "message": "boom"},
                                     status=500)
        return web.Response(body=b"")

    app = web.Application()
    app.router.add_get("/room/status", status)
    return app


def test_once_names_garbage_answers(servers: Servers, workdir: Path) -> None:
    env = watch_env(servers, workdir)
    mode = {"kind": "html"}
    url = servers.serve(garbage_server(mode))
    one_line_error(invoke(["calls", "watch", "--once", "--url", url], env), 1, "not JSON", "It works")
    for kind, fragment in (("json", "cannot read: 'now'"), ("500", "HTTP 500: boom"), ("empty", "an empty body")):
        mode["kind"] = kind
        one_line_error(invoke(["calls", "watch", "--once", "--url", url], env), 1, fragment)
