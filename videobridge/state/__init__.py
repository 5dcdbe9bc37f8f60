"""Where call state lives: the `Store` seam (`base.py`) and the file store on TinyDB (`filestore.py`,
with its journal, `journal.py`, and snapshots, `snapshot.py`), and the Redis store (`redisstore.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from videobridge.models import Call, Notification
from videobridge.state.base import Change, Store, summarize

if TYPE_CHECKING:
    from videobridge.config import Settings

__all__ = ["Change", "Store", "describe_store", "open_store", "read_calls", "summarize"]


def open_store(*, store_url: str | None, state_path: Path, sole: bool = False) -> Store:
    """The store `VIDEOBRIDGE_STORE` names: a `redis://`/`rediss://` URL, else the state file.
    `sole`: the caller must be the only user (`state migrate`): a shared store refuses while a
    bridge instance runs on it."""
    if store_url:
        from videobridge.state.redisstore import RedisStore  # redis-py only when asked for

        return RedisStore(store_url, sole=sole)
    from videobridge.state.filestore import FileStore

    return FileStore(state_path)


def read_calls(*, store_url: str | None, state_path: Path) -> tuple[dict[str, Call], dict[int, Notification]]:
    """What the store holds, read without taking it (the CLI's listings while a daemon runs)."""
    if store_url:
        from videobridge.state.redisstore import read_redis

        return read_redis(store_url)
    from videobridge.state.filestore import read_state

    return read_state(state_path)


def describe_store(settings: Settings) -> str:
    """The store in use, fit for a log line (a Redis URL without its password)."""
    if settings.store_url:
        from videobridge.state.redisstore import redacted

        return redacted(settings.store_url)
    return str(settings.state_path)
