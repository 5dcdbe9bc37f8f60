"""The file store (the default): one TinyDB file, one writer, an in-memory view for every read.

The call service owns call state; this module only makes its changes durable. Changes are
group-committed: concurrent `commit()` calls that arrive while a write is in flight share the
next write. A commit returns only after its data is on disk: one fsynced journal record of the
documents it changes, so its cost does not grow with the number of calls (`snapshot.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from tinydb import TinyDB

from videobridge.errors import StateError, StateLocked
from videobridge.models import Call, Notification
from videobridge.state.base import Change, HeldView
from videobridge.state.journal import Ops, journal_path
from videobridge.state.snapshot import COMPACT_MIN, JournalStorage

CALLS = "calls"
OUTBOX = "outbox"


def _load(db: TinyDB) -> tuple[dict[str, Call], dict[int, Notification], dict[str, int]]:
    calls: dict[str, Call] = {}
    call_ids: dict[str, int] = {}
    for doc in db.table(CALLS).all():
        call = Call.from_json(dict(doc))
        calls[call.room_name] = call
        call_ids[call.room_name] = doc.doc_id
    outbox = {n.seq: n for n in (Notification.from_json(dict(d)) for d in db.table(OUTBOX).all())}
    return calls, dict(sorted(outbox.items())), call_ids


def read_state(path: Path) -> tuple[dict[str, Call], dict[int, Notification]]:
    """Read the state file and its journal without taking the lock (safe: snapshots replace the
    file atomically, journal records are checksummed, and a race with a compaction is retried)."""
    if not path.exists() and not journal_path(path).exists():
        return {}, {}
    db = TinyDB(path, storage=JournalStorage, read_only=True)
    try:
        calls, outbox, _ = _load(db)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"state file {path}: unexpected content ({exc.__class__.__name__})") from exc
    return calls, outbox


class FileStore(HeldView):
    """The `Store` on a TinyDB file: the in-memory view is the truth (one process holds the file)."""

    kind = "state"

    def __init__(self, path: Path, *, compact_min: int = COMPACT_MIN) -> None:
        self.path = path
        self._compact_min = compact_min
        self._lock_file: IO[str] | None = None
        self._db: TinyDB | None = None
        self._storage: JournalStorage | None = None
        self.calls: dict[str, Call] = {}
        self.outbox: dict[int, Notification] = {}
        self._call_ids: dict[str, int] = {}
        self._next_call_id = 1
        self._next_seq = 1
        self._pending: list[tuple[Change, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # durable writes done (for tests and benchmarks)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the life of the store (the flock)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StateLocked(f"state file {self.path} is in use by another videobridge process") from None
        self._lock_file = handle
        # A kill during a write can leave its temp file; we hold the lock, so none is in use.
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        try:
            self._db = TinyDB(self.path, storage=JournalStorage, compact_min=self._compact_min)
            self._storage = self._db.storage  # type: ignore[assignment]
            self.calls, self.outbox, self._call_ids = _load(self._db)
        except (KeyError, TypeError, ValueError) as exc:
            self.close()
            raise StateError(f"state file {self.path}: unexpected content ({exc.__class__.__name__})") from exc
        except StateError:
            self.close()
            raise
        self._next_call_id = max(self._call_ids.values(), default=0) + 1
        self._next_seq = max(self.outbox, default=0) + 1

    async def aopen(self, *, wait: bool = False) -> None:
        self.open()  # a second process on the same file refuses at once: there is no standby on one disk

    def close(self) -> None:
        if self._db is not None:
            self._db.close()  # folds the journal into the snapshot: after a clean stop the file says it all
            self._db = None
            self._storage = None
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    async def aclose(self) -> None:
        """Wait for in-flight writes, then release the file."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)
        self.close()

    # -- writes ------------------------------------------------------------------------------
    async def commit(self, change: Change) -> None:
        if not change:
            return
        if self._db is None:
            raise StateError("state store is not open")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((change, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="state-writer")
        await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            changes = [change for change, _ in batch]
            try:
                assigned, dropped, next_id = await asyncio.to_thread(self._write, changes)
            except Exception as exc:
                error = exc if isinstance(exc, StateError) else StateError(f"state write failed: {exc}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for room in dropped:
                self._call_ids.pop(room, None)
            self._call_ids.update(assigned)
            self._next_call_id = next_id
            self.writes += 1
            for change in changes:
                self._apply_view(change)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _write(self, changes: Iterable[Change]) -> tuple[dict[str, int], list[str], int]:
        """Runs in a worker thread; writes only the storage (the id map it reads changes only in
        `_drain`, after this returns)."""
        assert self._db is not None and self._storage is not None
        put: dict[str, Call] = {}
        drop: set[str] = set()
        add: dict[int, Notification] = {}
        settle: set[int] = set()
        for change in changes:
            for call in change.put_calls:
                put[call.room_name] = call
                drop.discard(call.room_name)
            for room in change.drop_calls:
                put.pop(room, None)
                drop.add(room)
            for note in change.add_notifications:
                add[note.seq] = note
            for seq in change.settle_notifications:
                if add.pop(seq, None) is None:
                    settle.add(seq)
        # Only what changed is touched (no copy of the id map): the cost stays O(batch).
        next_id = self._next_call_id
        assigned: dict[str, int] = {}
        calls: dict[str, object] = {}
        for room in drop:
            if room in self._call_ids:
                calls[str(self._call_ids[room])] = None
        for room, call in put.items():
            doc_id = self._call_ids.get(room)
            if doc_id is None:  # an update keeps its document id
                doc_id = assigned[room] = next_id
                next_id += 1
            calls[str(doc_id)] = call.to_json()
        outbox: dict[str, object] = {str(seq): None for seq in settle}
        outbox.update({str(seq): note.to_json() for seq, note in add.items()})
        ops: Ops = {CALLS: calls, OUTBOX: outbox}
        self._storage.apply(ops)
        return assigned, sorted(drop), next_id
