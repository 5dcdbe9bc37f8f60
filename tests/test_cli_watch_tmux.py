"""`videobridge calls watch` as a person sees it: in a real terminal (tmux), read with capture-pane.

A real `videobridge serve` against the Daily emulator; calls are started and ended over HTTP and
the test waits (generously, polling the pane) for them to appear and vanish. Nothing is timed.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ALICE, GROUP
from ops_support import Tmux, tmux_server
from procs import EmulatorThread, ServeProcess, free_port, serve_env

from videobridge.devjwt import DevSigner

API_KEY = "watch-tmux-api-key-" + "0123456789abcdef" * 2
ADMIN = "watch-tmux-admin-token-0123456789"
WAIT = 90.0  # a loaded 2-core box: a redraw can take a while, a presence poll too

pytestmark = pytest.mark.timeout(300)


def watch_command(base: str, token: str) -> str:
    """The view in a clean environment, then proof that it exited and gave the terminal back."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "TERM": "xterm-256color", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "VIDEOBRIDGE_ADMIN_TOKEN": token}
    command = " ".join(shlex.quote(part) for part in
                       ["env", "-i", *(f"{k}={v}" for k, v in env.items()),
                        sys.executable, "-m", "videobridge", "calls", "watch", "--url", base])
    # An interactive shell survives the Ctrl-C meant for the view; `sh -c` only with a trap.
    script = (f"trap true INT; before=$(stty -g); {command}; rc=$?; after=$(stty -g); "
              '[ "$before" = "$after" ] && echo TERMINAL-RESTORED; echo "WATCH-EXITED $rc"; sleep 600')
    return f"sh -c {shlex.quote(script)}"


def call_request(base: str, path: str, jwt: str, *, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(base + path, headers={"x-auth-jwt": jwt}, method=method)
    with urllib.request.urlopen(request, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def start_call(base: str, signer: DevSigner, group: str = GROUP) -> dict[str, Any]:
    jwt = signer.video_call_token("StartVideoCall", user_id=ALICE, chat_id={"Group": group},
                                  call_type="Default", is_diamond=False)
    return call_request(base, "/room/meeting_access_token?initiator-username=alice", jwt)


def end_call(base: str, signer: DevSigner, group: str = GROUP) -> dict[str, Any]:
    jwt = signer.video_call_token("MarkVideoCallAsEnded", user_id=ALICE, chat_id={"Group": group})
    return call_request(base, "/room/end_meeting", jwt, method="POST")


def row(screen: str, room: str) -> list[str]:
    """The calls-table row of `room` as words ([] when it is not on screen)."""
    for line in screen.splitlines():
        if line.startswith(room):
            return line.split()
    return []


@pytest.fixture(name="tmux")
def _tmux() -> Iterator[Tmux]:
    with tmux_server() as tmux:
        yield tmux


def test_calls_appear_and_vanish_live_and_q_gives_the_terminal_back(tmp_path: Path, tmux: Tmux,
                                                                     signer: DevSigner) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with EmulatorThread(API_KEY) as daily:
        env = serve_env(tmp_path, daily, signer, PORT=str(port), VIDEOBRIDGE_ADMIN_TOKEN=ADMIN,
                        VIDEOBRIDGE_PRESENCE_INTERVAL="1")
        tmux.start("watch", watch_command(base, ADMIN), cwd=tmp_path, width=120, height=40)
        # Started before the daemon: one line says so, and the view keeps asking.
        down = tmux.wait_for("watch", "cannot reach the daemon", timeout=WAIT)
        assert down.splitlines()[0].startswith("NO ANSWER") and "Traceback" not in down

        proc = ServeProcess.start(env, cwd=tmp_path, port=port)
        try:
            proc.wait_listening(timeout=60)
            screen = tmux.wait_for("watch", lambda s: s.startswith("ready  videobridge") and "calls (0)" in s,
                                   timeout=WAIT, what="the empty view")
            assert "cannot reach" not in screen and "no calls tracked" in screen
            assert "poller  last poll" in screen and "IC      notifications off" in screen
            assert "webhook disabled" in screen

            grant = start_call(base, signer)
            room = grant["roomName"]
            screen = tmux.wait_for("watch", lambda s: bool(row(s, room)), timeout=WAIT, what=f"room {room}")
            assert "calls (1)" in screen and row(screen, room)[1:3] == ["group", "Default"]
            assert row(screen, room)[3] in ("starting", "live")
            assert "call_started" in screen

            # Someone joins in Daily: a presence poll makes the call live with one person in it.
            daily.run(lambda: daily.emu.join(room, grant["token"]))
            screen = tmux.wait_for("watch", lambda s: row(s, room)[3:5] == ["live", "1"], timeout=WAIT,
                                   what="the call live with 1 person")
            assert row(screen, room)[-1] in ("60m", "59m")  # time left until the room expires

            daily.run(lambda: daily.emu.leave_all(room))
            assert end_call(base, signer)["ended"] is True
            screen = tmux.wait_for("watch", lambda s: not row(s, room) and "call_ended" in s, timeout=WAIT,
                                   what="the call gone, call_ended in the events")
            assert "calls (0)" in screen

            # A small terminal still shows what matters, one line per row.
            other = start_call(base, signer, group="3v2qj-5qaaa-aaaar-q2qoa-cai")["roomName"]
            tmux.resize("watch", 44, 12)
            small = tmux.wait_for("watch", lambda s: any(line.startswith(other[:8]) for line in s.splitlines()),
                                  timeout=WAIT, what="the new call in a 44x12 terminal")
            lines = small.splitlines()
            assert lines[0].startswith("ready") and len(lines) <= 12 and all(len(line) <= 44 for line in lines)
            tmux.resize("watch", 30, 5)
            tiny = tmux.wait_for("watch", lambda s: s.startswith("ready") and "calls 1 (" in s, timeout=WAIT,
                                 what="the 30x5 summary")
            assert "Traceback" not in tiny

            tmux.keys("watch", "q")
            after = tmux.wait_for("watch", "WATCH-EXITED", timeout=WAIT)
            assert "WATCH-EXITED 0" in after and "TERMINAL-RESTORED" in after
            assert "calls" not in after  # the alternate screen is gone with the view
        finally:
            proc.kill()


def test_a_refused_token_is_one_line_the_view_keeps_trying_and_ctrl_c_quits(tmp_path: Path, tmux: Tmux,
                                                                             signer: DevSigner) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with EmulatorThread(API_KEY) as daily:
        env = serve_env(tmp_path, daily, signer, PORT=str(port), VIDEOBRIDGE_ADMIN_TOKEN=ADMIN)
        proc = ServeProcess.start(env, cwd=tmp_path, port=port)
        try:
            proc.wait_listening(timeout=60)
            tmux.start("wrong", watch_command(base, "not-the-daemons-token-0123"), cwd=tmp_path)
            screen = tmux.wait_for("wrong", "refused VIDEOBRIDGE_ADMIN_TOKEN", timeout=WAIT)
            assert screen.startswith("NO ANSWER") and "Traceback" not in screen
            refusals = proc.stdout().count('"status": 401')
            tmux.wait_for("wrong", lambda s: proc.stdout().count('"status": 401') > refusals, timeout=WAIT,
                          what="another attempt")  # it keeps asking
            tmux.keys("wrong", "C-c")
            after = tmux.wait_for("wrong", "WATCH-EXITED", timeout=WAIT)
            assert "WATCH-EXITED 0" in after and "TERMINAL-RESTORED" in after and "Traceback" not in after
        finally:
            proc.kill()
