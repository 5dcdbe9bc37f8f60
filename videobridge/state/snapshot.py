"""A TinyDB storage whose durable writes cost what changed: a snapshot plus a journal.

TinyDB's JSONStorage rewrites the file in place (a crash can leave a torn file) and re-reads it
on every operation; rewriting the whole document on every commit costs O(everything) (about
50 ms at 10,000 calls). Here a commit appends one framed record of the changed documents to
the journal and fsyncs it (see `videobridge.state.journal` for the format and why replay is safe).
When the journal outgrows the snapshot, it is set aside (renamed to `.journal.old`, a fresh one
takes the appends) and a background thread writes the next snapshot (temp file, fsync, rename,
directory fsync) from the documents' cached JSON, then deletes the old journal. So commits never
wait for a snapshot, and the snapshot is not a dump: short joins of cached bytes, written piece by
piece, so the thread never holds the GIL for long (the event loop keeps answering).

The state file itself stays a plain TinyDB document; readers (`TinyDB(..., read_only=True)`)
fold the journals in through the same code as the writer's start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from videobridge.errors import StateError
from videobridge.state.journal import META, Ops, Tables, fold, frame, journal_path, old_journal_path

COMPACT_MIN = 1 << 20  # bytes of journal before a compaction, however small the snapshot
SNAPSHOT_CHUNK = 256  # documents per piece of a snapshot (about 100 KB at today's call size)

Members = dict[str, dict[str, bytes]]  # table -> doc_id -> b'"doc_id":{...}' (the document's JSON)


def fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: Path, data: bytes | Iterable[bytes]) -> int:
    """Temp file, fsync, rename, directory fsync; `data` may come in chunks. Returns the size."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    size = 0
    try:
        with os.fdopen(fd, "wb", buffering=0) as handle:
            for chunk in (data,) if isinstance(data, bytes) else data:
                view = memoryview(chunk)
                while view:
                    view = view[handle.write(view):]
                size += len(chunk)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
    return size


