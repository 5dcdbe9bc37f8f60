"""Records for the state store tests (test_store, test_journal and its child processes,
test_redisstore): kept light, it imports only the models, since test_journal's children import it."""

from __future__ import annotations

import time

from videobridge.chats import GroupChat
from videobridge.models import Call, CallState, CallType, CanisterKind, Initiator, Notification, NotificationKind


def call(i: int, state: CallState = CallState.STARTING) -> Call:
    return Call(room_name=f"G{i:04d}", message_id=2**64 - 1 - i, chat=GroupChat("ll4qc-niaaa-aaaap-qvfoq-cai"),
                call_type=CallType.DEFAULT, started_by="724ke-xyaaa-aaaan-ayptq-cai",
                initiator=Initiator(username="alice", display_name="A & B", avatar_id=2**100), is_diamond=False,
                state=state, created_at=time.time(), room_exp=int(time.time()) + 3600)


def note(seq: int, message_id: int) -> Notification:
    return Notification(seq=seq, message_id=message_id, room_name="G0001", kind=NotificationKind.START,
                        canister_kind=CanisterKind.GROUP, canister_id="ll4qc-niaaa-aaaap-qvfoq-cai",
                        method="start_video_call_v2", args={"message_id": message_id, "max_duration": 3_600_000})
