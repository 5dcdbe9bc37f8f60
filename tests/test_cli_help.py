"""--help everywhere (with examples), shell completion, and a fast start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import base_env, invoke, track_call

COMMANDS = [
    ["rooms", "list"], ["rooms", "create"], ["rooms", "delete"], ["rooms", "prune"],
    ["token", "mint"], ["token", "decode"], ["calls", "list"], ["calls", "end"], ["calls", "watch"],
    ["config", "check"], ["webhook", "register"], ["webhook", "status"], ["webhook", "reactivate"],
]
SCRIPT = Path(sys.executable).parent / "videobridge"  # completion keys off the program name
GROUPS = ["rooms", "token", "calls", "config", "webhook"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DAILY_", "OC_", "IC_", "VIDEOBRIDGE_", "_"))}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = invoke([*command, "--help"], base_env())
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout and "--env-file" in result.stdout


def test_groups_list_their_commands() -> None:
    top = invoke(["--help"], base_env())
    assert top.exit_code == 0 and "--install-completion" in top.stdout
    for group in GROUPS:
        assert group in top.stdout
        result = invoke([group, "--help"], base_env())
        assert result.exit_code == 0 and "Commands" in result.stdout
    for command in COMMANDS:
        assert command[1] in invoke([command[0]], base_env()).stdout  # no args: the group's help
    assert "--json" in invoke(["rooms", "list", "--help"], base_env()).stdout


def test_shell_completion_offers_commands_and_tracked_rooms(workdir: Path) -> None:
    state = workdir / "state.json"
    track_call(state, "GAAAAAAHwqV0BAQ")
    env = {**clean_env(), "_VIDEOBRIDGE_COMPLETE": "complete_bash", "VIDEOBRIDGE_STATE": str(state)}

    def complete(words: str) -> list[str]:
        found = subprocess.run([str(SCRIPT)], cwd=workdir, capture_output=True, text=True,
                               env={**env, "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)},
                               timeout=30)
        assert found.returncode == 0, found.stderr
        return found.stdout.split()

    assert complete("videobridge web") == ["webhook"]
    assert complete("videobridge calls end G") == ["GAAAAAAHwqV0BAQ"]
    shown = subprocess.run([str(SCRIPT), "--show-completion", "bash"], cwd=workdir,
                           capture_output=True, text=True, env=clean_env(), timeout=30)
    assert shown.returncode == 0 and "_videobridge_completion" in shown.stdout


def test_help_imports_nothing_heavy(workdir: Path) -> None:
    # What keeps `--help` quick on any machine is what it loads, not a stopwatch (timing is in tests/bench).
    heavy = ("'aiohttp', 'jwt', 'tinydb', 'structlog', 'cryptography', 'icp_agent', 'redis', 'videobridge.daily.client', "
             "'videobridge.state.filestore'")
    probe = ("import sys, videobridge.cli\n"
             "try:\n    videobridge.cli.app(['--help'], prog_name='videobridge')\nexcept SystemExit:\n    pass\n"
             f"print('LOADED=' + ','.join(sorted(m for m in ({heavy}) if m in sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True,
                            env=clean_env(), timeout=30)
    assert loaded.returncode == 0 and "Usage" in loaded.stdout, loaded.stdout + loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1] == "LOADED=", loaded.stdout + loaded.stderr

    result = subprocess.run([sys.executable, "-m", "videobridge", "--help"], cwd=workdir, capture_output=True,
                            env=clean_env(), timeout=30)
    assert result.returncode == 0 and b"Usage" in result.stdout
