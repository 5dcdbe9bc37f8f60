"""structlog set-up: one JSON line per event on stdout (or a console view on a terminal).

journald stores each stdout line as one entry, so JSON stays on one line (tracebacks become a
structured `exception` list, without local variables). When stdout *is* the journal
($JOURNAL_STREAM matches it), each line gets a `<N>` syslog prefix that journald turns into the
entry's priority and strips. stdlib loggers (aiohttp's) go through the same processors at
WARNING and above. A redaction processor runs last before rendering: it is a safety net, not a
licence to log secrets.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "console", "auto"]
REDACTED = "[REDACTED]"

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# syslog priorities for the journald `<N>` prefix.
_SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}

# Keys are compared lower-cased with '-' turned into '_' (so header names match too).
_SENSITIVE_KEYS = frozenset(
    {
        "token", "jwt", "x_auth_jwt", "authorization", "proxy_authorization", "cookie",
        "set_cookie", "api_key", "apikey", "secret", "client_secret", "hmac", "identity",
        "password", "passwd", "key", "private_key", "pem", "credential", "credentials",
    }
)  # fmt: skip
_SENSITIVE_SUFFIXES = (
    "_token", "_jwt", "_secret", "_hmac", "_api_key", "_apikey", "_password", "_private_key",
    "_identity", "_pem", "_credential", "_credentials",
)  # fmt: skip
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# A whole PEM block, or a truncated one up to the end of the string; `\n` may be literal.
_PEM_RE = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
_AUTH_RE = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Every pattern above needs one of these: "eyJ", "-----BEGIN", or whitespace before a credential.
_SUSPECT = re.compile(r"eyJ|-----BEGIN|\s").search
_MAX_DEPTH = 8
_HEAD = ("timestamp", "level", "event")
_HANDLER_MARK = "_videobridge_handler"
# Keys the processor chain itself sets or acts on: an access line carrying one takes the chain.
_CHAIN_KEYS = frozenset({"timestamp", "level", "event", "logger", "exc_info", "stack_info"})


def is_sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    return _sensitive_name(key)


@functools.lru_cache(maxsize=4096)
def _sensitive_name(key: str) -> bool:
    # cached: every log line asks this for each of its (few, recurring) keys
    norm = key.lower().replace("-", "_")
    return norm in _SENSITIVE_KEYS or norm.endswith(_SENSITIVE_SUFFIXES)


def scrub(text: str) -> str:
    """Mask JWTs, PEM blocks and `Bearer …`/`Basic …` credentials inside free text."""
    if not _SUSPECT(text):  # one C-level scan clears almost every string
        return text
    if "eyJ" in text:
        text = _JWT_RE.sub("[JWT]", text)
    if "-----BEGIN" in text:
        text = _PEM_RE.sub("[PEM]", text)
    return _AUTH_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


def redact_value(value: Any, _depth: int = 0) -> Any:
    """A copy of `value` with secrets masked: sensitive keys at any depth, and scrubbed strings."""
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if _depth >= _MAX_DEPTH:
        return "[TOO DEEP]"
    if isinstance(value, Mapping):
        return {
            k: _redact_item(k, v, _depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, _depth + 1) for v in value]
    if isinstance(value, bytes | bytearray):
        return scrub(bytes(value).decode("utf-8", "replace"))
    # Anything else would be repr()'d by the renderer; render it here so it gets scrubbed too.
    return scrub(str(value))


def _redact_item(key: object, value: Any, depth: int) -> Any:
    # None/bools say "absent"/"present" and are kept; every other value of a sensitive key goes.
    if is_sensitive_key(key) and not (value is None or isinstance(value, bool)):
        return REDACTED
    return redact_value(value, depth)


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor form of `redact_value`, with a fast lane for flat scalar fields.

    It also puts timestamp, level and event first (easier to read in `journalctl -o cat`):
    one pass over the fields instead of two, on every log line.
    """
    out: EventDict = {k: _clean(k, event_dict[k]) for k in _HEAD if k in event_dict}
    for key, value in event_dict.items():
        if key not in out:
            out[key] = _clean(key, value)
    return out


def _clean(key: str, value: Any) -> Any:
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is str or kind is int or kind is float:
        if is_sensitive_key(key):
            return REDACTED
        return scrub(value) if kind is str else value
    return _redact_item(key, value, 0)


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name given to `structlog.get_logger(name)`."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._file, str(args[0]) if args else None)


def _add_logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


