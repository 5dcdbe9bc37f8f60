"""The `calls watch` frame: what each section says, and how it folds on small terminals."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from videobridge.cli.watchview import BadStatus, frame, parse_status

NOW = 1_800_000_000.0
URL = "http://127.0.0.1:5050"


def status(calls: int = 2, events: int = 3, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1, "now": NOW, "pid": 42, "startedAt": NOW - 3600, "ready": True,
        "checks": {"state": True, "daily": True, "poller": True},
        "calls": [
            {"roomName": f"ROOM{i:03d}xyz", "messageId": str(1000 + i), "chatKind": "group",
             "callType": ("Audio", "Default", "Broadcast")[i % 3], "state": ("live", "starting")[i % 2],
             "startedBy": "alice", "createdAt": NOW - 125 - i, "roomExp": NOW + 1800 - i, "participants": i % 4}
            for i in range(calls)
        ],
        "outbox": {"depth": 0, "oldestAgeSeconds": 0.0, "lastError": None},
        "poller": {"interval": 15.0, "lastSuccessAgeSeconds": 4.2, "failures": 0, "healthy": True},
        "daily": {"reachable": True, "failingForSeconds": None},
        "ic": {"enabled": True, "lastDeliveryAt": NOW - 30, "failures": 0},
        "webhook": {"state": "ACTIVE", "failedCount": 0, "checkedAt": NOW - 60, "autoheal": True},
        "events": [{"at": NOW - 100 + i, "event": f"event_{i}", "room": "ROOM000xyz", "detail": f"detail {i}"}
                   for i in range(events)],
    }
    base.update(changes)
    return base


def draw(data: dict[str, Any] | None, width: int = 120, height: int | None = 40, **kw: Any) -> list[str]:
    console = Console(file=io.StringIO(), width=width, height=height or 40, record=True, color_system=None,
                      legacy_windows=False)
    console.print(frame(data, url=URL, width=width, height=height, now=NOW, **kw))
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_a_roomy_terminal_shows_every_section() -> None:
    lines = draw(status())
    text = "\n".join(lines)
    assert lines[0] == f"ready  videobridge {URL}  up 60m  08:00:00Z  q quits"
    assert "calls (2)" in text
    header = next(line for line in lines if line.startswith("room"))
    assert header.split() == ["room", "chat", "type", "state", "people", "age", "left"]
    row = next(line for line in lines if line.startswith("ROOM000xyz"))
    assert row.split() == ["ROOM000xyz", "group", "Audio", "live", "0", "2m", "30m"]  # callType shown as given
    assert any(line.startswith("outbox  0 queued") for line in lines)
    poller = "poller  last poll 4s ago · every 15s · failures 0 · Daily reachable"
    assert any(line.startswith(poller) for line in lines)
    assert any(line.startswith("IC      last delivery 30s ago · failures 0") for line in lines)
    assert any(line.startswith("webhook ACTIVE · failed 0 · checked 60s ago · self-heal on") for line in lines)
    assert "last 3 events" in text
    events = [line for line in lines if "event_" in line]
    assert [e.split()[1] for e in events] == ["event_2", "event_1", "event_0"]  # newest first


def test_trouble_is_spelled_out() -> None:
    data = status(ready=False, checks={"state": True, "daily": False, "poller": False},
                  outbox={"depth": 3, "oldestAgeSeconds": 400.0, "lastError": {"at": NOW - 5, "message": "IC down"}},
                  daily={"reachable": False, "failingForSeconds": 75.0},
                  poller={"interval": 15.0, "lastSuccessAgeSeconds": None, "failures": 4, "healthy": False},
                  ic={"enabled": True, "lastDeliveryAt": None, "failures": 7},
                  webhook={"state": "FAILED", "failedCount": 3, "checkedAt": NOW - 2, "autoheal": False,
                           "error": None})
    text = "\n".join(draw(data))
    assert "NOT READY (daily, poller)" in text
    assert "3 queued · oldest 7m · last error 5s ago: IC down" in text
    assert "last poll never" in text and "Daily UNREACHABLE for 75s" in text and "failures 4" in text
    assert "last delivery never · failures 7" in text
    assert "webhook FAILED · failed 3 · checked 2s ago · self-heal off" in text


def test_notifications_off_and_webhooks_disabled() -> None:
    text = "\n".join(draw(status(ic={"enabled": False}, webhook={"state": "disabled", "failedCount": 0}, calls=0)))
    assert "notifications off" in text and "webhook disabled" in text and "no calls tracked" in text


def test_a_narrow_terminal_drops_columns_and_never_wraps() -> None:
    for width in (79, 60, 45, 30):
        lines = draw(status(calls=3), width=width)
        assert all(len(line) <= width for line in lines), (width, lines)
        header = next(line for line in lines if line.startswith("room"))
        assert header.split()[0] == "room" and "state" in header.split() and header.split()[-1] == "left"
        assert ("people" in header) is (width >= 40)
        assert ("chat" in header) is (width >= 70) and ("type" in header) is (width >= 50)
        assert any(line.startswith("ROOM000") for line in lines)


def test_a_short_terminal_keeps_calls_before_events() -> None:
    lines = draw(status(calls=30, events=10), height=20)
    assert len(lines) <= 20
    assert "calls (30)" in lines
    more = [line for line in lines if "more call(s)" in line]
    shown = [line for line in lines if line.startswith("ROOM")]
    assert more and f"and {30 - len(shown)} more" in more[0]
    assert not any("event_" in line for line in lines)  # no room left for events
    assert any(line.startswith("webhook") for line in lines)

    roomy = draw(status(calls=2, events=10), height=16)
    assert len(roomy) <= 16
    assert 0 < len([line for line in roomy if "event_" in line]) < 10  # as many as fit, newest first
    assert any("event_9" in line for line in roomy)


@pytest.mark.parametrize("height", [3, 5, 8, 10])
def test_a_tiny_terminal_folds_into_summary_lines(height: int) -> None:
    lines = draw(status(calls=5), width=40, height=height)
    assert 1 <= len(lines) <= height and all(len(line) <= 40 for line in lines)
    assert lines[0].startswith("ready  videobridge")
    if height >= 2:
        assert lines[1].startswith("calls 5 (3 live, 2 starting) · outbox 0") or "calls (5)" in lines


def test_no_answer_yet_and_a_stale_picture() -> None:
    lines = draw(None, error="cannot reach the daemon at x: connection refused")
    assert lines[0].startswith(f"NO ANSWER  videobridge {URL}")
    assert lines[1].startswith("! cannot reach the daemon at x: connection refused (retrying every second)")
    assert len(lines) == 2
    stale = draw(status(), error="the daemon did not answer within 3s", stale_for=12.0)
    assert stale[0].startswith("NO ANSWER") and "up " not in stale[0] and "below: the answer of 12s ago" in stale[1]
    assert "calls (2)" in stale


@pytest.mark.parametrize("garbage, problem", [
    ([], "expected a JSON object"),
    ({"version": 2}, "unknown status version"),
    ({**status(), "now": "soon"}, "'now'"),
    ({**status(), "outbox": None}, "'outbox'"),
    ({**status(), "calls": [1, 2]}, "'calls'"),
    ({**status(), "calls": [{"createdAt": 1, "roomExp": 2}]}, "roomName"),
    ({**status(), "calls": [{"roomName": "x", "createdAt": True, "roomExp": 2}]}, "'createdAt'"),
    ({**status(), "events": {}}, "'events'"),
])
def test_garbage_is_refused_with_a_reason(garbage: Any, problem: str) -> None:
    with pytest.raises(BadStatus, match=problem):
        parse_status(garbage)
    assert parse_status(status()) == status()
