"""`videobridge state migrate`: move calls and the outbox between the state file and Redis.

Both sides are opened for sole use (the file's lock; on Redis, the leader lease), so the command
refuses while a `serve` runs on either; the destination must be empty, and the source is left as
it was (delete it yourself once the bridge runs on the new store).
"""

from __future__ import annotations

from typing import Annotated

import typer

from videobridge.cli.errors import OperatorError, handle_errors, run
from videobridge.cli.output import note

app = typer.Typer(name="state", help="Move the bridge's state between stores (stop `serve` first).",
                  no_args_is_help=True)

Where = Annotated[str, typer.Option(help="A state file path, or a redis:// / rediss:// URL.", show_default=False)]


def _describe(where: str) -> str:
    from videobridge.state.redisstore import redacted

    return redacted(where) if where.startswith(("redis://", "rediss://")) else where


async def migrate_state(source: str, target: str) -> tuple[int, int]:
    """Copy every call and queued notification; returns (calls, notifications)."""
    from pathlib import Path

    from videobridge.state import Change, Store, open_store

    def store_of(where: str) -> Store:
        redis = where.startswith(("redis://", "rediss://"))
        return open_store(store_url=where if redis else None, state_path=Path(where), sole=True)

    src, dst = store_of(source), store_of(target)
    await src.aopen()  # StateLocked while a daemon holds it
    try:
        await dst.aopen()
        try:
            if dst.calls or dst.outbox:
                raise OperatorError(f"{_describe(target)} already holds {len(dst.calls)} call(s) and "
                                    f"{len(dst.outbox)} notification(s): migrate only into an empty store")
            # one commit: the destination has all of it or none of it
            await dst.commit(Change(put_calls=list(src.calls.values()), add_notifications=list(src.outbox.values())))
            return len(src.calls), len(src.outbox)
        finally:
            await dst.aclose()
    finally:
        await src.aclose()


@app.command("migrate", epilog="Example:  videobridge state migrate --from /var/lib/videobridge/state.json "
                                "--to redis://127.0.0.1:6379/0")
@handle_errors
def migrate(from_: Annotated[str, typer.Option("--from", help="Where the state is now (path or Redis URL).",
                                               show_default=False)],
            to: Where) -> None:
    """Copy calls and queued notifications into an empty store; refuses while a daemon holds either."""
    if from_ == to:
        raise OperatorError("--from and --to are the same store")
    calls, notes = run(migrate_state(from_, to))
    note(f"moved {calls} call(s) and {notes} queued notification(s) from {_describe(from_)} to {_describe(to)}; "
         f"point VIDEOBRIDGE_STORE / VIDEOBRIDGE_STATE at the new store, then start serve")