class _JsonDumps:
    """`json.dumps(obj, **kw)`, with the encoder for JSONRenderer's keywords built once.

    JSONRenderer passes the same `default=` on every line, and json.dumps builds a new
    JSONEncoder whenever it gets a keyword; `JSONEncoder(**kw).encode` is what it then calls.
    """

    def __init__(self) -> None:
        self._kw: dict[str, Any] = {}
        self._encode: Callable[[Any], str] = json.JSONEncoder().encode

    def __call__(self, obj: Any, **kw: Any) -> str:
        if kw != self._kw:
            self._encode, self._kw = json.JSONEncoder(**kw).encode, kw
        return self._encode(obj)


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
    very chain, unchanged (capture_logs edits the list in place), with no bound context.
    """

    __slots__ = ("_chain", "_error", "_info", "_json", "_render", "_snapshot", "_stamp", "_wrapper")

    def __init__(self, chain: list[Processor], wrapper: Any, level: int, stamp: Processor, *,
                 json_prefix: dict[str, str] | None) -> None:
        self._chain = chain
        self._snapshot = list(chain)
        self._render: Callable[..., Any] = chain[-1]
        self._stamp: Callable[..., Any] = stamp
        self._wrapper: Any = wrapper
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
        if type(logger) is not _NamedWriteLogger:
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


_access_lines: _AccessLines | None = None


class _JournalPrefix:
    """Wrap a renderer to put a syslog `<N>` priority prefix on each line for journald."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        priority = _SYSLOG_PRIORITY.get(str(event_dict.get("level", "info")), 6)
        line = self._renderer(logger, method, event_dict)
        return f"<{priority}>{line.decode() if isinstance(line, bytes) else line}"


def stream_is_journal(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """True when `stream` is the journald stream systemd gave us (sd_journal_stream_fd)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (AttributeError, OSError, ValueError):  # StringIO, closed stream, malformed value
        return False


def parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r} (use one of debug, info, warning, error)") from None


def configure_logging(
    *,
    fmt: LogFormat = "auto",
    level: str | int = "info",
    stream: TextIO | None = None,
    journal: bool | None = None,
) -> None:
    """(Re)configure structlog and stdlib logging; safe to call any number of times.

    `fmt="auto"` picks the console renderer on a terminal and JSON otherwise. `journal=None`
    detects a journald stdout via $JOURNAL_STREAM and then adds the `<N>` priority prefix.
    """
    out = sys.stdout if stream is None else stream
    level_no = parse_level(level)
    if fmt == "auto":
        fmt = "console" if _isatty(out) else "json"
    if fmt not in ("json", "console"):
        raise ValueError(f"unknown log format {fmt!r} (use json or console)")

    renderer: Processor
    if fmt == "json":
        # show_locals=False: locals of a failing frame may hold keys and tokens.
        exc_processor: Processor = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
        renderer = structlog.processors.JSONRenderer(serializer=_JsonDumps())
    else:
        # Pre-render the traceback as text so the redaction pass sees it too.
        exc_processor = structlog.processors.format_exc_info
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))
    if journal if journal is not None else stream_is_journal(out):
        renderer = _JournalPrefix(renderer)

    stamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.processors.add_log_level,
        _add_logger_name,
        stamper,
        structlog.processors.StackInfoRenderer(),
        exc_processor,
        redact,
    ]
    chain = [*shared, renderer]
    wrapper = structlog.make_filtering_bound_logger(level_no)
    structlog.configure(
        processors=chain,
        wrapper_class=wrapper,
        logger_factory=_NamedWriteLoggerFactory(out),
        context_class=dict,
        # Not cached: tests and `serve` reconfigure, and old proxies must follow the new set-up.
        cache_logger_on_first_use=False,
    )
    global _access_lines
    json_prefix = None
    if fmt == "json":
        json_prefix = {"info": "", "error": ""}
        if isinstance(renderer, _JournalPrefix):
            json_prefix = {name: f"<{_SYSLOG_PRIORITY[name]}>" for name in json_prefix}
    _access_lines = _AccessLines(chain, wrapper, level_no, stamper, json_prefix=json_prefix)
    _configure_stdlib(shared, renderer, out, max(level_no, logging.WARNING))


def _quiet_bad_http(record: logging.LogRecord) -> bool:
    """aiohttp logs every malformed request (a client's mistake) at ERROR with a traceback.

    Anyone can send those, so they would flood the journal: keep one short warning line.
    (Edited in place: returning a new record from a filter needs Python 3.12.)
    """
    exc = record.exc_info[1] if record.exc_info else None
    if record.name.startswith("aiohttp") and exc is not None and _is_client_http_error(exc):
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = f"bad HTTP request: {type(exc).__name__}", None
        record.exc_info = record.exc_text = None
    return True


def _is_client_http_error(exc: BaseException) -> bool:
    from aiohttp.http_exceptions import HttpProcessingError

    return isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500


def _configure_stdlib(shared: list[Processor], renderer: Processor, out: TextIO, level: int) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.setLevel(level)
    handler.addFilter(_quiet_bad_http)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    _remove_our_handlers(root)
    root.addHandler(handler)
    root.setLevel(level)
    # We write one canonical access line per request ourselves (see access_line); aiohttp's
    # own access logger would double it. The server should also pass access_log=None.
    logging.getLogger("aiohttp.access").setLevel(logging.CRITICAL + 1)


def _remove_our_handlers(root: logging.Logger) -> None:
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()


def reset_logging() -> None:
    """Undo configure_logging (for tests): structlog defaults, our stdlib handler removed."""
    global _access_lines
    _access_lines = None
    structlog.reset_defaults()
    _remove_our_handlers(logging.getLogger())
    logging.getLogger("aiohttp.access").setLevel(logging.NOTSET)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger; `name` becomes the `logger` field (as stdlib records have)."""
    return structlog.get_logger(name, **initial) if name else structlog.get_logger(**initial)


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
