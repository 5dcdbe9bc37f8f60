"""`videobridge webhook register|status|reactivate` against the emulator (which probes the URL)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cli_support import (
    Servers,
    daily_env,
    hook_receiver,
    invoke,
    one_line_error,
)

SECRET = base64.b64encode(b"webhook-cli-test-secret-01234567").decode()
EVENTS = ["meeting.started", "meeting.ended", "participant.joined", "participant.left"]


def test_register_creates_then_updates_the_domains_one_webhook(servers: Servers, workdir: Path) -> None:
    env = daily_env(servers, workdir / "state.json", DAILY_HOOK_HMAC=SECRET)
    url = servers.serve(hook_receiver()) + "/room/hook"
    result = invoke(["webhook", "register", url, "--json"], env)
    assert result.exit_code == 0, result.output
    hook = json.loads(result.stdout)
    assert hook["url"] == url and hook["state"] == "ACTIVE" and hook["eventTypes"] == EVENTS
    assert hook["retryType"] == "exponential" and hook["hmacMatches"] is True
    (stored,) = servers.emulator.dispatcher.hooks.values()
    assert stored.hmac == SECRET  # Daily signs with our secret
    assert SECRET not in result.output

    again = invoke(["webhook", "register", url, "--retry-type", "circuit-breaker"], env)
    assert again.exit_code == 0, again.output
    assert "webhook updated" in again.stdout and "circuit-breaker" in again.stdout
    assert len(servers.emulator.dispatcher.hooks) == 1 and stored.retry_type == "circuit-breaker"


def test_register_mistakes(servers: Servers, workdir: Path) -> None:
    env = daily_env(servers, workdir / "state.json", DAILY_HOOK_HMAC=SECRET)
    dead = "http://127.0.0.1:9/room/hook"  # Daily's probe gets no 200: it refuses the webhook
    one_line_error(invoke(["webhook", "register", dead], env), 1, "POST /webhooks", "HTTP 400")
    one_line_error(invoke(["webhook", "register", "video.example.org/room/hook"], env), 2, "not an http(s) URL")
    no_secret = daily_env(servers, workdir / "state.json")
    one_line_error(invoke(["webhook", "register", dead], no_secret), 2, "DAILY_HOOK_HMAC")
    assert invoke(["webhook", "register", dead, "--retry-type", "sometimes"], env).exit_code == 2
    url = servers.serve(hook_receiver()) + "/hooks/daily"
    odd = invoke(["webhook", "register", url], env)
    assert odd.exit_code == 0 and "/room/hook" in odd.stderr  # registered, with a warning about the path


def test_status_warns_when_daily_stops_delivering_and_reactivate_fixes_it(servers: Servers, workdir: Path) -> None:
    env = daily_env(servers, workdir / "state.json", DAILY_HOOK_HMAC=SECRET)
    one_line_error(invoke(["webhook", "status"], env), 1, "no webhook registered")
    one_line_error(invoke(["webhook", "reactivate"], env), 1, "no webhook registered")
    url = servers.serve(hook_receiver()) + "/room/hook"
    assert invoke(["webhook", "register", url], env).exit_code == 0

    ok = invoke(["webhook", "status", "--json"], env)
    assert ok.exit_code == 0 and json.loads(ok.stdout)["state"] == "ACTIVE" and ok.stderr == ""

    (stored,) = servers.emulator.dispatcher.hooks.values()
    stored.state, stored.failed_count = "FAILED", 3
    failed = invoke(["webhook", "status", "--json"], env)
    assert json.loads(failed.stdout)["failedCount"] == 3  # the JSON still comes out, valid
    one_line_error(failed, 1, "FAILED", "stopped delivering", "webhook reactivate")
    human = invoke(["webhook", "status"], env)
    assert human.exit_code == 1 and "FAILED" in human.stdout

    result = invoke(["webhook", "reactivate", "--json"], env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "ACTIVE" and stored.state == "ACTIVE"
    assert invoke(["webhook", "status"], env).exit_code == 0

    other = daily_env(servers, workdir / "state.json", DAILY_HOOK_HMAC=base64.b64encode(b"x" * 32).decode())
    mismatch = invoke(["webhook", "status"], other)
    assert mismatch.exit_code == 0 and "another secret" in mismatch.stderr
