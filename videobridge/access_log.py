"""The access line: one per HTTP request, so it skips the generic processor chain.

It is the one line written on every request; writing it as the chain would (same fields,
same redaction, same text) without the chain's generic work keeps logging off the hot path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from structlog.typing import EventDict, Processor

from videobridge.redaction import REDACTED, _clean, _sensitive_name, scrub

# Keys the processor chain itself sets or acts on: an access line carrying one takes the chain.
_CHAIN_KEYS = frozenset({"timestamp", "level", "event", "logger", "exc_info", "stack_info"})


class _AccessLines:
    """The access line rendered as configure_logging's chain renders it, minus the generic work.

    structlog would copy the context, run add_log_level, _add_logger_name, the TimeStamper,
    StackInfoRenderer and the exception renderer (both no-ops without `stack_info`/`exc_info`),
    then `redact` (which puts timestamp, level, event first and cleans every value), then the
    renderer. Here the fields are taken in that final order and cleaned as `_clean` cleans
    them, the configured TimeStamper stamps the line, and the logger writes it. With the JSON
    renderer (journal prefix or not) the line is written directly: JSONEncoder's text for the
    scalars an access line carries (any other value goes through `_clean` and the renderer);
    with the console renderer, the renderer gets the dict. Only for a logger bound to this
    very chain, unchanged (capture_logs edits the list in place), with no bound context, and
    writing through `logger_type` (configure_logging's named WriteLogger, which has `.name`).
    """

    __slots__ = ("_chain", "_error", "_info", "_json", "_logger_type", "_render", "_snapshot", "_stamp", "_wrapper")

    def __init__(self, chain: list[Processor], wrapper: Any, level: int, stamp: Processor, *,
                 json_prefix: dict[str, str] | None, logger_type: type) -> None:
        self._chain = chain
        self._snapshot = list(chain)
        self._render: Callable[..., Any] = chain[-1]
        self._stamp: Callable[..., Any] = stamp
        self._wrapper: Any = wrapper
        self._logger_type: Any = logger_type
        self._info = level <= logging.INFO
        self._error = level <= logging.ERROR
        # the renderer is our JSONRenderer: its line prefix by level ("" or journald's "<N>")
        self._json = json_prefix

    def emit(self, log: Any, error: bool, fields: dict[str, Any]) -> bool:
        """Write the line and return True; False if `log` is not such a logger (nothing written)."""
        if type(log) is not self._wrapper or log._processors is not self._chain or log._context \
                or self._chain != self._snapshot:
            return False
        logger = log._logger
        if type(logger) is not self._logger_type:
            return False
        if not (self._error if error else self._info):
            return True  # the filtering logger drops it too
        method = "error" if error else "info"
        line = None
        if self._json is not None:
            line = _json_access_line(self._json[method], method, fields, logger.name,
                                     self._stamp(logger, method, {"timestamp": None})["timestamp"])
        if line is None:
            out: EventDict = {"timestamp": None, "level": method, "event": "http_request"}
            for key, value in fields.items():
                out[key] = _clean(key, value)
            if logger.name:
                out["logger"] = _clean("logger", logger.name)
            self._stamp(logger, method, out)  # fills the first key in place
            line = self._render(logger, method, out)
        (logger.error if error else logger.info)(line)
        return True


_json_str: Callable[[str], str] = json.encoder.encode_basestring_ascii
_JSON_KEYS = {key: _json_str(key) for key in (
    "method", "path", "status", "duration_ms", "claim_type", "chat_kind", "outcome")}
_JSON_REDACTED = _json_str(REDACTED)
_JSON_CONSTANTS = {None: "null", True: "true", False: "false"}
# Scrubbed JSON text of values that recur on every line (method, route path, claim type, chat
# kind, outcome): scrub and encode are pure, so the first 512 short ones seen are kept.
_JSON_STRINGS: dict[str, str] = {}
_JSON_STRINGS_MAX = 512


def _json_access_line(prefix: str, level: str, fields: dict[str, Any], name: str | None,
                      stamp: Any) -> str | None:
    """What JSONRenderer writes for the redacted access line, or None for a value it must see.

    JSONEncoder's defaults: ", " and ": " separators, ASCII-escaped strings, int and float
    by their repr, NaN and infinities by name; `_clean`'s rules: None and bools kept, other
    scalars of a sensitive key masked, strings scrubbed.
    """
    if type(stamp) is not str:
        return None
    parts = [f'{prefix}{{"timestamp": {_json_str(stamp)}, "level": "{level}", "event": "http_request"']
    for key, value in fields.items():
        kind = type(value)
        if kind is str:
            if _sensitive_name(key):
                text = _JSON_REDACTED
            elif (text := _JSON_STRINGS.get(value)) is None:  # type: ignore[assignment]
                text = _json_str(scrub(value))
                if len(_JSON_STRINGS) < _JSON_STRINGS_MAX and len(value) <= 128:
                    _JSON_STRINGS[value] = text
        elif value is None or kind is bool:
            text = _JSON_CONSTANTS[value]
        elif kind is int:
            text = _JSON_REDACTED if _sensitive_name(key) else int.__repr__(value)
        elif kind is float:
            if _sensitive_name(key):
                text = _JSON_REDACTED
            elif value != value or value in (_INF, -_INF):
                text = "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"
            else:
                text = float.__repr__(value)
        else:
            return None
        parts.append(f", {_JSON_KEYS.get(key) or _json_str(key)}: {text}")
    if name:
        parts.append(f', "logger": {_json_str(scrub(name))}')
    parts.append("}")
    return "".join(parts)


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
    fields: dict[str, Any] = {
        "method": method,
        "path": path.split("?", 1)[0].split("#", 1)[0],
        "status": status,
        "duration_ms": round(duration_ms, 3),
    }
    if claim_type is not None:
        fields["claim_type"] = claim_type
    if chat_kind is not None:
        fields["chat_kind"] = chat_kind
    fields.update((k, v) for k, v in extra.items() if v is not None)
    error = status >= 500
    fast = _access_lines
    if fast is not None and _CHAIN_KEYS.isdisjoint(extra) and fast.emit(log, error, fields):
        return
    emit = log.error if error else log.info
    emit("http_request", **fields)
