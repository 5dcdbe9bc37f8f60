"""Who hears about a call, and with which arguments (SPEC §6, openchat.md §3)."""

from __future__ import annotations

import pytest

from videobridge.chats import ChannelChat, Chat, DirectChat, GroupChat, room_name
from videobridge.models import Call, CallState, CallType, CanisterKind, Initiator, Notification, NotificationKind
from videobridge.notifier import encode_args, plan_decline, plan_end, plan_start, wire_form
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
        "audio_only": None,
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
                               "initiator_display_name", "max_duration", "call_type", "audio_only"}
    (end,) = plan_end(call, first_seq=2, now=NOW)
    assert (end.canister_kind, end.canister_id) == (CanisterKind.COMMUNITY, COMMUNITY)
    assert end.args == {"channel_id": 2**32 - 1, "message_id": MESSAGE_ID}


@pytest.mark.parametrize(("starter", "other"), [(ALICE, BOB), (BOB, ALICE)])
def test_direct_start_goes_to_the_other_user(starter: str, other: str) -> None:
    call = make_call(DirectChat.between(ALICE, BOB), starter=starter,
                     initiator=Initiator(username="u", display_name=None, avatar_id=2**100 + 7))
    (start,) = plan_start(call, first_seq=3, now=NOW)
    assert (start.canister_kind, start.canister_id) == (CanisterKind.USER, other)
    assert start.args["initiator"] == starter and start.args["user_id"] == other
    assert start.args["initiator_avatar_id"] == 2**100 + 7
    assert start.args["initiator_display_name"] is None


