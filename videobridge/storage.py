"""A TinyDB storage that writes atomically and serves reads from memory.

TinyDB's JSONStorage rewrites the file in place (a crash can leave a torn file) and re-reads
the whole file on every operation. This storage keeps the parsed document in memory, writes
by temp file + fsync + rename + directory fsync, and can defer writes so a batch of table
operations costs one durable write.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from videobridge.errors import StateError


def atomic_write(path: Path, data: bytes) -> None:
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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


class AtomicJSONStorage(Storage):
    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self._path = Path(path)
        self._read_only = read_only
        if not read_only:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        self._data: dict[str, Any] | None = read_json_file(self._path)
        self._last_good: bytes | None = None
        self._deferred = 0
        self._dirty = False

    def read(self) -> dict[str, Any] | None:
        return self._data

    def write(self, data: dict[str, Any]) -> None:
        if self._read_only:
            raise StateError("state file opened read-only")
        self._data = data
        if self._deferred:
            self._dirty = True
        else:
            self._flush()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer writes inside the block; write once at the end (or roll back on error)."""
        self._deferred += 1
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        finally:
            self._deferred -= 1
        if self._deferred == 0 and self._dirty:
            self._flush()

    def _flush(self) -> None:
        self._dirty = False
        payload = json.dumps(self._data, separators=(",", ":")).encode()
        try:
            atomic_write(self._path, payload)
        except OSError:
            self._rollback()
            raise
        self._last_good = payload

    def _rollback(self) -> None:
        self._dirty = False
        self._data = json.loads(self._last_good) if self._last_good else read_json_file(self._path)

    def close(self) -> None:
        pass
