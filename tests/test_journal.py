"""The state journal: torn tails, kill -9 at every step of a compaction, old files, readers racing writers.

Kills are real: a child process commits through `FileStore` and SIGKILLs itself at a chosen
step (after a journal rename, before or after a snapshot's rename, half-way through a record);
it prints each commit it got back, so the test knows what was acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from store_support import call, note

from videobridge.errors import StateError
from videobridge.models import CallState
from videobridge.state.filestore import Change, FileStore, read_state
from videobridge.state.journal import frame, scan

TESTS = Path(__file__).resolve().parent
VIDEOBRIDGE = Path(sys.executable).parent / "videobridge"

CHILD = r"""
import asyncio, os, signal, sys, threading
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from store_support import call
import videobridge.state.snapshot as storage
from videobridge.state.filestore import Change, FileStore

point, path, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
real_replace, real_rename, real_append = os.replace, os.rename, storage.append_durably
compactor = lambda: threading.current_thread().name == "state-compactor"

def die():
    if written[0] >= 5:  # armed once a few commits are acknowledged
        os.kill(os.getpid(), signal.SIGKILL)

def replace(src, dst):
    if point == "before-snapshot-rename" and compactor() and str(dst) == str(path):
        die()
    real_replace(src, dst)
    if point == "after-snapshot-rename" and compactor() and str(dst) == str(path):
        die()
    if point == "close-after-snapshot" and closing and str(dst) == str(path):
        die()

def rename(src, dst):
    real_rename(src, dst)
    if point == "after-journal-rotation" and str(dst).endswith(".journal.old"):
        die()

