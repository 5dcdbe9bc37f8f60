"""`videobridge calls watch`: a live terminal view of the running daemon, through its admin API.

Asks `GET /room/status` (Authorization: Bearer VIDEOBRIDGE_ADMIN_TOKEN) once a second and redraws
every second in the terminal's alternate screen. `q` or Ctrl-C leaves and puts the terminal back.
A daemon that is down, refuses the token or answers garbage is one red line at the top (over the
last good picture, if any) and the view keeps asking; `--once` prints one frame and exits 1 then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from videobridge.cli.common import EnvFile, load
from videobridge.cli.errors import USAGE, OperatorError, handle_errors, run
from videobridge.cli.output import Json, print_json

if TYPE_CHECKING:
    import aiohttp

FETCH_TIMEOUT = 3.0
REDRAW_SECONDS = 1.0
MAX_BODY = 8 * 1024 * 1024  # a status for 10,000 calls is ~2.5 MiB
QUIT_KEYS = (b"q", b"Q")


class WatchError(OperatorError):
    """The daemon could not be asked, or its answer is not a status: one line for the operator."""


def register(app: typer.Typer) -> None:
    app.command("watch", epilog="Examples:  videobridge calls watch  |  videobridge calls watch --once  |  "
                "videobridge calls watch --once --json | jq .outbox")(watch)


@handle_errors
def watch(
    url: Annotated[str | None, typer.Option("--url", help="The daemon's base URL (default http://HOST:PORT).",
                                            show_default=False)] = None,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit (for scripts); exit 1 when "
                                       "the daemon cannot be asked.")] = False,
    env_file: EnvFile = None,
    json: Json = False,
) -> None:
    """Live view of the running daemon: calls, outbox, poller, IC, webhook, recent events (q quits)."""
    from videobridge.cli.calls import daemon_url

    settings = load(env_file)
    base = (url or daemon_url(settings)).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise OperatorError(f"--url {base!r} is not an http(s) URL", code=USAGE)
    if not settings.admin_token:
        raise OperatorError("VIDEOBRIDGE_ADMIN_TOKEN is not set: `calls watch` reads the daemon's admin API; "
                            "set it to the daemon's token (environment, .env or credential)", code=USAGE)
    if once or json:
        status = run(_fetch_once(base, settings.admin_token))
        if json:
            print_json(status)
        else:
            _print_frame(status, base)
        return
    run(_live(base, settings.admin_token))


async def fetch_status(http: aiohttp.ClientSession, base: str, token: str) -> dict[str, Any]:
    """The daemon's status snapshot, checked; WatchError (one line) for anything else."""
    import aiohttp

    from videobridge.cli.watchview import BadStatus, parse_status

    try:
        async with http.get(f"{base}/room/status", headers={"Authorization": f"Bearer {token}"},
                            allow_redirects=False) as resp:
            status = resp.status
            body = await resp.content.read(MAX_BODY + 1)
    except aiohttp.ClientConnectorError as exc:
        raise WatchError(f"cannot reach the daemon at {base}: {_reason(exc.os_error)}") from None
    except TimeoutError:
        raise WatchError(f"the daemon at {base} did not answer within {FETCH_TIMEOUT:.0f}s") from None
    except aiohttp.ClientError as exc:
        raise WatchError(f"asking the daemon at {base} failed: {type(exc).__name__}: {str(exc)[:120]}") from None
    if status == 401:
        raise WatchError(f"the daemon at {base} refused VIDEOBRIDGE_ADMIN_TOKEN (HTTP 401): "
                         "it is configured with another token")
    if status == 404:
        raise WatchError(f"the daemon at {base} has no admin API (HTTP 404): its VIDEOBRIDGE_ADMIN_TOKEN is not "
                         "set, or it is not a videobridge with GET /room/status")
    if status != 200:
        raise WatchError(f"the daemon at {base} answered HTTP {status}" + _message(body))
    if len(body) > MAX_BODY:
        raise WatchError(f"the daemon at {base} answered more than {MAX_BODY // 2**20} MiB: not a status")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WatchError(f"the daemon at {base} answered something that is not JSON "
                         f"({_preview(body)}): is --url a videobridge?") from None
    try:
        return parse_status(data)
    except BadStatus as exc:
        raise WatchError(f"the daemon at {base} answered a status this client cannot read: {exc}") from None


