"""Where call state lives: the `Store` seam (`base.py`) and the file store on TinyDB (`filestore.py`,
with its journal, `journal.py`, and snapshots, `snapshot.py`)."""

from __future__ import annotations

from videobridge.state.base import Change, Store, summarize

__all__ = ["Change", "Store", "summarize"]
