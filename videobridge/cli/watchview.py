"""One frame of `videobridge calls watch`, drawn from a `GET /room/status` snapshot.

Pure: a snapshot, a terminal size and a clock in, rich renderables out, so small terminals can be
tested without one. Every row is one line (no wrapping); what does not fit is dropped in order of
importance: event lines first, then call rows (with an "and N more" line), then columns, and on
a tiny terminal the whole view folds into a few summary lines.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from videobridge.cli.output import _span

STATE_STYLE = {"live": "green", "starting": "yellow", "ending": "magenta"}
WEBHOOK_STYLE = {"ACTIVE": "green", "unknown": "dim", "disabled": "dim"}
STATUS_LINES = 4  # outbox, poller, IC, webhook
MAX_EVENTS = 10


class BadStatus(ValueError):
    """The daemon answered, but not with a status snapshot this client understands."""


def parse_status(data: Any) -> dict[str, Any]:
    """Check the shape `frame` relies on; BadStatus names the first thing that is wrong."""
    if not isinstance(data, dict):
        raise BadStatus(f"expected a JSON object, got {type(data).__name__}")
    if data.get("version") != 1:
        raise BadStatus(f"unknown status version {str(data.get('version'))[:20]!r}")
    _number(data, "now")
    for section in ("outbox", "poller", "daily", "ic", "webhook"):
        if not isinstance(data.get(section), dict):
            raise BadStatus(f"{section!r} is missing or not an object")
    for key in ("calls", "events"):
        items = data.get(key)
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise BadStatus(f"{key!r} is missing or not a list of objects")
    for call in data["calls"]:
        if not isinstance(call.get("roomName"), str):
            raise BadStatus("a call has no roomName")
        _number(call, "createdAt")
        _number(call, "roomExp")
    return data


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadStatus(f"{key!r} is missing or not a number")
    return float(value)


def age(seconds: float | None) -> str:
    return "-" if seconds is None else _span(max(0.0, seconds))


def ago(ts: float | None, now: float) -> str:
    return "never" if ts is None else f"{age(now - ts)} ago"


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def frame(status: Mapping[str, Any] | None, *, url: str, width: int, height: int | None,
          now: float | None = None, error: str | None = None, stale_for: float | None = None) -> RenderableType:
    """The whole view. `height` None: no limit (--once). `error`: why the last fetch failed."""
    now = time.time() if now is None else now
    lines: list[RenderableType] = [_header(status, url, now, width, stale=error is not None)]
    if error is not None:
        stale = f"; below: the answer of {age(stale_for)} ago" if status is not None and stale_for is not None else ""
        lines.append(Text(f"! {error} (retrying every second{stale})", style="bold red", no_wrap=True,
                          overflow="ellipsis"))
    if status is None:
        return Group(*lines)
    budget = None if height is None else height - len(lines)
    calls: Sequence[Mapping[str, Any]] = status["calls"]
    events: Sequence[Mapping[str, Any]] = list(reversed(status["events"]))[:MAX_EVENTS]  # newest first
    if budget is not None and budget < STATUS_LINES + 3:
        lines.extend(_summary(status, calls, now, budget))
        return Group(*lines)
    calls_room = None if budget is None else budget - STATUS_LINES - 1  # 1: the calls title
    lines.append(Text(f"calls ({len(calls)})", style="bold", no_wrap=True))
    shown, used = _calls(calls, now, width, calls_room)
    lines.extend(shown)
    lines.extend(_status_lines(status, now, width))
    if budget is not None:
        room_left = budget - 1 - used - STATUS_LINES
        events = events[: room_left - 1] if room_left >= 2 else []  # 1: the events title
    if events:
        lines.append(Text(f"last {len(events)} events", style="bold", no_wrap=True))
        lines.append(_events(events, width))
    return Group(*lines)


def _header(status: Mapping[str, Any] | None, url: str, now: float, width: int, *, stale: bool) -> Text:
    """Readiness first: it is what must survive the narrowest terminal."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if stale or status is None:
        text.append("NO ANSWER", style="bold red")
    else:
        ready = bool(status.get("ready"))
        text.append("ready" if ready else "NOT READY", style="green" if ready else "bold red")
        if not ready:
            failing = [k for k, ok in (status.get("checks") or {}).items() if not ok]
            if failing:
                text.append(f" ({', '.join(str(k) for k in failing)})", style="red")
    text.append("  videobridge ", style="bold")
    text.append(url)
    started = None if status is None or stale else status.get("startedAt")
    if isinstance(started, (int, float)) and width >= 70:
        text.append(f"  up {age(now - started)}")
    text.append("  " + time.strftime("%H:%M:%SZ", time.gmtime(now)), style="dim")
    if width >= 60:
        text.append("  q quits", style="dim")
    return text


def _calls(calls: Sequence[Mapping[str, Any]], now: float, width: int,
           room: int | None) -> tuple[list[RenderableType], int]:
    """The calls table (or a 'none' line) and how many lines it takes."""
    if not calls:
        return [Text("  no calls tracked", style="dim", no_wrap=True)], 1
    columns = ["room", "state", "left"]
    if width >= 40:
        columns.insert(2, "people")
    if width >= 50:
        columns.insert(1, "type")
    if width >= 70:
        columns.insert(1, "chat")
        columns.insert(-1, "age")
    rows = list(calls)
    more = 0
    if room is not None and len(rows) + 1 > room:  # +1: the table's header line
        keep = max(0, room - 2)  # header and the "more" line
        more, rows = len(rows) - keep, rows[:keep]
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, padding=(0, 1),
                  show_edge=False)
    for name in columns:
        table.add_column(name, no_wrap=True, overflow="ellipsis", min_width=4 if name == "room" else None)
    for call in rows:
        cells = {
            "room": Text(_text(call.get("roomName"))),
            "chat": Text(_text(call.get("chatKind"))),
            "type": Text(_text(call.get("callType"))),
            "state": Text(_text(call.get("state")), style=STATE_STYLE.get(str(call.get("state")), "")),
            "people": Text(_text(call.get("participants"))),
            "age": Text(age(now - float(call["createdAt"]))),
            "left": Text(_left(float(call["roomExp"]) - now)),
        }
        table.add_row(*(cells[name] for name in columns))
    out: list[RenderableType] = [table] if rows else []
    if more:
        out.append(Text(f"  ... and {more} more call(s) (a taller terminal shows them)", style="dim", no_wrap=True))
    return out, (1 + len(rows) if rows else 0) + (1 if more else 0)