def append_durably(fd: int, data: bytes) -> None:
    """Append to the journal and wait for the disk (the file's size is data, so fdatasync suffices)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fdatasync(fd)


def read_json_file(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"state file {path}: cannot read: {exc.strerror}") from exc
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"state file {path}: not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise StateError(f"state file {path}: not a TinyDB document")
    return data


def _member(doc_id: str, doc: Any) -> bytes:
    if not doc_id.isdigit():  # TinyDB ids are integers; this keeps the byte-joins below valid JSON
        raise ValueError(f"bad document id {doc_id!r}")
    return b'"%s":%s' % (doc_id.encode(), json.dumps(doc, separators=(",", ":")).encode())


def _members(tables: Tables) -> Members:
    return {name: {doc_id: _member(doc_id, doc) for doc_id, doc in table.items()} for name, table in tables.items()}


def snapshot_chunks(members: Members, seq: int, chunk: int = SNAPSHOT_CHUNK) -> Iterator[bytes]:
    """The snapshot document in pieces of `chunk` documents: each piece is one short join (the
    only part that holds the GIL), written before the next is made, so the event loop keeps running."""
    yield b"{"
    for name, docs in members.items():
        yield json.dumps(name).encode() + b":{"
        values = list(docs.values())
        for start in range(0, len(values), chunk):
            yield (b"," if start else b"") + b",".join(values[start:start + chunk])
        yield b"},"
    yield json.dumps(META).encode() + b':{"1":{"folded":%d}}}' % seq


def snapshot_bytes(members: Members, seq: int) -> bytes:
    return b"".join(snapshot_chunks(members, seq))


class JournalStorage(Storage):
    """One writer (the caller holds the lock), or a read-only view (`read_only=True`)."""

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False,
                 compact_min: int = COMPACT_MIN) -> None:
        self._path = Path(path)
        self._journal = journal_path(self._path)
        self._old = old_journal_path(self._path)
        self._read_only = read_only
        self._compact_min = compact_min
        folded = fold(self._path, read_json_file, locked=not read_only)
        self._parsed: Tables | None = folded.tables  # what TinyDB reads at open; dropped on the first write
        self._seq = folded.seq
        self._fd: int | None = None
        self._broken = False
        self._lock = threading.Lock()
        self._compactor: threading.Thread | None = None
        self._pending: tuple[Members, int] | None = None  # a compaction still to do (it failed)
        self.compactions = 0  # snapshots written in the background (for tests and benchmarks)
        self.compaction_error: OSError | None = None
        if read_only:
            self._members: Members = {}
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._members = _members(folded.tables)
        self._snapshot_size = self._path.stat().st_size if self._path.exists() else 0
        self._journal_size = folded.journal_bytes
        leftovers = folded.records or folded.torn or folded.has_old or folded.journal_bytes
        if leftovers or (self._path.exists() and not self._journal.exists()):
            self._settle()  # start from a snapshot with everything and an empty journal
        elif self._path.exists():
            self._fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND)

    # -- TinyDB's Storage interface ----------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        if self._parsed is not None:
            return self._parsed or None
        return {name: json.loads(b"{" + b",".join(docs.values()) + b"}") for name, docs in self._members.items()}

    def write(self, data: dict[str, Any]) -> None:
        """A whole-document write (TinyDB's tables): journaled as the documents that differ."""
        ops: Ops = {name: {doc_id: None for doc_id in docs} for name, docs in self._members.items() if name not in data}
        for name, table in data.items():
            old = self._members.get(name, {})
            changed: dict[str, Any] = {doc_id: None for doc_id in old if doc_id not in table}
            changed.update({doc_id: doc for doc_id, doc in table.items()
                            if old.get(doc_id) != _member(doc_id, doc)})
            if changed:
                ops[name] = changed
        self.apply(ops)

    def close(self) -> None:
        """Let a running compaction finish; fold a non-empty journal into the snapshot."""
        if self._compactor is not None:
            self._compactor.join()
            self._compactor = None
        if self._fd is None:
            return
        try:
            if (self._journal_size or self._pending) and not self._broken:
                with contextlib.suppress(OSError):  # the journal stays; the next start folds it
                    self._settle()
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # -- journaled writes --------------------------------------------------------------------
    def apply(self, ops: Ops) -> None:
        """Make `ops` durable as one journal record (one fsync), then update the cached documents."""
        if self._read_only:
            raise StateError("state file opened read-only")
        if self._broken:
            raise StateError(f"state journal {self._journal} could not be repaired after a failed write; restart")
        members = {name: {doc_id: None if doc is None else _member(doc_id, doc) for doc_id, doc in docs.items()}
                   for name, docs in ops.items() if docs}
        if not members:
            return
        if self._fd is None:  # a new state file: it appears on its first write, as a TinyDB document
            self._settle()
        assert self._fd is not None
        seq = self._seq + 1
        body = b",".join(json.dumps(name).encode() + b":{" + b",".join(
            b'"%s":null' % doc_id.encode() if m is None else m for doc_id, m in docs.items()) + b"}"
            for name, docs in members.items())
        data = frame(b'{"n":%d,"ops":{%s}}' % (seq, body))
        try:
            append_durably(self._fd, data)
        except OSError:
            try:  # drop what may have reached the file; the record's number is used again
                os.ftruncate(self._fd, self._journal_size)
            except OSError:
                self._broken = True
            raise
        self._seq = seq
        self._journal_size += len(data)
        self._parsed = None
        for name, docs in members.items():
            table = self._members.setdefault(name, {})
            for doc_id, m in docs.items():
                if m is None:
                    table.pop(doc_id, None)
                else:
                    table[doc_id] = m
        self._maybe_compact()

    def _settle(self) -> None:
        """Synchronously: snapshot with everything, then a fresh empty journal, then no old one."""
        self._snapshot_size = atomic_write(self._path, snapshot_chunks(self._members, self._seq))
        atomic_write(self._journal, b"")  # a new file: a reader holding the old one is not disturbed
        self._old.unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND)
        self._journal_size = 0
        self._pending = None

    # -- background compaction ---------------------------------------------------------------
    def _maybe_compact(self) -> None:
        """Called by the writer after each record. Rotating the journal here keeps it in order
        with the appends; the snapshot is written by another thread from a copy of the cache."""
        if self._compactor is not None and self._compactor.is_alive():
            return
        with self._lock:
            job = self._pending
        if job is None:
            if self._journal_size < max(self._compact_min, self._snapshot_size):
                return
            if not self._rotate():
                return
            job = ({name: dict(docs) for name, docs in self._members.items()}, self._seq)  # O(N) pointers
        self._compactor = threading.Thread(target=self._compact, args=(job,), name="state-compactor", daemon=True)
        self._compactor.start()

    def _rotate(self) -> bool:
        assert self._fd is not None
        try:
            os.rename(self._journal, self._old)
        except OSError:
            return False  # try again after a later commit
        try:
            fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            os.rename(self._old, self._journal)
            return False
        try:
            fsync_dir(self._path.parent)  # the rename and the new file are durable before any append
        except OSError:
            os.close(fd)
            os.unlink(self._journal)
            os.rename(self._old, self._journal)
            return False
        os.close(self._fd)
        self._fd, self._journal_size = fd, 0
        return True

    def _compact(self, job: tuple[Members, int]) -> None:
        members, seq = job
        try:
            size = atomic_write(self._path, snapshot_chunks(members, seq))
            self._old.unlink(missing_ok=True)  # if this is lost, its records are all <= folded: skipped
        except OSError as exc:
            with self._lock:
                self._pending, self.compaction_error = job, exc
            return
        with self._lock:
            self._pending, self.compaction_error = None, None
            self._snapshot_size = size
            self.compactions += 1