def _reason(error: OSError | None) -> str:
    import errno
    import os

    if error is not None and error.errno == errno.ECONNREFUSED:
        return "connection refused (is `videobridge serve` running there?)"
    if error is not None and error.errno:
        return os.strerror(error.errno).lower()
    return str(error or "no connection")[:120]


def _message(body: bytes) -> str:
    with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError):
        message = json.loads(body).get("message")
        if isinstance(message, str) and message:
            return f": {message[:120]}"
    return ""


def _preview(body: bytes) -> str:
    text = body[:40].decode("utf-8", "replace").replace("\n", " ").strip()
    return repr(text) if text else "an empty body"


def _session() -> aiohttp.ClientSession:
    import aiohttp

    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT, connect=FETCH_TIMEOUT))


async def _fetch_once(base: str, token: str) -> dict[str, Any]:
    async with _session() as http:
        return await fetch_status(http, base, token)


def _print_frame(status: dict[str, Any], base: str) -> None:
    from videobridge.cli.output import console
    from videobridge.cli.watchview import frame

    out = console()
    out.print(frame(status, url=base, width=out.width, height=None, now=float(status["now"])))


class _Picture:
    """What the view shows: the last good status, when it came, and the last fetch's failure."""

    def __init__(self) -> None:
        self.status: dict[str, Any] | None = None
        self.fetched_at = 0.0  # time.monotonic() of the last good answer
        self.error: str | None = None
        self.changed = asyncio.Event()

    def now(self) -> float:
        """The daemon's clock, advanced since its answer (ages tick between fetches)."""
        if self.status is None:
            return time.time()
        return float(self.status["now"]) + (time.monotonic() - self.fetched_at)


async def _poll(picture: _Picture, base: str, token: str) -> None:
    async with _session() as http:
        while True:
            try:
                picture.status, picture.fetched_at = await fetch_status(http, base, token), time.monotonic()
                picture.error = None
            except WatchError as exc:
                picture.error = str(exc)
            except Exception as exc:
                picture.error = f"unexpected error asking {base}: {type(exc).__name__}: {str(exc)[:120]}"
            picture.changed.set()
            await asyncio.sleep(REDRAW_SECONDS)


async def _live(base: str, token: str) -> None:
    import signal

    from rich.console import Console
    from rich.live import Live

    from videobridge.cli.watchview import frame

    screen = Console(highlight=False)
    if not screen.is_terminal:
        raise OperatorError("`calls watch` draws on a terminal; use --once (or --once --json) in scripts",
                            code=USAGE)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    picture = _Picture()
    poller = asyncio.create_task(_poll(picture, base, token), name="watch-poll")

    def draw() -> Any:
        stale = time.monotonic() - picture.fetched_at if picture.status is not None else None
        return frame(picture.status, url=base, width=screen.width, height=screen.height, now=picture.now(),
                     error=picture.error, stale_for=stale)

    try:
        with _keys(loop, stop), Live(draw(), console=screen, screen=True, auto_refresh=False,
                                     redirect_stdout=False, redirect_stderr=False) as live:
            while not stop.is_set():
                live.update(draw(), refresh=True)
                picture.changed.clear()
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(picture.changed.wait())]
                await asyncio.wait(waits, timeout=REDRAW_SECONDS, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waits:
                    waiter.cancel()
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def _keys(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """Single key presses without Enter (cbreak mode) while the view runs; the terminal comes back as it was."""
    if not sys.stdin.isatty():
        yield
        return
    import os
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def pressed() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data or any(key in data for key in QUIT_KEYS):  # EOF on stdin also ends the view
            stop.set()

    tty.setcbreak(fd)
    loop.add_reader(fd, pressed)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