def _left(seconds: float) -> str:
    return "expired" if seconds <= 0 else _span(seconds)


def _status_lines(status: Mapping[str, Any], now: float, width: int) -> list[Text]:
    return [_line(label, parts, width) for label, parts in _status_parts(status, now)]


def _status_parts(status: Mapping[str, Any], now: float) -> list[tuple[str, list[tuple[str, str]]]]:
    outbox, poller, daily = status["outbox"], status["poller"], status["daily"]
    ic, hook = status["ic"], status["webhook"]
    last_error = outbox.get("lastError")
    error_text = "none"
    if isinstance(last_error, dict):
        error_text = f"{ago(last_error.get('at'), now)}: {_text(last_error.get('message'))}"
    depth = outbox.get("depth", 0)
    outbox_parts = [(f"{depth} queued", "yellow" if depth else ""),
                    (f"oldest {age(outbox.get('oldestAgeSeconds')) if depth else '-'}", ""),
                    (f"last error {error_text}", "red" if isinstance(last_error, dict) else "")]
    poll_age = poller.get("lastSuccessAgeSeconds")
    poller_parts = [(f"last poll {'never' if poll_age is None else age(poll_age) + ' ago'}",
                     "" if poller.get("healthy", True) else "bold red"),
                    (f"every {age(poller.get('interval'))}", ""),
                    (f"failures {poller.get('failures', 0)}", "red" if poller.get("failures") else ""),
                    ("Daily reachable" if daily.get("reachable", True)
                     else f"Daily UNREACHABLE for {age(daily.get('failingForSeconds'))}",
                     "" if daily.get("reachable", True) else "bold red")]
    if ic.get("enabled", True):
        ic_parts = [(f"last delivery {ago(ic.get('lastDeliveryAt'), now)}", ""),
                    (f"failures {ic.get('failures', 0)}", "red" if ic.get("failures") else "")]
    else:
        ic_parts = [("notifications off (IC_URL / OC_IDENTITY not set)", "yellow")]
    state = str(hook.get("state", "unknown"))
    hook_parts = [(state, WEBHOOK_STYLE.get(state, "bold red")),
                  (f"failed {hook.get('failedCount', 0)}", "")]
    if state != "disabled":
        hook_parts.append((f"checked {ago(hook.get('checkedAt'), now)}", ""))
        if hook.get("reactivatedAt") is not None:
            hook_parts.append((f"reactivated {ago(hook.get('reactivatedAt'), now)}", ""))
        if hook.get("error"):
            hook_parts.append((f"check failed: {hook['error']}", "red"))
        hook_parts.append(("self-heal " + ("on" if hook.get("autoheal", True) else "off"), "dim"))
    return [("outbox", outbox_parts), ("poller", poller_parts), ("IC", ic_parts), ("webhook", hook_parts)]


def _line(label: str, parts: list[tuple[str, str]], width: int) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{label:<8}", style="bold")
    for index, (part, style) in enumerate(parts):
        if index:
            text.append(" · ", style="dim")
        text.append(part, style=style)
    text.truncate(max(1, width), overflow="ellipsis")
    return text


def _events(events: Sequence[Mapping[str, Any]], width: int) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1), show_edge=False)
    table.add_column("at", no_wrap=True, style="dim")
    table.add_column("event", no_wrap=True, overflow="ellipsis")
    if width >= 60:
        table.add_column("room", no_wrap=True, overflow="ellipsis")
        table.add_column("detail", no_wrap=True, overflow="ellipsis")
    for event in events:
        at = event.get("at")
        stamp = time.strftime("%H:%M:%S", time.gmtime(at)) if isinstance(at, (int, float)) else "--:--:--"
        cells = [Text(stamp), Text(_text(event.get("event")))]
        if width >= 60:
            cells += [Text(_text(event.get("room") or "")), Text(_text(event.get("detail") or ""))]
        table.add_row(*cells)
    return table


def _summary(status: Mapping[str, Any], calls: Sequence[Mapping[str, Any]], now: float, budget: int) -> list[Text]:
    """A tiny terminal: counts on one line, then as many status lines as fit."""
    if budget <= 0:
        return []
    by_state: dict[str, int] = {}
    for call in calls:
        by_state[str(call.get("state"))] = by_state.get(str(call.get("state")), 0) + 1
    detail = ", ".join(f"{n} {s}" for s, n in sorted(by_state.items()))
    hook = str(status["webhook"].get("state", "unknown"))
    counts = f"calls {len(calls)}" + (f" ({detail})" if detail else "")
    first = Text(f"{counts} · outbox {status['outbox'].get('depth', 0)} · webhook {hook}", no_wrap=True,
                 overflow="ellipsis")
    rest = [_line(label, parts, 10_000) for label, parts in _status_parts(status, now)]
    return [first, *rest[: budget - 1]]
