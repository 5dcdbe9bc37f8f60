"""`videobridge calls list|end` with the daemon running (admin API) and without it (the file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import (
    ADMIN_TOKEN,
    ALICE,
    Servers,
    bridge_app,
    bridge_settings,
    daily_env,
    invoke,
    one_line_error,
    start_call,
    track_call,
)

from videobridge.devjwt import DevSigner
from videobridge.models import NotificationKind
from videobridge.state.filestore import FileStore, read_state

pytestmark = pytest.mark.usefixtures("default_port_busy")  # a forgotten --url meets a decoy

GROUP_ROOM = "GAAAAAAHwqV0BAQ"


def run_daemon(servers: Servers, state: Path, **changes: object) -> tuple[str, DevSigner]:
    signer = DevSigner()
    settings = bridge_settings(servers, state, signer.public_pem, daily_domain_id=servers.emulator.domain_id, **changes)
    return servers.serve(bridge_app(settings)), signer


def test_list_reads_the_file_while_the_daemon_holds_it(servers: Servers, workdir: Path,
                                                       quiet_daemon_logs: None) -> None:
    state = workdir / "state.json"
    env = daily_env(servers, state)
    empty = invoke(["calls", "list", "--json"], env)
    assert empty.exit_code == 0 and json.loads(empty.stdout) == [] and "no state file" in empty.stderr

    daemon, signer = run_daemon(servers, state)
    started = start_call(daemon, signer)
    result = invoke(["calls", "list", "--json"], env)
    assert result.exit_code == 0, result.output
    (call,) = json.loads(result.stdout)
    assert call["roomName"] == GROUP_ROOM == started["roomName"]
    assert call["messageId"] == started["messageId"] and call["state"] == "starting"
    assert call["startedBy"] == ALICE and call["callType"] == "Default"
    human = invoke(["calls", "list"], env)
    assert human.exit_code == 0 and GROUP_ROOM in human.stdout and str(started["messageId"]) in human.stdout


def test_end_goes_through_the_daemons_admin_api(servers: Servers, workdir: Path, quiet_daemon_logs: None) -> None:
    state = workdir / "state.json"
    daemon, signer = run_daemon(servers, state)
    start_call(daemon, signer)
    env = daily_env(servers, state, VIDEOBRIDGE_ADMIN_TOKEN=ADMIN_TOKEN)

    one_line_error(invoke(["calls", "end", "Gnope", "--url", daemon], env), 1, "no tracked call in room Gnope")
    wrong = daily_env(servers, state, VIDEOBRIDGE_ADMIN_TOKEN="not-the-daemons-token-at-all")
    one_line_error(invoke(["calls", "end", GROUP_ROOM, "--url", daemon], wrong), 1, "HTTP 401")
    no_token = daily_env(servers, state)  # falls back to the file, which the daemon holds
    one_line_error(invoke(["calls", "end", GROUP_ROOM], no_token), 1, "holds", "VIDEOBRIDGE_ADMIN_TOKEN")
    one_line_error(invoke(["calls", "end", GROUP_ROOM, "--url", "http://127.0.0.1:9"], env), 1,
                   "admin API did not answer at http://127.0.0.1:9")

    host, port = daemon.removeprefix("http://").split(":")
    result = invoke(["calls", "end", GROUP_ROOM, "--json"], {**env, "HOST": host, "PORT": port})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ended": True, "roomName": GROUP_ROOM, "via": "daemon", "daemon": daemon}
    assert servers.emulator.room(GROUP_ROOM) is None
    assert GROUP_ROOM not in read_state(state)[0]


def test_end_without_a_daemon_uses_the_file_and_the_next_serve_notifies(
        servers: Servers, workdir: Path, quiet_daemon_logs: None) -> None:
    state = workdir / "state.json"
    daemon, signer = run_daemon(servers, state)
    started = start_call(daemon, signer)
    deadline = time.monotonic() + 5
    while read_state(state)[1] and time.monotonic() < deadline:  # the start notification goes out
        time.sleep(0.02)
    servers.stop_app(daemon)  # serve is down now

    env = daily_env(servers, state, VIDEOBRIDGE_ADMIN_TOKEN=ADMIN_TOKEN)
    result = invoke(["calls", "end", GROUP_ROOM, "--url", daemon, "--json"], env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["via"] == "state file" and report["roomDeleted"] is True and report["notificationsQueued"] == 1
    calls, outbox = read_state(state)
    assert calls == {}
    (note,) = outbox.values()
    assert note.kind is NotificationKind.END and str(note.message_id) == started["messageId"]
    assert servers.emulator.room(GROUP_ROOM) is None
    one_line_error(invoke(["calls", "end", GROUP_ROOM, "--url", daemon], env), 1, "no tracked call")

    run_daemon(servers, state)  # the next serve delivers the queued end
    deadline = time.monotonic() + 5
    while read_state(state)[1] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert read_state(state)[1] == {}


def test_end_offline_reports_a_room_it_could_not_delete(servers: Servers, workdir: Path) -> None:
    state = workdir / "state.json"
    track_call(state, "Gleftover")  # no such Daily room: the delete 404s, which counts as done
    servers.emulator.fail_next("DELETE /rooms/:name", 400, times=1)
    track_call(state, GROUP_ROOM)
    env = daily_env(servers, state)
    result = invoke(["calls", "end", GROUP_ROOM], env)
    assert result.exit_code == 0, result.output
    assert "could not be deleted" in result.stderr and "queued for OpenChat" in result.stderr
    assert read_state(state)[0][GROUP_ROOM].state.value == "ending"  # the next serve retries the delete
    assert invoke(["calls", "end", "Gleftover"], env).exit_code == 0
    assert "Gleftover" not in read_state(state)[0]


def test_errors_come_out_as_one_line_from_the_real_entry_point(workdir: Path) -> None:
    """Through `python -m videobridge` (main()), not typer's runner: no traceback, exit status kept."""
    state = workdir / "state.json"
    state.write_text('{"calls": {"1": {"roomName": 7}}}')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAILY_", "OC_", "IC_", "VIDEOBRIDGE_"))}
    env["VIDEOBRIDGE_STATE"] = str(state)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "videobridge", *args], env=env, cwd=workdir,
                              capture_output=True, text=True, timeout=30)

    broken = run("calls", "list")
    assert broken.returncode == 1 and broken.stderr.startswith("videobridge: state file")
    assert len(broken.stderr.splitlines()) == 1 and "Traceback" not in broken.stderr
    state.unlink()
    track_call(state, GROUP_ROOM)
    store = FileStore(state)
    store.open()  # a "daemon" holds the file and has no admin API
    try:
        locked = run("calls", "end", GROUP_ROOM)
    finally:
        store.close()
    assert locked.returncode == 1 and "Traceback" not in locked.stderr
    assert locked.stderr.startswith("videobridge: a running `videobridge serve` holds")
    assert len(locked.stderr.splitlines()) == 1, locked.stderr
    no_key = run("calls", "end", GROUP_ROOM)
    assert no_key.returncode == 2 and no_key.stderr.startswith("videobridge: DAILY_API_KEY is required")
