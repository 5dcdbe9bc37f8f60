"""Operator mistakes and outages become one line on stderr and an exit status, never a traceback.

`@handle_errors` wraps each command and is the only place errors become exit statuses (typer's
test runner and `main()` both call the commands through it). Exit status 2 means "fix the
invocation or the configuration" (bad flag value, missing or malformed setting, bad chat spec);
1 means "the operation failed" (Daily refused or is unreachable, no such room, daemon trouble);
130 means interrupted.

Heavy modules (aiohttp, the Daily client) are imported only when a command runs.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from videobridge.cli.common import fail

if TYPE_CHECKING:
    from videobridge.config import Settings
    from videobridge.daily import DailyClient

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

USAGE = 2
FAILED = 1
INTERRUPTED = 130


class OperatorError(Exception):
    """Raised by command code: `message` is shown as is (nothing when empty: the command already
    reported), `code` becomes the exit status."""

    def __init__(self, message: str, *, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def explain(exc: BaseException) -> tuple[int, str] | None:
    """(exit status, one line) for errors an operator can act on; None for bugs."""
    from videobridge.chats import InvalidChat
    from videobridge.errors import ConfigError, VideoBridgeError

    if isinstance(exc, OperatorError):
        return exc.code, str(exc)
    if isinstance(exc, ConfigError):
        return USAGE, str(exc)
    if isinstance(exc, InvalidChat):
        return USAGE, f"bad chat: {exc}"
    # Imported here, on the error path only: the Daily errors come with the client (aiohttp), which
    # --help must not load. Checked before VideoBridgeError, in case DailyError is one.
    import aiohttp

    from videobridge.daily.errors import DailyError, DailyRejected, DailyUnavailable

    if isinstance(exc, DailyError):
        hint = ""
        if isinstance(exc, DailyRejected) and exc.status in (400, 401, 403) and \
                (exc.error or "").startswith(("authentication", "authorization", "forbidden")):
            hint = " (check DAILY_API_KEY)"
        elif isinstance(exc, DailyUnavailable) and exc.status is None:
            hint = " (check DAILY_API_URL and the network)"
        return FAILED, f"{exc}{hint}"
    if isinstance(exc, VideoBridgeError):
        return FAILED, str(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FAILED, f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ClientError):
        return FAILED, f"HTTP request failed: {type(exc).__name__}: {str(exc)[:200]}"
    if isinstance(exc, TimeoutError):
        return FAILED, "timed out waiting for an answer"
    if isinstance(exc, OSError):
        return FAILED, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return None


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a typer command: known errors -> `videobridge: <message>` and an exit status."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            sys.stderr.write("videobridge: interrupted\n")
            raise SystemExit(INTERRUPTED) from None
        except Exception as exc:
            verdict = explain(exc)
            if verdict is None:
                raise
            code, message = verdict
            if not message:
                raise SystemExit(code) from None
            fail(message, code=code)

    return wrapper


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's async part; the bridge's own log lines go to stderr, never into stdout."""
    import asyncio

    with quiet_logs():
        return asyncio.run(coro)


def daily_client(settings: Settings, *, deadline: float = 10.0) -> DailyClient:
    """A Daily client for one command: shorter deadlines than the daemon's, same rate limits."""
    from videobridge.daily import DailyClient

    if not settings.daily_api_key:
        raise OperatorError("DAILY_API_KEY is required but not set (environment, .env or credential)", code=USAGE)
    return DailyClient(api_key=settings.daily_api_key, base_url=settings.daily_api_url,
                       request_timeout=min(5.0, deadline), deadline=deadline)


class _LazyStderr:
    """Writes to whatever sys.stderr is at the time (log handlers must not keep a dead stream)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    @property
    def closed(self) -> bool:
        return False


@contextlib.contextmanager
def quiet_logs(level: str = "warning") -> Iterator[None]:
    """While a command drives bridge machinery: its structlog warnings go to stderr, one line each.

    The previous structlog configuration is restored afterwards (stdlib logging is not touched).
    """
    import structlog

    from videobridge.logs import parse_level, redact

    previous = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level, redact, structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(parse_level(level)),
        logger_factory=structlog.PrintLoggerFactory(_LazyStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**previous)


def confirm(question: str, *, yes: bool) -> None:
    """Ask on a terminal; without one, refuse unless --yes was given."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise OperatorError(f"{question} Refusing without --yes (no terminal to ask).", code=USAGE)
    import typer

    if not typer.confirm(question, default=False, err=True):
        raise OperatorError("aborted, nothing changed", code=FAILED)
