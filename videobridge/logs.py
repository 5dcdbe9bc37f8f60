"""structlog set-up: one JSON line per event on stdout (or a console view on a terminal).

journald stores each stdout line as one entry, so JSON stays on one line (tracebacks become a
structured `exception` list, without local variables). When stdout *is* the journal
($JOURNAL_STREAM matches it), each line gets a `<N>` syslog prefix that journald turns into the
entry's priority and strips. stdlib loggers (aiohttp's) go through the same processors at
WARNING and above. A redaction processor (redaction.py) runs last before rendering: it is a
safety net, not a licence to log secrets. The access line has its own fast path (access_log.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from videobridge import access_log
from videobridge.access_log import access_line
from videobridge.redaction import REDACTED, is_sensitive_key, redact, redact_value, scrub

# The redaction and access-line names callers have always imported from here.
__all__ = [
    "REDACTED",
    "LogFormat",
    "access_line",
    "configure_logging",
    "get_logger",
    "is_sensitive_key",
    "parse_level",
    "redact",
    "redact_value",
    "reset_logging",
    "scrub",
    "stream_is_journal",
]

LogFormat = Literal["json", "console", "auto"]

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
_HANDLER_MARK = "_videobridge_handler"


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name given to `structlog.get_logger(name)`."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name

    def msg(self, message: str) -> None:
        access_log.held.flush()  # access lines held for this loop round go first: lines stay in order
        super().msg(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


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
    access_log.held.flush()  # to the stream they were written for
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
    # set where access_line reads it; the console renderer's lines take the chain
    access_log._access_lines = None
    if fmt == "json":
        json_prefix = {"info": "", "error": ""}
        if isinstance(renderer, _JournalPrefix):
            json_prefix = {name: f"<{_SYSLOG_PRIORITY[name]}>" for name in json_prefix}
        access_log._access_lines = access_log._AccessLines(
            chain, wrapper, level_no, json_prefix=json_prefix, logger_type=_NamedWriteLogger)
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
    handler = _StreamHandler(out)
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


class _StreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    def emit(self, record: logging.LogRecord) -> None:
        access_log.held.flush()  # as _NamedWriteLogger.msg: held access lines go first
        super().emit(record)


def _remove_our_handlers(root: logging.Logger) -> None:
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()


def reset_logging() -> None:
    """Undo configure_logging (for tests): structlog defaults, our stdlib handler removed."""
    access_log.held.flush()
    access_log._access_lines = None
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


