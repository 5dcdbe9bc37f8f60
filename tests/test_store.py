"""The state store: durable atomic writes, one writer, group commit, reload, corrupt files."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from store_support import call, note

from videobridge.errors import StateError, StateLocked
from videobridge.models import CallState
from videobridge.state.filestore import Change, FileStore, read_state


async def test_commit_persists_and_reloads(tmp_path):
    store = FileStore(tmp_path / "s.json")
    store.open()
    await store.commit(Change(put_calls=[call(1)], add_notifications=[note(1, call(1).message_id)]))
    await store.commit(Change(put_calls=[call(1, CallState.LIVE), call(2)]))
    await store.commit(Change(drop_calls=["G0002"], settle_notifications=[1]))
    await store.aclose()
    calls, outbox = read_state(tmp_path / "s.json")
    assert list(calls) == ["G0001"] and calls["G0001"].state is CallState.LIVE and not outbox
    assert calls["G0001"] == call(1, CallState.LIVE).evolve(created_at=calls["G0001"].created_at,
                                                              room_exp=calls["G0001"].room_exp)
    reopened = FileStore(tmp_path / "s.json")
    reopened.open()
    assert reopened.calls == calls
    reopened.close()


async def test_big_integers_survive_as_strings(tmp_path):
    store = FileStore(tmp_path / "s.json")
    store.open()
    await store.commit(Change(add_notifications=[note(7, 2**64 - 1)]))
    store.close()
    raw = json.loads((tmp_path / "s.json").read_text())
    (doc,) = raw["outbox"].values()
    assert doc["messageId"] == str(2**64 - 1) and doc["args"]["message_id"] == {"$int": str(2**64 - 1)}
    _, outbox = read_state(tmp_path / "s.json")
    assert outbox[7].args["message_id"] == 2**64 - 1


async def test_concurrent_commits_share_writes(tmp_path):
    store = FileStore(tmp_path / "s.json")
    store.open()
    await asyncio.gather(*(store.commit(Change(put_calls=[call(i)])) for i in range(200)))
    assert len(store.calls) == 200 and store.writes < 20
    store.close()
    assert len(read_state(tmp_path / "s.json")[0]) == 200


async def test_one_writer(tmp_path):
    first = FileStore(tmp_path / "s.json")
    first.open()
    with pytest.raises(StateLocked):
        FileStore(tmp_path / "s.json").open()
    first.close()
    second = FileStore(tmp_path / "s.json")
    second.open()
    second.close()


async def test_commits_append_to_the_journal_and_compaction_replaces_the_file(tmp_path):
    store = FileStore(tmp_path / "s.json", compact_min=0)  # compact as soon as the journal outgrows the file
    store.open()
    await store.commit(Change(put_calls=[call(1)]))  # the file appears on the first write
    first = (tmp_path / "s.json").read_bytes()
    for i in range(2, 40):
        await store.commit(Change(put_calls=[call(i)]))
        assert (tmp_path / "s.json").read_bytes() != first or not store._storage.compactions
    store._storage._compactor.join()
    assert store._storage.compactions >= 1
    snapshot = json.loads((tmp_path / "s.json").read_text())  # a plain TinyDB document on its own
    folded = snapshot["journal"]["1"]["folded"]
    assert 1 < folded <= 39 and len(snapshot["calls"]) == folded, "one call per record, all folded in"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))]
    assert len(read_state(tmp_path / "s.json")[0]) == 39
    store.close()
    assert json.loads((tmp_path / "s.json").read_text())["journal"] == {"1": {"folded": 39}}
    assert (tmp_path / "s.json.journal").read_bytes() == b"", "a clean close folds the journal in"


async def test_failed_write_changes_nothing(tmp_path, monkeypatch):
    import videobridge.state.snapshot

    store = FileStore(tmp_path / "s.json")
    store.open()
    await store.commit(Change(put_calls=[call(1)]))
    before = [(tmp_path / name).read_bytes() for name in ("s.json", "s.json.journal")]

    def broken(fd, data):
        os.write(fd, data[: len(data) // 2])  # half a record reached the file, then the disk failed
        raise OSError(5, "I/O error")

    monkeypatch.setattr(videobridge.state.snapshot, "append_durably", broken)
    with pytest.raises(StateError):
        await store.commit(Change(put_calls=[call(2)], drop_calls=["G0001"]))
    assert list(store.calls) == ["G0001"]
    assert [(tmp_path / name).read_bytes() for name in ("s.json", "s.json.journal")] == before
    monkeypatch.undo()
    await store.commit(Change(put_calls=[call(3)]))
    assert sorted(read_state(tmp_path / "s.json")[0]) == ["G0001", "G0003"]
    store.close()
    assert sorted(read_state(tmp_path / "s.json")[0]) == ["G0001", "G0003"]


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"calls": {"1": {"roomName": "x"}}}'])
def test_corrupt_files_are_a_clear_error(tmp_path, content):
    (tmp_path / "s.json").write_bytes(content)
    with pytest.raises(StateError) as info:
        FileStore(tmp_path / "s.json").open()
    assert str(tmp_path / "s.json") in str(info.value)
    FileStore(tmp_path / "s.json")  # the lock was released: a fixed file could be opened again


def test_temp_files_left_by_a_kill_are_removed_on_open(tmp_path):
    (tmp_path / ".s.json.abc123.tmp").write_text("half a write")
    store = FileStore(tmp_path / "s.json")
    store.open()
    assert not list(tmp_path.glob("*.tmp"))
    store.close()
