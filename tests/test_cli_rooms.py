"""`videobridge rooms list|create|delete|prune` against the Daily emulator."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from cli_support import (
    ALICE,
    BOB,
    COMMUNITY,
    GROUP,
    Servers,
    base_env,
    daily_env,
    invoke,
    join,
    make_room,
    one_line_error,
    room_config,
    track_call,
)

from videobridge.models import CallType
from videobridge.roomconfig import room_properties

GROUP_ROOM = "GAAAAAAHwqV0BAQ"
DIRECT_ROOM = "DAAAAAAGgw_cBAQAAAAAAIBR7IBAQ"
CHANNEL_ROOM = "CAAAAAAIw1BwBAQAAAAAAAAAAAAAAAAqadSEw"


def test_list_pages_through_every_room_with_presence_and_tracking(servers: Servers, workdir: Path) -> None:
    state = workdir / "state.json"
    for i in range(103):
        make_room(servers, f"room-{i:03d}")
    join(servers, "room-005")
    join(servers, "room-005", user_id="other")
    track_call(state, "room-007")
    servers.emulator.fail_next("GET /rooms", 503)  # retried; the client's log line must not reach stdout

    result = invoke(["rooms", "list", "--json"], daily_env(servers, state))

    assert result.exit_code == 0, result.output
    rooms = {r["name"]: r for r in json.loads(result.stdout)}
    assert len(rooms) == 103
    assert servers.emulator.requests["GET /rooms"] == 4  # a 503, 100 + 3, then an empty page
    assert servers.emulator.requests["GET /presence"] == 1
    assert rooms["room-005"]["participants"] == 2 and not rooms["room-005"]["tracked"]
    assert rooms["room-007"]["tracked"] and rooms["room-007"]["callState"] == "live"
    assert rooms["room-000"]["participants"] == 0 and rooms["room-000"]["exp"] > time.time()


def test_list_table_for_people(servers: Servers, workdir: Path) -> None:
    make_room(servers, GROUP_ROOM)
    result = invoke(["rooms", "list"], daily_env(servers, workdir / "state.json"))
    assert result.exit_code == 0, result.output
    assert "Daily rooms (1)" in result.stdout and GROUP_ROOM in result.stdout and "group" in result.stdout


def test_create_from_a_chat_spec_makes_the_services_room(servers: Servers, workdir: Path) -> None:
    env = daily_env(servers, workdir / "state.json")
    result = invoke(["rooms", "create", "--chat", f"group:{GROUP}", "--broadcast", "--json"], env)
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert made["name"] == GROUP_ROOM and made["privacy"] == "private"
    config = room_config(servers, GROUP_ROOM)
    nbf, exp = config["nbf"], config["exp"]
    assert exp - nbf == 3600 + 60  # the room opens a minute before the call's start
    assert config == room_properties(CallType.BROADCAST, nbf=nbf + 60, exp=exp)

    result = invoke(["rooms", "create", "--chat", f"direct:{BOB},{ALICE}", "--diamond", "--json"], env)
    assert result.exit_code == 0, result.output
    direct = room_config(servers, DIRECT_ROOM)
    assert direct["exp"] - direct["nbf"] == 7200 + 60 and direct["max_participants"] == 20

    result = invoke(["rooms", "create", "--chat", f"channel:{COMMUNITY},2846315027"], env)
    assert result.exit_code == 0, result.output
    assert CHANNEL_ROOM in result.stdout and servers.emulator.room(CHANNEL_ROOM) is not None


def test_create_by_name_and_operator_mistakes(servers: Servers, workdir: Path) -> None:
    env = daily_env(servers, workdir / "state.json")
    created = invoke(["rooms", "create", "debug-room"], env)
    assert created.exit_code == 0, created.output
    room = servers.emulator.room("debug-room")  # what the operator asked for now exists, private
    assert room is not None and room["privacy"] == "private", room
    one_line_error(invoke(["rooms", "create", "debug-room"], env), 1, "already exists")
    one_line_error(invoke(["rooms", "create", "--chat", "group:not-a-principal"], env), 2, "bad chat")
    one_line_error(invoke(["rooms", "create", "--chat", "club:abc"], env), 2, "not a chat spec")
    one_line_error(invoke(["rooms", "create", "--chat", f"direct:{ALICE},{ALICE}"], env), 2, "two different")
    one_line_error(invoke(["rooms", "create", "--chat", f"group:{GROUP}", "other"], env), 2, GROUP_ROOM)
    one_line_error(invoke(["rooms", "create"], env), 2, "NAME or --chat")
    one_line_error(invoke(["rooms", "create", "bad name!"], env), 2, "not a Daily room name")
    one_line_error(invoke(["rooms", "create", "x"], base_env()), 2, "DAILY_API_KEY")
    wrong_key = daily_env(servers, workdir / "s.json", DAILY_API_KEY="wrong-key-" + "x" * 30)
    one_line_error(invoke(["rooms", "list"], wrong_key), 1, "HTTP 401", "check DAILY_API_KEY")


def test_delete_asks_refuses_tracked_rooms_and_reports_unknown_ones(servers: Servers, workdir: Path) -> None:
    state = workdir / "state.json"
    env = daily_env(servers, state)
    make_room(servers, "doomed")
    one_line_error(invoke(["rooms", "delete", "doomed"], env), 2, "--yes")
    assert servers.emulator.room("doomed") is not None
    assert invoke(["rooms", "delete", "doomed"], env, input="n\n").exit_code != 0  # no terminal: still refused

    result = invoke(["rooms", "delete", "doomed", "--yes", "--json"], env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deleted": True, "name": "doomed"}
    assert servers.emulator.room("doomed") is None
    one_line_error(invoke(["rooms", "delete", "doomed", "--yes"], env), 1, "no Daily room named doomed")

    make_room(servers, GROUP_ROOM)
    track_call(state, GROUP_ROOM)
    one_line_error(invoke(["rooms", "delete", GROUP_ROOM, "--yes"], env), 1, "calls end")
    assert invoke(["rooms", "delete", GROUP_ROOM, "--yes", "--force"], env).exit_code == 0


def test_prune_deletes_only_untracked_empty_rooms(servers: Servers, workdir: Path) -> None:
    state = workdir / "state.json"
    env = daily_env(servers, state)
    for name in ("empty-1", "empty-2", "busy", "tracked"):
        make_room(servers, name, age=600)
    make_room(servers, "fresh")
    join(servers, "busy")
    track_call(state, "tracked")

    dry = invoke(["rooms", "prune", "--dry-run", "--json"], env)
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert sorted(report["candidates"]) == ["empty-1", "empty-2"]
    assert {k["name"]: k["reason"] for k in report["kept"]} == {
        "busy": "1 present", "tracked": "tracked call (live)", "fresh": "younger than --min-age"}
    assert servers.emulator.requests["DELETE /rooms/:name"] == 0
    assert "keep: 1 present" in invoke(["rooms", "prune", "-n"], env).stdout

    one_line_error(invoke(["rooms", "prune"], env), 2, "--yes")
    result = invoke(["rooms", "prune", "--yes", "--json"], env)
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["deleted"]) == ["empty-1", "empty-2"]
    assert sorted(servers.emulator.rooms) == ["busy", "fresh", "tracked"]

    result = invoke(["rooms", "prune", "--yes", "--min-age", "0"], env)
    assert result.exit_code == 0 and "deleted 1" in result.stderr  # the fresh one, with a progress bar
    one_line_error(invoke(["rooms", "prune", "--min-age", "soon"], env), 2, "--min-age")


def test_prune_keeps_to_two_deletes_a_second_and_rechecks_each_room(servers: Servers, workdir: Path) -> None:
    state = workdir / "state.json"
    for i in range(6):
        make_room(servers, f"old-{i}", age=600)
    # A call starts in old-0 after the listing (during the re-check of the first room, old-5):
    # the re-check right before old-0's delete spares it.
    original = servers.emulator.visible_participants

    def visible(name: str) -> Any:
        if name == "old-5" and not state.exists():
            writer = threading.Thread(target=track_call, args=(state, "old-0"))
            writer.start()
            writer.join()
        return original(name)

    servers.emulator.visible_participants = visible  # type: ignore[method-assign,assignment]
    started = time.monotonic()
    result = invoke(["rooms", "prune", "--yes", "--json"], daily_env(servers, state))
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert len(outcome["deleted"]) == 5
    assert outcome["skipped"] == [{"name": "old-0", "reason": "a call started there"}]
    assert servers.emulator.requests["DELETE /rooms/:name"] == 5
    assert elapsed >= 1.4  # 5 deletes at 2/s after a burst of 2
