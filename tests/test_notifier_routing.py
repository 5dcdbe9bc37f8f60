"""Who hears about a call, and with which arguments (SPEC §6, openchat.md §3)."""

from __future__ import annotations

import pytest

from videobridge.chats import ChannelChat, Chat, DirectChat, GroupChat, room_name
from videobridge.models import Call, CallState, CallType, CanisterKind, Initiator, NotificationKind
from videobridge.notifier import encode_args, plan_end, plan_start
from videobridge.principal import bytes_to_principal

GROUP = bytes_to_principal(bytes([0, 0, 0, 0, 0, 0x10, 0, 1, 1, 1]))
COMMUNITY = bytes_to_principal(bytes([0, 0, 0, 0, 0, 0x20, 0, 2, 1, 1]))
ALICE = bytes_to_principal(bytes([0, 0, 0, 0, 0, 0x30, 0, 3, 1, 1]))
BOB = bytes_to_principal(bytes([0, 0, 0, 0, 0, 0x40, 0, 4, 1, 1]))
MESSAGE_ID = 2**64 - 2
NOW = 1_800_000_000.5


def make_call(chat: Chat, *, starter: str = ALICE, diamond: bool = False,
              initiator: Initiator | None = None, call_type: CallType = CallType.DEFAULT) -> Call:
    return Call(
        room_name=room_name(chat), message_id=MESSAGE_ID, chat=chat, call_type=call_type,
        started_by=starter, initiator=initiator or Initiator(username="alice", display_name="Alice A"),
        is_diamond=diamond, state=CallState.STARTING, created_at=NOW, room_exp=int(NOW) + 3600,
    )


def test_group_start_and_end() -> None:
    call = make_call(GroupChat(GROUP), call_type=CallType.BROADCAST)
    (start,) = plan_start(call, first_seq=7, now=NOW)
    assert (start.seq, start.kind, start.canister_kind, start.canister_id, start.method) == (
        7, NotificationKind.START, CanisterKind.GROUP, GROUP, "start_video_call_v2")
    assert start.args == {
        "message_id": MESSAGE_ID, "initiator": ALICE, "initiator_username": "alice",
        "initiator_display_name": "Alice A", "max_duration": 3_600_000, "call_type": "Broadcast",
    }
    assert (start.message_id, start.room_name, start.created_at) == (MESSAGE_ID, call.room_name, NOW)
    (end,) = plan_end(call, first_seq=9, now=NOW + 5)
    assert (end.seq, end.kind, end.canister_kind, end.canister_id, end.method) == (
        9, NotificationKind.END, CanisterKind.GROUP, GROUP, "end_video_call_v2")
    assert end.args == {"message_id": MESSAGE_ID}
    assert end.created_at == NOW + 5


def test_channel_start_and_end_carry_the_channel_id() -> None:
    call = make_call(ChannelChat(COMMUNITY, 2**32 - 1))
    (start,) = plan_start(call, first_seq=1, now=NOW)
    assert (start.canister_kind, start.canister_id) == (CanisterKind.COMMUNITY, COMMUNITY)
    assert start.args["channel_id"] == 2**32 - 1
    assert set(start.args) == {"channel_id", "message_id", "initiator", "initiator_username",
                               "initiator_display_name", "max_duration", "call_type"}
    (end,) = plan_end(call, first_seq=2, now=NOW)
    assert (end.canister_kind, end.canister_id) == (CanisterKind.COMMUNITY, COMMUNITY)
    assert end.args == {"channel_id": 2**32 - 1, "message_id": MESSAGE_ID}


@pytest.mark.parametrize(("starter", "other"), [(ALICE, BOB), (BOB, ALICE)])
def test_direct_start_goes_to_the_other_user(starter: str, other: str) -> None:
    call = make_call(DirectChat.between(ALICE, BOB), starter=starter,
                     initiator=Initiator(username="u", display_name=None, avatar_id=2**100 + 7))
    (start,) = plan_start(call, first_seq=3, now=NOW)
    assert (start.canister_kind, start.canister_id) == (CanisterKind.USER, other)
    assert start.args["initiator"] == starter
    assert start.args["initiator_avatar_id"] == 2**100 + 7
    assert start.args["initiator_display_name"] is None


@pytest.mark.parametrize(("starter", "other"), [(ALICE, BOB), (BOB, ALICE)])
def test_direct_end_goes_to_both_users_each_naming_the_other(starter: str, other: str) -> None:
    call = make_call(DirectChat.between(ALICE, BOB), starter=starter)
    ends = plan_end(call, first_seq=10, now=NOW)
    assert [n.seq for n in ends] == [10, 11]
    assert all(n.kind is NotificationKind.END and n.canister_kind is CanisterKind.USER for n in ends)
    assert [(n.canister_id, n.args) for n in ends] == [
        (starter, {"user_id": other, "message_id": MESSAGE_ID}),
        (other, {"user_id": starter, "message_id": MESSAGE_ID}),
    ]


@pytest.mark.parametrize("avatar", [None, 0])
def test_avatar_only_when_present(avatar: int | None) -> None:
    call = make_call(DirectChat.between(ALICE, BOB), initiator=Initiator(username="u", avatar_id=avatar))
    (start,) = plan_start(call, first_seq=1, now=NOW)
    assert start.args["initiator_avatar_id"] is None


def test_avatar_never_sent_to_group_or_community() -> None:
    initiator = Initiator(username="u", avatar_id=12345)
    for chat in (GroupChat(GROUP), ChannelChat(COMMUNITY, 1)):
        (start,) = plan_start(make_call(chat, initiator=initiator), first_seq=1, now=NOW)
        assert "initiator_avatar_id" not in start.args


@pytest.mark.parametrize(("diamond", "duration"), [(False, 3_600_000), (True, 7_200_000)])
def test_max_duration_depends_on_diamond(diamond: bool, duration: int) -> None:
    for chat in (GroupChat(GROUP), ChannelChat(COMMUNITY, 5), DirectChat.between(ALICE, BOB)):
        (start,) = plan_start(make_call(chat, diamond=diamond), first_seq=1, now=NOW)
        assert start.args["max_duration"] == duration


def test_empty_display_name_is_sent_as_none() -> None:
    call = make_call(GroupChat(GROUP), initiator=Initiator(username="u", display_name=""))
    (start,) = plan_start(call, first_seq=1, now=NOW)
    assert start.args["initiator_display_name"] is None


def test_planned_arguments_encode_and_survive_json() -> None:
    from videobridge.models import Notification

    for chat in (GroupChat(GROUP), ChannelChat(COMMUNITY, 77), DirectChat.between(ALICE, BOB)):
        call = make_call(chat, initiator=Initiator(username="u", display_name="d", avatar_id=2**127))
        for note in [*plan_start(call, first_seq=1, now=NOW), *plan_end(call, first_seq=2, now=NOW)]:
            again = Notification.from_json(note.to_json())
            assert again == note
            assert encode_args(again.canister_kind, again.method, again.args).startswith(b"DIDL")
