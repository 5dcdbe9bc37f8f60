"""Output for the operator commands: rich tables for people, JSON for scripts, notes on stderr.

Consoles are made per call (not at import) so they follow `sys.stdout`/`sys.stderr` as they
are when the command runs (typer's test runner swaps them). `--json` output is the only thing a
command writes to stdout in JSON mode; everything else goes to stderr.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of a table.")]

PIPE_WIDTH = 200
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def console(*, stderr: bool = False) -> Any:
    import os

    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPE_WIDTH  # piped or captured: no terminal to fit, don't fold names and ids
    return out


def note(message: str) -> None:
    """A message for the person at the terminal (stderr, so stdout stays parseable)."""
    sys.stderr.write(message.rstrip("\n") + "\n")


def warn(message: str) -> None:
    note(f"videobridge: warning: {message}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                *, caption: str | None = None, stderr: bool = False) -> None:
    from rich.table import Table

    table = Table(title=title, caption=caption, show_lines=False, header_style="bold")
    for index, column in enumerate(columns):
        # the first column holds names people copy (room names, settings): never fold it
        table.add_column(column, overflow="fold", no_wrap=index == 0)
    for row in rows:
        table.add_row(*(_cell(cell) for cell in row))
    console(stderr=stderr).print(table)


def _cell(value: Any) -> Any:
    from rich.text import Text

    if value is None:
        return ""
    if isinstance(value, Text):
        return value
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, separators=(",", ":"))
    if isinstance(value, str):
        return Text(value)  # never interpret [brackets] in data as rich markup
    return str(value)


def status_text(status: str) -> Any:
    """ok / warn / fail, coloured on a terminal."""
    from rich.text import Text

    return Text(status, style={"ok": "green", "warn": "yellow", "fail": "bold red"}.get(status, ""))


def print_fields(title: str | None, fields: Iterable[tuple[str, Any]], *, stderr: bool = False) -> None:
    """A two-column key/value table."""
    print_table(title, ("field", "value"), ((k, v) for k, v in fields), stderr=stderr)


def parse_duration(text: str) -> int:
    """'90', '90s', '30m', '2h', '1d' -> seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (use e.g. 3600, 90s, 30m, 2h)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def iso(ts: float | int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def relative(ts: float | int | None, *, now: float | None = None) -> str:
    """'in 42m', '3h ago', '-' for None."""
    if ts is None:
        return "-"
    delta = ts - (time.time() if now is None else now)
    span = _span(abs(delta))
    return f"in {span}" if delta >= 0 else f"{span} ago"


def when(ts: float | int | None, *, now: float | None = None) -> str:
    """A time for a table cell: UTC to the minute plus how far away it is."""
    if ts is None:
        return "-"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%MZ")
    return f"{stamp} ({relative(ts, now=now)})"


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)}m"
    if seconds < 48 * 3600:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60:02d}m"
    return f"{round(seconds / 86400)}d"
