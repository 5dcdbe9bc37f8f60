"""`videobridge sandbox`: the printed lines work when pasted into a shell, and `--check` passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from videobridge.sandbox import ALICE

pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONDONTWRITEBYTECODE": "1"}


def shell(line: str) -> str:
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=20, check=True)
    return done.stdout


def test_every_printed_line_works_when_pasted(tmp_path: Path) -> None:
    err = open(tmp_path / "stderr.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "videobridge", "sandbox", "--port", "0"], cwd=tmp_path,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while not any("Stop with Ctrl-C" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "stderr.log").read_text()
            lines.append(proc.stdout.readline() if proc.stdout else "")
        curls = [line.strip() for line in lines if line.startswith("  curl ")]
        assert len(curls) == 7, lines
        start, join, enter, decline, leave, audio, audio_decline = curls

        started = json.loads(shell(start))
        assert started["joining"] is False and started["roomName"].startswith("G")
        assert json.loads(shell(join))["joining"] is True
        entered = shell(enter.replace("<token>", started["token"]).replace("<roomName>", started["roomName"]))
        assert "session_id" in json.loads(entered)
        assert shell(decline).strip() == "204"
        assert shell(leave).strip() == "204"
        call = json.loads(shell(audio))
        assert call["roomName"].startswith("D") and call["joining"] is False
        claims = json.loads(subprocess.run(
            [sys.executable, "-m", "videobridge", "token", "decode", call["token"], "--json"],
            capture_output=True, text=True, env=clean_env(), cwd=tmp_path, check=True).stdout)["claims"]
        assert claims["p"]["cs"] == "a" and claims["vo"] is True and claims["ud"] == ALICE
        assert shell(audio_decline).strip() == "204"
        assert shell(audio_decline).strip().endswith("404"), "the direct call is over"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        err.close()
    assert proc.returncode == 0, (tmp_path / "stderr.log").read_text()


def test_check_passes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "videobridge", "sandbox", "--check", "--port", "0"], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "sandbox self-check ok" in done.stdout and "declined -> 204, leave -> 204" in done.stdout
