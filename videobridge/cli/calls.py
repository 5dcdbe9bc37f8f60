"""`videobridge calls list|end`: the calls the bridge tracks, safe to use while `serve` runs.

`list` reads the state file without its lock (the daemon replaces the file atomically). `end`
goes through the daemon's admin API when VIDEOBRIDGE_ADMIN_TOKEN is set and a daemon answers;
with no daemon it takes the state file's lock and ends the call itself, queueing the OpenChat
notifications in the file's outbox so the next `serve` delivers them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from videobridge.cli.common import EnvFile, State, load
from videobridge.cli.errors import USAGE, OperatorError, handle_errors, run
from videobridge.cli.output import Json, note, print_json, print_table, relative, warn, when

if TYPE_CHECKING:
    from videobridge.config import Settings

app = typer.Typer(name="calls", help="See and end the calls the bridge tracks (works while `serve` runs).",
                  no_args_is_help=True)

DAEMON_TIMEOUT = 30.0  # the daemon deletes the Daily room before answering


def _complete_rooms(ctx: typer.Context, incomplete: str) -> list[str]:
    try:
        from videobridge.state import read_calls

        settings = load(ctx.params.get("env_file"), state=ctx.params.get("state"))
        calls, _ = read_calls(store_url=settings.store_url, state_path=settings.state_path)
    except Exception:
        return []
    return sorted(room for room in calls if room.startswith(incomplete))


@app.command("list", epilog="Examples:  videobridge calls list  |  videobridge calls list --json | jq length")
@handle_errors
def list_calls(env_file: EnvFile = None, state: State = None, json: Json = False) -> None:
    """The tracked calls, read from the state file (no lock needed)."""
    from videobridge.state import read_calls

    settings = load(env_file, state=state)
    if not settings.store_url and not settings.state_path.exists():
        note(f"no state file at {settings.state_path}: no calls tracked")
    calls, outbox = read_calls(store_url=settings.store_url, state_path=settings.state_path)
    if json:
        from videobridge.views import public_call

        print_json([public_call(call) for call in calls.values()])  # the admin API's view, not the file format
        return
    now = time.time()
    rows = [(c.room_name, c.chat.kind.value, c.call_type.value + (" (diamond)" if c.is_diamond else ""),
             c.state.value, c.started_by, str(c.message_id), relative(c.created_at, now=now),
             when(c.room_exp, now=now)) for c in sorted(calls.values(), key=lambda c: c.created_at)]
    print_table(f"tracked calls ({len(calls)})",
                ("room", "chat", "type", "state", "started by", "message id", "started", "expires"), rows,
                caption=f"{len(outbox)} notification(s) waiting for OpenChat" if outbox else None)


@app.command("end", epilog="Examples:\n\n  videobridge calls end GAAAAAAHwqV0BAQ\n\n"
             "  VIDEOBRIDGE_ADMIN_TOKEN=... videobridge calls end GAAAAAAHwqV0BAQ --url http://127.0.0.1:5050")
@handle_errors
def end(
    room: Annotated[str, typer.Argument(help="Room of the tracked call.", autocompletion=_complete_rooms,
                                        show_default=False)],
    url: Annotated[str | None, typer.Option("--url", help="The daemon's base URL (default http://HOST:PORT).",
                                            show_default=False)] = None,
    env_file: EnvFile = None,
    state: State = None,
    json: Json = False,
) -> None:
    """End a tracked call: tell OpenChat, delete the Daily room, drop the call."""
    settings = load(env_file, state=state)
    base = (url or daemon_url(settings)).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise OperatorError(f"--url {base!r} is not an http(s) URL", code=USAGE)
    result = run(_end(settings, room, base))
    if json:
        print_json(result)
        return
    if result["via"] == "daemon":
        note(f"ended the call in {room} through the daemon at {base}")
        return
    note(f"ended the call in {room} offline (state file {settings.state_path}); "
         f"{result['notificationsQueued']} notification(s) queued for OpenChat, sent by the next `videobridge serve`")
    if not result["roomDeleted"]:
        warn("the Daily room could not be deleted; the call stays 'ending' and the next `serve` retries")


def daemon_url(settings: Settings) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


async def _end(settings: Settings, room: str, base: str) -> dict[str, Any]:
    if settings.admin_token:
        answer = await _end_via_daemon(base, settings.admin_token, room)
        if answer is not None:
            return {"ended": True, "roomName": room, "via": "daemon", "daemon": base}
    return await _end_offline(settings, room, daemon=base if settings.admin_token else None)


async def _end_via_daemon(base: str, token: str, room: str) -> dict[str, Any] | None:
    """The daemon's answer, or None when nothing listens at `base`."""
    from urllib.parse import quote

    import aiohttp

    timeout = aiohttp.ClientTimeout(total=DAEMON_TIMEOUT, connect=5.0)
    endpoint = f"{base}/room/meetings/{quote(room, safe='')}/end"
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, \
                http.post(endpoint, headers={"Authorization": f"Bearer {token}"}) as resp:
            status = resp.status
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
    except aiohttp.ClientConnectorError:
        return None
    except TimeoutError:
        raise OperatorError(f"the daemon at {base} did not answer within {DAEMON_TIMEOUT:.0f}s") from None
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    if 200 <= status < 300 and isinstance(body, dict):
        return body
    if status == 401:
        raise OperatorError(f"the daemon at {base} refused VIDEOBRIDGE_ADMIN_TOKEN (HTTP 401): "
                            "it is configured with another token")
    if status == 404 and "no tracked call" in message:
        raise OperatorError(f"no tracked call in room {room}")
    if status == 404:
        raise OperatorError(f"the daemon at {base} has no admin API (its VIDEOBRIDGE_ADMIN_TOKEN is not set)")
    raise OperatorError(f"the daemon at {base} answered HTTP {status}" + (f": {message}" if message else ""))


async def _end_offline(settings: Settings, room: str, *, daemon: str | None) -> dict[str, Any]:
    from contextlib import AsyncExitStack

    from videobridge.errors import StateLocked
    from videobridge.notifier import LoggingNotifier
    from videobridge.wiring import open_bridge

    if not settings.state_path.exists():
        raise OperatorError(f"no tracked call in room {room} (no state file at {settings.state_path})")
    async with AsyncExitStack() as stack:
        try:
            # No workers: the outbox only plans here, the next `serve` delivers (hence no real notifier).
            bridge = await stack.enter_async_context(
                open_bridge(settings, notifier=LoggingNotifier(), workers=False, daily_deadline=20.0))
        except StateLocked:
            if daemon:
                raise OperatorError(f"a running `videobridge serve` holds {settings.state_path} but its admin "
                                    f"API did not answer at {daemon} (wrong --url, HOST or PORT?)") from None
            raise OperatorError(f"a running `videobridge serve` holds {settings.state_path}: set "
                                "VIDEOBRIDGE_ADMIN_TOKEN (the daemon's) to end calls through its admin API") from None
        store = bridge.store
        call = store.calls.get(room)
        if call is None:
            raise OperatorError(f"no tracked call in room {room}")
        before = set(store.outbox)
        await bridge.calls.end_call(room, "admin")
        queued = [n for seq, n in store.outbox.items() if seq not in before and n.message_id == call.message_id]
        return {"ended": True, "roomName": room, "via": "state file", "messageId": str(call.message_id),
                "roomDeleted": room not in store.calls, "notificationsQueued": len(queued)}


# `calls watch` lives in its own module (the live view); registered last so `--help` lists it after `end`.
from videobridge.cli.watch import register as _register_watch  # noqa: E402

_register_watch(app)