@pytest.mark.parametrize(("starter", "other"), [(ALICE, BOB), (BOB, ALICE)])
def test_direct_end_goes_to_both_users_each_naming_owner_and_other(starter: str, other: str) -> None:
    call = make_call(DirectChat.between(ALICE, BOB), starter=starter)
    ends = plan_end(call, first_seq=10, now=NOW)
    assert [n.seq for n in ends] == [10, 11]
    assert all(n.kind is NotificationKind.END and n.canister_kind is CanisterKind.USER for n in ends)
    assert [(n.canister_id, n.args) for n in ends] == [
        (starter, {"user_id": starter, "them": other, "message_id": MESSAGE_ID}),
        (other, {"user_id": other, "them": starter, "message_id": MESSAGE_ID}),
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


@pytest.mark.parametrize(("call_type", "wire_type", "audio_only"), [
    (CallType.DEFAULT, "Default", None), (CallType.BROADCAST, "Broadcast", None), (CallType.AUDIO, "Default", True)])
def test_every_start_says_whether_the_call_is_audio_only(call_type: CallType, wire_type: str,
                                                         audio_only: bool | None) -> None:
    for chat in (GroupChat(GROUP), ChannelChat(COMMUNITY, 5), DirectChat.between(ALICE, BOB)):
        (start,) = plan_start(make_call(chat, call_type=call_type), first_seq=1, now=NOW)
        assert (start.args["call_type"], start.args["audio_only"]) == (wire_type, audio_only)
        assert encode_args(start.canister_kind, start.method, start.args).startswith(b"DIDL")
        for end in plan_end(make_call(chat, call_type=call_type), first_seq=2, now=NOW):
            assert "audio_only" not in end.args and "call_type" not in end.args


# MultiUser canisters: an indexed user id is the canister's first 8 bytes + index, 0x80 set.
SHARED = bytes([0, 0, 0, 0, 0, 0x50, 0, 5])
CAROL_MU = bytes_to_principal(SHARED + bytes([3, 0x80]))  # index 3
DAVE_MU = bytes_to_principal(SHARED + bytes([0xFF, 0xFF]))  # index 32767, same canister
SHARED_CANISTER = bytes_to_principal(SHARED + b"\x01\x01")


@pytest.mark.parametrize(("starter", "callee", "callee_canister"), [
    (ALICE, CAROL_MU, SHARED_CANISTER), (CAROL_MU, ALICE, ALICE), (CAROL_MU, DAVE_MU, SHARED_CANISTER)])
def test_multi_user_canisters_are_derived_and_users_named(starter: str, callee: str, callee_canister: str) -> None:
    call = make_call(DirectChat.between(starter, callee), starter=starter)
    (start,) = plan_start(call, first_seq=1, now=NOW)
    assert (start.canister_id, start.args["user_id"], start.args["initiator"]) == (callee_canister, callee, starter)
    starter_canister = SHARED_CANISTER if starter in (CAROL_MU, DAVE_MU) else starter
    assert [(n.canister_id, n.args["user_id"], n.args["them"]) for n in plan_end(call, first_seq=2, now=NOW)] == [
        (starter_canister, starter, callee), (callee_canister, callee, starter)]


def _old(kind: NotificationKind, canister_kind: CanisterKind, canister_id: str, args: dict) -> Notification:
    method = "start_video_call_v2" if kind is NotificationKind.START else "end_video_call_v2"
    return Notification(seq=1, message_id=MESSAGE_ID, room_name="r", kind=kind, canister_kind=canister_kind,
                        canister_id=canister_id, method=method, args=args)


OLD_START = {"message_id": MESSAGE_ID, "initiator": ALICE, "initiator_username": "alice",
             "initiator_display_name": None, "max_duration": 3_600_000, "call_type": "Default"}


def test_wire_form_upgrades_what_the_previous_version_queued() -> None:
    group = wire_form(_old(NotificationKind.START, CanisterKind.GROUP, GROUP, OLD_START), legacy_user_end=False)
    assert group.args == {**OLD_START, "audio_only": None} and group.canister_id == GROUP
    user = wire_form(_old(NotificationKind.START, CanisterKind.USER, CAROL_MU,
                          {**OLD_START, "initiator_avatar_id": None}), legacy_user_end=False)
    assert user.canister_id == SHARED_CANISTER  # the old bridge sent it to the user id itself
    assert user.args == {**OLD_START, "initiator_avatar_id": None, "audio_only": None, "user_id": CAROL_MU}
    old_end = _old(NotificationKind.END, CanisterKind.USER, BOB, {"user_id": ALICE, "message_id": MESSAGE_ID})
    assert wire_form(old_end, legacy_user_end=False).args == {"user_id": BOB, "them": ALICE, "message_id": MESSAGE_ID}
    assert wire_form(old_end, legacy_user_end=True) == old_end  # already the pre-#9401 shape
    for note in (group, user, wire_form(old_end, legacy_user_end=False)):
        assert encode_args(note.canister_kind, note.method, note.args).startswith(b"DIDL")


def test_wire_form_leaves_new_notifications_alone_unless_legacy_ends_are_asked_for() -> None:
    call = make_call(DirectChat.between(ALICE, BOB), call_type=CallType.AUDIO)
    notes = [*plan_start(call, first_seq=1, now=NOW), *plan_end(call, first_seq=2, now=NOW),
             *plan_end(make_call(GroupChat(GROUP)), first_seq=4, now=NOW)]
    assert [wire_form(n, legacy_user_end=False) for n in notes] == notes
    start, end_alice, end_bob, group_end = [wire_form(n, legacy_user_end=True) for n in notes]
    assert (start, group_end) == (notes[0], notes[3])
    assert (end_alice.canister_id, end_alice.args) == (ALICE, {"user_id": BOB, "message_id": MESSAGE_ID})
    assert (end_bob.canister_id, end_bob.args) == (BOB, {"user_id": ALICE, "message_id": MESSAGE_ID})


def test_wire_form_never_raises_on_damaged_entries() -> None:
    bad = _old(NotificationKind.END, CanisterKind.USER, "not-a-principal", {"message_id": 1})
    assert wire_form(bad, legacy_user_end=True) == bad


@pytest.mark.parametrize(("chat", "chat_id"), [
    (GroupChat(GROUP), {"Group": GROUP}), (ChannelChat(COMMUNITY, 2**32 - 1), {"Channel": [COMMUNITY, 2**32 - 1]})])
def test_decline_goes_to_the_local_user_index(chat: Chat, chat_id: dict) -> None:
    lui = bytes_to_principal(bytes([0, 0, 0, 0, 0, 0x60, 0, 6, 1, 1]))
    (note,) = plan_decline(make_call(chat), user_id=BOB, local_user_index=lui, first_seq=4, now=NOW)
    assert (note.kind, note.canister_kind, note.canister_id, note.method) == (
        NotificationKind.DECLINED, CanisterKind.LOCAL_USER_INDEX, lui, "video_call_declined")
    assert note.args == {"user_id": BOB, "chat_id": chat_id, "message_id": MESSAGE_ID}
    again = Notification.from_json(note.to_json())
    assert again == note and wire_form(again, legacy_user_end=True) == again
    assert encode_args(again.canister_kind, again.method, again.args).startswith(b"DIDL")
