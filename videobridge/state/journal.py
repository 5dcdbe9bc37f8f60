"""The state journal: framed change records beside the TinyDB snapshot, and how to fold them in.

Files, for a state file `state.json`:
- `state.json`: a plain TinyDB document (tables of documents by id). Its table `journal` holds
  one document, `{"folded": n}`: every record up to sequence number n is already in it.
- `state.json.journal`: records appended since; each is fsynced before its commit returns.
- `state.json.journal.old`: the previous journal while a compaction writes the next snapshot.

A record is `length (4 bytes, big-endian) | crc32 (4 bytes) | JSON`, the JSON being
`{"n": seq, "ops": {table: {doc_id: document or null}}}` (null removes the document). Setting or
removing a document is absolute, so folding a record twice changes nothing; a reader skips
records at or below the snapshot's `folded` and needs the rest without a gap. A frame that is
short or fails its checksum ends the file: only the unacknowledged tail can be torn by a kill.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videobridge.errors import StateError

META = "journal"  # the snapshot's table that says how far the journal is folded in
HEADER = struct.Struct(">II")
MAX_RECORD = 1 << 30  # a longer length field is damage, not data

Tables = dict[str, dict[str, Any]]
Ops = dict[str, dict[str, Any]]  # table -> doc_id -> document, or None to remove


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def old_journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal.old")


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True, slots=True)
class Scan:
    records: list[tuple[int, Ops]]
    good_bytes: int  # the length of the well-formed prefix
    torn: bool  # bytes followed that prefix


def scan(data: bytes) -> Scan:
    records: list[tuple[int, Ops]] = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if length > MAX_RECORD or end > len(data):
            break
        payload = data[offset + HEADER.size:end]
        if zlib.crc32(payload) != crc:
            break
        try:
            record = json.loads(payload)
            records.append((int(record["n"]), dict(record["ops"])))
        except (ValueError, KeyError, TypeError):
            break
        offset = end
    return Scan(records, offset, offset < len(data))


def read_journal(path: Path) -> Scan:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Scan([], 0, False)
    except OSError as exc:
        raise StateError(f"state journal {path}: cannot read: {exc.strerror}") from exc
    return scan(data)


def apply_ops(tables: Tables, ops: Ops) -> None:
    for name, docs in ops.items():
        table = tables.setdefault(name, {})
        for doc_id, doc in docs.items():
            if doc is None:
                table.pop(doc_id, None)
            else:
                table[doc_id] = doc


def folded_seq(tables: Tables) -> int:
    meta = tables.pop(META, None)
    if meta is None:  # a state file from before the journal
        return 0
    if not isinstance(meta, dict) or not isinstance(meta.get("1"), dict):
        raise ValueError("bad journal table")
    return int(meta["1"]["folded"])


@dataclass(slots=True)
class Folded:
    tables: Tables  # the documents, without the meta table
    seq: int  # the last record folded in
    records: int  # how many journal records were applied on top of the snapshot
    journal_bytes: int  # well-formed bytes in the current journal
    torn: bool  # the current journal ends in a torn frame
    has_old: bool  # a compaction was cut short: its old journal is still there


class Gap(Exception):
    """Records are missing between the snapshot and the journals."""


def fold_once(path: Path, read_snapshot: Any) -> Folded:
    """The snapshot, then the old journal, then the current one (in that order: see `fold`)."""
    tables: Tables = read_snapshot(path) or {}
    try:
        seq = folded_seq(tables)
        old_path = old_journal_path(path)
        old = read_journal(old_path)
        current = read_journal(journal_path(path))
        applied = 0
        for n, ops in (*old.records, *current.records):
            if n <= seq:
                continue  # already in the snapshot (a compaction was cut short, or raced us)
            if n != seq + 1:
                raise Gap(f"record {seq + 1} missing before {n}")
            apply_ops(tables, ops)
            seq, applied = n, applied + 1
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"bad journal record ({exc.__class__.__name__})") from exc
    return Folded(tables, seq, applied, current.good_bytes, current.torn, old_path.exists())


def _identities(path: Path) -> tuple[int | None, ...]:
    """Which files (by inode) the snapshot and both journals are right now; None = absent."""
    found: list[int | None] = []
    for each in (path, old_journal_path(path), journal_path(path)):
        try:
            found.append(os.stat(each).st_ino)
        except FileNotFoundError:
            found.append(None)
    return tuple(found)


def fold(path: Path, read_snapshot: Any, *, locked: bool) -> Folded:
    """Fold the journals into the snapshot.

    The writer (`locked`) sees the files at rest: a gap there is damage. A reader without the
    lock can race a compaction (read an old snapshot, then find its old journal already gone):
    the gap shows it, and reading again gives a consistent view.
    """
    attempts = 1 if locked else 50
    for attempt in range(attempts):
        try:
            if locked:
                return fold_once(path, read_snapshot)
            # A reader also retries when a file was replaced while it read: a journal rotated
            # (the records it missed moved to the old journal) or a compaction finished (the old
            # journal it did not find is folded into a snapshot it did not read). Neither need
            # leave a gap to notice, for instance when the new journal is still empty.
            before = _identities(path)
            folded = fold_once(path, read_snapshot)
            if _identities(path) != before:
                raise Gap("the files changed while they were read")
            return folded
        except Gap as exc:
            if attempt == attempts - 1:
                raise StateError(f"state file {path}: journal does not follow the snapshot ({exc})") from None
            time.sleep(0.01)
    raise AssertionError("unreachable")
