"""Where call state lives: the `Store` seam (`base.py`) and the file store on TinyDB (`filestore.py`,
with its journal, `journal.py`, and snapshots, `snapshot.py`), and the Redis store (`redisstore.py`)."""

from __future__ import annotations

from pathlib import Path

from videobridge.state.base import Change, Store, summarize

__all__ = ["Change", "Store", "open_store", "summarize"]


def open_store(*, store_url: str | None, state_path: Path) -> Store:
    """The store `VIDEOBRIDGE_STORE` names: a `redis://`/`rediss://` URL, else the state file."""
    if store_url:
        from videobridge.state.redisstore import RedisStore  # redis-py only when asked for

        return RedisStore(store_url)
    from videobridge.state.filestore import FileStore

    return FileStore(state_path)