def append(fd, data):
    if point == "mid-record" and written[0] >= 7:
        os.write(fd, data[: len(data) // 2])  # a torn tail: this commit is never acknowledged
        die()
    written[0] += 1
    real_append(fd, data)

os.replace, os.rename, storage.append_durably = replace, rename, append
written, closing = [0], False

async def main():
    global closing
    store = FileStore(path, compact_min=0)
    store.open()
    for i in range(count):  # three calls live at a time: each commit adds one and drops the oldest
        drop = [call(i - 3).room_name] if i >= 3 else []
        await store.commit(Change(put_calls=[call(i)], drop_calls=drop))
        print(i, flush=True)
    closing = True
    store.close()

asyncio.run(main())
"""


def live_after(i: int) -> set[str]:
    return {call(j).room_name for j in range(max(0, i - 2), i + 1)}


def run_child(point: str, path: Path, count: int = 40) -> int:
    """Run the child to its kill; the last commit it acknowledged."""
    proc = subprocess.run([sys.executable, "-c", CHILD, point, str(path), str(count), str(TESTS)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-2000:])
    acked = [int(line) for line in proc.stdout.split()]
    assert acked, f"{point}: killed before the first commit"
    return acked[-1]


@pytest.mark.parametrize("point", ["after-journal-rotation", "before-snapshot-rename", "after-snapshot-rename",
                                   "mid-record", "close-after-snapshot"])
async def test_kill_9_at_each_step_loses_nothing_acknowledged(tmp_path: Path, point: str) -> None:
    path = tmp_path / "s.json"
    last = run_child(point, path)
    # What the CLI sees (no lock) and what the next serve loads are the same, and complete: every
    # acknowledged commit, at most the one in flight beside it, and no dropped call back from the dead.
    seen = set(read_state(path)[0])
    assert seen in (live_after(last), live_after(last + 1)), (point, last, sorted(seen))
    store = FileStore(path)
    store.open()
    assert set(store.calls) == seen
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))], "leftovers cleaned"
    assert (tmp_path / "s.json.journal").read_bytes() == b"", "start-up folded the journal into the snapshot"
    await store.commit(Change(put_calls=[call(900)]))
    store.close()
    reopened = FileStore(path)
    reopened.open()
    assert set(reopened.calls) == seen | {call(900).room_name}
    reopened.close()


def crash_copy(src: Path, dst: Path) -> Path:
    """The files as a kill -9 would leave them right now (the store is still open)."""
    dst.mkdir()
    for name in ("s.json", "s.json.journal"):
        shutil.copy(src / name, dst / name)
    return dst / "s.json"


async def committed(tmp_path: Path, count: int) -> FileStore:
    store = FileStore(tmp_path / "s.json")
    store.open()
    for i in range(count):
        await store.commit(Change(put_calls=[call(i)], add_notifications=[note(i + 1, call(i).message_id)]))
    return store


async def test_a_torn_tail_is_dropped_and_the_rest_loads(tmp_path: Path) -> None:
    store = await committed(tmp_path, 5)
    path = crash_copy(tmp_path, tmp_path / "crash")
    store.close()
    half_record = frame(b'{"n":6,"ops":{"calls":{"99":null}}}')[:-7]
    with open(path.with_name("s.json.journal"), "ab") as fh:
        fh.write(half_record)
    assert scan(path.with_name("s.json.journal").read_bytes()).torn
    calls, outbox = read_state(path)
    assert sorted(calls) == [call(i).room_name for i in range(5)] and sorted(outbox) == [1, 2, 3, 4, 5]
    reopened = FileStore(path)
    reopened.open()
    assert reopened.calls == calls and reopened.outbox == outbox
    assert path.with_name("s.json.journal").read_bytes() == b""
    await reopened.commit(Change(drop_calls=[call(0).room_name], settle_notifications=[1]))
    reopened.close()
    calls, outbox = read_state(path)
    assert len(calls) == 4 and sorted(outbox) == [2, 3, 4, 5]


async def test_a_record_failing_its_checksum_ends_the_journal(tmp_path: Path) -> None:
    store = await committed(tmp_path, 3)
    path = crash_copy(tmp_path, tmp_path / "crash")
    store.close()
    journal = path.with_name("s.json.journal")
    data = bytearray(journal.read_bytes())
    data[-3] ^= 0x01  # the last record's bytes, not as written
    journal.write_bytes(bytes(data))
    assert sorted(read_state(path)[0]) == [call(0).room_name, call(1).room_name]


async def test_snapshot_and_journal_both_present_at_start_up(tmp_path: Path) -> None:
    store = await committed(tmp_path, 4)
    await store.commit(Change(put_calls=[call(1, CallState.LIVE)], drop_calls=[call(2).room_name]))
    path = crash_copy(tmp_path, tmp_path / "crash")
    store.close()
    snapshot = json.loads(path.read_text())
    assert snapshot == {"journal": {"1": {"folded": 0}}}, "the first snapshot is empty: everything is in the journal"
    reopened = FileStore(path)
    reopened.open()
    assert sorted(reopened.calls) == [call(0).room_name, call(1).room_name, call(3).room_name]
    assert reopened.calls[call(1).room_name].state is CallState.LIVE
    reopened.close()
    folded = json.loads(path.read_text())
    assert folded["journal"] == {"1": {"folded": 5}} and len(folded["calls"]) == 3


async def test_a_state_file_from_the_previous_version_loads(tmp_path: Path) -> None:
    # What the whole-file store wrote: TinyDB tables, no journal table, no journal beside it.
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"calls": {"3": call(1).to_json(), "7": call(2).to_json()},
                                "outbox": {"4": note(4, call(1).message_id).to_json()}}))
    calls, outbox = read_state(path)
    assert sorted(calls) == ["G0001", "G0002"] and list(outbox) == [4]
    store = FileStore(path)
    store.open()
    assert store.calls == calls and await store.allocate_seq() == 5
    await store.commit(Change(put_calls=[call(3)], drop_calls=["G0001"], settle_notifications=[4]))
    store.close()
    reopened = FileStore(path)
    reopened.open()
    assert sorted(reopened.calls) == ["G0002", "G0003"] and not reopened.outbox
    reopened.close()


async def test_a_journal_with_a_gap_is_a_clear_error(tmp_path: Path) -> None:
    store = await committed(tmp_path, 1)
    path = crash_copy(tmp_path, tmp_path / "crash")
    store.close()
    with open(path.with_name("s.json.journal"), "ab") as fh:
        fh.write(frame(b'{"n":5,"ops":{"calls":{"1":null}}}'))  # records 2 to 4 are missing
    with pytest.raises(StateError) as info:
        FileStore(path).open()
    assert "journal" in str(info.value) and str(path) in str(info.value)


async def test_commits_do_not_wait_for_a_compaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import videobridge.state.snapshot

    release = threading.Event()
    real = videobridge.state.snapshot.atomic_write

    def slow_snapshot(path: Path, data: bytes) -> int:
        if threading.current_thread().name == "state-compactor":
            assert release.wait(20)
        return real(path, data)

    monkeypatch.setattr(videobridge.state.snapshot, "atomic_write", slow_snapshot)
    store = FileStore(tmp_path / "s.json", compact_min=0)
    store.open()
    for i in range(30):  # a compaction starts early and hangs; the commits after it go on
        await store.commit(Change(put_calls=[call(i)]))
    assert store._storage._compactor.is_alive() and store._storage.compactions == 0
    assert len(read_state(tmp_path / "s.json")[0]) == 30, "a reader folds the old and the new journal"
    release.set()
    await store.aclose()
    assert len(read_state(tmp_path / "s.json")[0]) == 30


async def test_a_failed_compaction_is_retried_and_loses_nothing(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import videobridge.state.snapshot

    real = videobridge.state.snapshot.atomic_write

    def disk_full(path: Path, data: bytes) -> int:
        if threading.current_thread().name == "state-compactor":
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(videobridge.state.snapshot, "atomic_write", disk_full)
    store = FileStore(tmp_path / "s.json", compact_min=0)
    store.open()
    for i in range(20):
        await store.commit(Change(put_calls=[call(i)]))  # commits keep working
    store._storage._compactor.join()
    assert store._storage.compaction_error is not None and (tmp_path / "s.json.journal.old").exists()
    assert len(read_state(tmp_path / "s.json")[0]) == 20
    monkeypatch.undo()
    await store.commit(Change(put_calls=[call(20)]))
    store._storage._compactor.join()
    assert store._storage.compaction_error is None and not (tmp_path / "s.json.journal.old").exists()
    store.close()
    assert len(read_state(tmp_path / "s.json")[0]) == 21


WRITER = r"""
import asyncio, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from store_support import call
from videobridge.state.filestore import Change, FileStore

async def main():
    store = FileStore(Path(sys.argv[1]), compact_min=0)  # a compaction every few commits
    store.open()
    await store.commit(Change(put_calls=[call(i) for i in range(5000, 5300)]))  # a snapshot worth reading
    await store.commit(Change(put_calls=[call(0)]))
    print("ready", flush=True)
    for i in range(1, int(sys.argv[2])):  # always exactly one churning call: the newest
        await store.commit(Change(put_calls=[call(i)], drop_calls=[call(i - 1).room_name]))
    await store.aclose()

asyncio.run(main())
"""


async def test_readers_see_a_consistent_state_while_the_writer_compacts(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "1500", str(TESTS)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    reads, newest, cli_reads = 0, 0, 0
    env = {**os.environ, "VIDEOBRIDGE_STATE": str(path)}
    try:
        while writer.poll() is None:
            calls = read_state(path)[0]
            churn = sorted(int(room[1:]) for room in calls if int(room[1:]) < 5000)
            assert len(calls) == 301 and len(churn) == 1, f"inconsistent read: {len(calls)} calls, churn {churn}"
            assert churn[0] >= newest, "a read went back in time"
            newest, reads = churn[0], reads + 1
            if reads % 25 == 0:  # the command itself, as an operator runs it beside `serve`
                out = subprocess.run([str(VIDEOBRIDGE), "calls", "list", "--json"], env=env, cwd=tmp_path,
                                     capture_output=True, text=True, timeout=30)
                assert out.returncode == 0, out.stderr
                listed = [c["roomName"] for c in json.loads(out.stdout)]
                assert len(listed) == 301, len(listed)
                cli_reads += 1
            await asyncio.sleep(0)
    finally:
        writer.wait(60)
    assert writer.returncode == 0 and reads > 20 and cli_reads >= 1
    calls = read_state(path)[0]
    assert len(calls) == 301 and call(1499).room_name in calls


def test_record_frames_scan_back(tmp_path: Path) -> None:
    data = frame(b'{"n":1,"ops":{}}') + frame(b'{"n":2,"ops":{"t":{"1":{"a":1}}}}')
    result = scan(data)
    assert [n for n, _ in result.records] == [1, 2] and result.good_bytes == len(data) and not result.torn
    first = len(frame(b'{"n":1,"ops":{}}'))
    for cut in range(1, len(data)):  # every place a kill can cut the last record
        partial = scan(data[:cut])
        assert len(partial.records) == (1 if cut >= first else 0) and partial.good_bytes == (first if cut >= first else 0)
        assert partial.torn == (cut != first)


def test_plain_tinydb_table_writes_are_journaled_too(tmp_path: Path) -> None:
    from tinydb import TinyDB

    from videobridge.state.snapshot import JournalStorage

    db = TinyDB(tmp_path / "t.json", storage=JournalStorage)
    table = db.table("things")
    table.insert_multiple([{"a": 1}, {"a": 2}, {"a": 3}])
    table.remove(doc_ids=[2])
    table.update({"a": 30}, doc_ids=[3])
    assert (tmp_path / "t.json.journal").stat().st_size > 0
    seen = TinyDB(tmp_path / "t.json", storage=JournalStorage, read_only=True).table("things").all()
    assert [(d.doc_id, d["a"]) for d in seen] == [(1, 1), (3, 30)]
    db.close()
    assert json.loads((tmp_path / "t.json").read_text())["things"] == {"1": {"a": 1}, "3": {"a": 30}}


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_a_snapshot_in_pieces_is_one_tinydb_document(count: int) -> None:
    from videobridge.state.snapshot import _members, snapshot_chunks

    tables = {"calls": {str(i): {"i": i, "s": "é\""} for i in range(count)}, "outbox": {}}
    data = b"".join(snapshot_chunks(_members(tables), 7, chunk=2))
    assert json.loads(data) == {**tables, "journal": {"1": {"folded": 7}}}
