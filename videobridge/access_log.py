"""The access line: one per HTTP request, so it skips the generic processor chain.

It is the one line written on every request; writing it as the chain would (same fields,
same redaction, same text) without the chain's generic work, and many to a write under load,
keeps logging off the hot path.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from structlog.typing import Processor

from videobridge.redaction import REDACTED, _sensitive_name, scrub


class _AccessLines:
    """The JSON access line as configure_logging's chain writes it, from a template (set only
    with the JSON renderer).

    structlog would copy the context, run add_log_level, _add_logger_name, the TimeStamper,
    StackInfoRenderer and the exception renderer (both no-ops without `stack_info`/`exc_info`),
    then `redact` (which puts timestamp, level, event first and cleans every value), then
    JSONRenderer. An access line's fields recur (method, route, status, claim type, chat kind,
    outcome), so the line around its timestamp and duration is redacted and encoded once per
    combination and kept. Only for a logger bound to this very chain, unchanged (capture_logs
    edits the list in place), with no bound context, writing through `logger_type`
    (configure_logging's named WriteLogger, which has `.name`); anything else takes the chain.
    """

    __slots__ = ("_chain", "_error", "_info", "_json", "_logger_type", "_second", "_second_text",
                 "_snapshot", "_templates", "_wrapper")

    def __init__(self, chain: list[Processor], wrapper: Any, level: int, *,
                 json_prefix: dict[str, str], logger_type: type) -> None:
        self._chain = chain
        self._snapshot = list(chain)
        self._wrapper: Any = wrapper
        self._logger_type: Any = logger_type
        self._info = level <= logging.INFO
        self._error = level <= logging.ERROR
        # JSONRenderer's line prefix by level ("" or journald's "<N>")
        self._json = json_prefix
        # (method, path, status, claim_type, chat_kind, outcome, logger name) -> the line around
        # its timestamp and duration
        self._templates: dict[tuple[Any, ...], tuple[str, str, str]] = {}
        self._second = -1  # the whole second `_second_text` spells
        self._second_text = ""

    def _usable(self, log: Any) -> Any:
        """The WriteLogger under `log` if it is bound to this very chain, unchanged; else None."""
        if type(log) is not self._wrapper or log._processors is not self._chain or log._context \
                or self._chain != self._snapshot:
            return None
        logger = log._logger
        return logger if type(logger) is self._logger_type else None

    def http(self, log: Any, method: str, path: str, status: int, duration_ms: float,
             claim_type: str | None, chat_kind: str | None, outcome: str | None) -> bool:
        """Write the line from its template and return True (per request only the timestamp and
        duration are new); False, nothing written, where the chain must write it: not such a
        logger, or a value JSONRenderer must see (not a plain str/int, a float duration).
        """
        logger = self._usable(log)
        if logger is None or type(duration_ms) is not float or type(status) is not int:
            return False
        error = status >= 500
        if not (self._error if error else self._info):
            return True
        key = (method, path, status, claim_type, chat_kind, outcome, logger.name)
        template = self._templates.get(key)
        if template is None:
            template = self._template(error, key)
            if template is None:
                return False
            if len(self._templates) < _TEMPLATES_MAX:
                self._templates[key] = template
        duration = round(duration_ms, 3)
        if duration != duration or duration in (_INF, -_INF):
            return False
        head, middle, tail = template
        line = f"{head}{self._now()}{middle}{float.__repr__(duration)}{tail}"
        if error:
            logger.error(line)
        else:
            held.add(logger, line)
        return True

    def _template(self, error: bool, key: tuple[Any, ...]) -> tuple[str, str, str] | None:
        method, path, status, claim_type, chat_kind, outcome, name = key
        level = "error" if error else "info"
        before = _json_fields({"method": method, "path": _strip_query(path), "status": status})
        after = _json_fields({k: v for k, v in (("claim_type", claim_type), ("chat_kind", chat_kind),
                                                ("outcome", outcome)) if v is not None})
        if before is None or after is None:
            return None
        if name:
            after += f', "logger": {_json_str(scrub(name))}'
        return (f'{self._json[level]}{{"timestamp": "',
                f'", "level": "{level}", "event": "http_request"{before}, "duration_ms": ', f"{after}}}")

    def _now(self) -> str:
        """What structlog's TimeStamper(fmt="iso", utc=True) writes, the date part made once a second."""
        now = time.time()
        second = int(now)
        micro = round((now - second) * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._second:
            self._second, self._second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{micro:06d}Z" if micro else f"{self._second_text}Z"


class _Held:
    """Info access lines held until the event loop's current round of callbacks is done.

    Under load one round answers many requests, so their lines go out in one write (each write
    to a file or journald's socket is a system call, the largest part of a line's cost). Every
    other line through configure_logging's loggers writes these first (_NamedWriteLogger.msg), so
    the order of lines holds. Outside a running loop a line is written at once.
    """

    __slots__ = ("_lines", "_lock", "_logger", "_loop")

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._logger: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # lines come from the loop; a flush may come from any thread's line

    def add(self, logger: Any, line: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.info(line)
            return
        if self._lines and (loop is not self._loop or logger._file is not self._logger._file):
            self.flush()  # held for another loop (closed before its flush) or stream: out first
        with self._lock:
            if not self._lines:
                loop.call_soon(self.flush)
                self._loop, self._logger = loop, logger
            self._lines.append(line)

    def flush(self) -> None:
        """Write the held lines (one write); every other line written calls this first."""
        if self._lines:
            with self._lock:
                taken = self._take()
            _write(*taken)

    def _take(self) -> tuple[list[str], Any]:
        taken = self._lines, self._logger
        self._lines = []
        return taken


def _write(lines: list[str], logger: Any) -> None:
    if lines:
        try:
            logger.info("\n".join(lines))  # msg writes the last newline
        except (ValueError, OSError):  # its stream is closed (a test's, or stdout at exit): nowhere to write
            pass


held = _Held()
atexit.register(held.flush)  # a loop closed with a round's lines still held (asyncio.run drops its callbacks)


_json_str: Callable[[str], str] = json.encoder.encode_basestring_ascii
_JSON_KEYS = {key: _json_str(key) for key in (
    "method", "path", "status", "duration_ms", "claim_type", "chat_kind", "outcome")}
_JSON_REDACTED = _json_str(REDACTED)
_JSON_CONSTANTS = {None: "null", True: "true", False: "false"}
_TEMPLATES_MAX = 256  # distinct (method, path, status, ...) lines; unmatched paths can be anything


def _json_fields(fields: dict[str, Any]) -> str | None:
    """`, "key": value` for each field as JSONRenderer writes it redacted, or None for a value it must see.

    JSONEncoder's defaults: ", " and ": " separators, ASCII-escaped strings, ints by their
    repr; `_clean`'s rules: None and bools kept, other scalars of a sensitive key masked,
    strings scrubbed.
    """
    parts = []
    for key, value in fields.items():
        kind = type(value)
        if kind is str:
            text = _JSON_REDACTED if _sensitive_name(key) else _json_str(scrub(value))
        elif value is None or kind is bool:
            text = _JSON_CONSTANTS[value]
        elif kind is int:
            text = _JSON_REDACTED if _sensitive_name(key) else int.__repr__(value)
        else:
            return None
        parts.append(f", {_JSON_KEYS.get(key) or _json_str(key)}: {text}")
    return "".join(parts)


def _strip_query(path: str) -> str:
    return path.split("?", 1)[0].split("#", 1)[0]


_INF = float("inf")


# Set by logs.configure_logging (for the chain it configures), cleared by reset_logging.
_access_lines: _AccessLines | None = None


def access_line(
    log: Any,
    *,
    method: str,
    path: str,
    status: int,
    duration_ms: float,
    claim_type: str | None = None,
    chat_kind: str | None = None,
    **extra: Any,
) -> None:
    """Emit the one canonical line for an HTTP request (query strings never logged).

    Only route-level facts belong here: the query of the join endpoint carries user names and
    the JWT travels in a header, so neither is passed in. 5xx lines are errors, the rest info.
    """
    fast = _access_lines
    if fast is not None and (not extra or extra.keys() == {"outcome"}) and fast.http(
            log, method, path, status, duration_ms, claim_type, chat_kind, extra.get("outcome")):
        return
    fields: dict[str, Any] = {
        "method": method,
        "path": _strip_query(path),
        "status": status,
        "duration_ms": round(duration_ms, 3),
    }
    if claim_type is not None:
        fields["claim_type"] = claim_type
    if chat_kind is not None:
        fields["chat_kind"] = chat_kind
    fields.update((k, v) for k, v in extra.items() if v is not None)
    emit = log.error if status >= 500 else log.info
    emit("http_request", **fields)
