"""Which canister hears about a call, and with what arguments (SPEC §6, openchat.md §3).

Group   -> the group canister.
Channel -> the community canister, with `channel_id` (nat32, already reduced mod 2^32).
Direct  -> start on the *other* user's canister (the recipient; `initiator` is the starter),
           end on *both* users' canisters, each naming the other party as `user_id`.

Pure functions: the outbox persists what they return and delivers it in `seq` order.
"""

from __future__ import annotations

from typing import Any

from videobridge.chats import ChannelChat, DirectChat, GroupChat
from videobridge.models import Call, CanisterKind, Notification, NotificationKind
from videobridge.notifier.candid import END_METHOD, START_METHOD

DECLINED_METHOD = "video_call_declined"  # on the local user index (SPEC §9)


def _start_args(call: Call) -> dict[str, Any]:
    return {
        "message_id": call.message_id,
        "initiator": call.started_by,
        "initiator_username": call.initiator.username,
        # The front end always sends a display name, but it may arrive mangled or empty.
        "initiator_display_name": call.initiator.display_name or None,
        "max_duration": call.max_duration_ms,
        "call_type": call.call_type.value,
    }


def _notification(call: Call, *, seq: int, now: float, kind: NotificationKind,
                  canister_kind: CanisterKind, canister_id: str, args: dict[str, Any]) -> Notification:
    return Notification(
        seq=seq,
        message_id=call.message_id,
        room_name=call.room_name,
        kind=kind,
        canister_kind=canister_kind,
        canister_id=canister_id,
        method=START_METHOD if kind is NotificationKind.START else END_METHOD,
        args=args,
        created_at=now,
    )


def plan_start(call: Call, *, first_seq: int, now: float) -> list[Notification]:
    """The start notification(s) for a newly created call (always exactly one)."""
    chat = call.chat
    args = _start_args(call)
    if isinstance(chat, GroupChat):
        target, kind = chat.group_id, CanisterKind.GROUP
    elif isinstance(chat, ChannelChat):
        target, kind = chat.community_id, CanisterKind.COMMUNITY
        args = {"channel_id": chat.channel_id, **args}
    elif isinstance(chat, DirectChat):
        target, kind = chat.other(call.started_by), CanisterKind.USER
        # Only the user canister takes an avatar, and only a truthy one (as the TS bridge did).
        args["initiator_avatar_id"] = call.initiator.avatar_id or None
    else:  # pragma: no cover - Chat is a closed union
        raise TypeError(f"unknown chat {chat!r}")
    return [_notification(call, seq=first_seq, now=now, kind=NotificationKind.START,
                          canister_kind=kind, canister_id=target, args=args)]


def plan_end(call: Call, *, first_seq: int, now: float) -> list[Notification]:
    """The end notification(s): one for a group or channel, two for a direct chat."""
    chat = call.chat
    if isinstance(chat, GroupChat):
        return [_notification(call, seq=first_seq, now=now, kind=NotificationKind.END,
                              canister_kind=CanisterKind.GROUP, canister_id=chat.group_id,
                              args={"message_id": call.message_id})]
    if isinstance(chat, ChannelChat):
        return [_notification(call, seq=first_seq, now=now, kind=NotificationKind.END,
                              canister_kind=CanisterKind.COMMUNITY, canister_id=chat.community_id,
                              args={"channel_id": chat.channel_id, "message_id": call.message_id})]
    if isinstance(chat, DirectChat):
        # The starter's canister first, then the recipient's; each names the other party.
        first = call.started_by if call.started_by in chat.users else chat.users[0]
        second = chat.other(first)
        return [
            _notification(call, seq=first_seq + i, now=now, kind=NotificationKind.END,
                          canister_kind=CanisterKind.USER, canister_id=owner,
                          args={"user_id": other, "message_id": call.message_id})
            for i, (owner, other) in enumerate(((first, second), (second, first)))
        ]
    raise TypeError(f"unknown chat {chat!r}")  # pragma: no cover


def decline_chat_id(call: Call, user_id: str) -> dict[str, Any]:
    """The chat as `video_call_declined`'s `chat_id` variant, seen from the decliner."""
    chat = call.chat
    if isinstance(chat, GroupChat):
        return {"Group": chat.group_id}
    if isinstance(chat, ChannelChat):
        return {"Channel": [chat.community_id, chat.channel_id]}
    return {"Direct": chat.other(user_id)}


def plan_decline(call: Call, *, user_id: str, local_user_index: str, first_seq: int,
                 now: float) -> list[Notification]:
    """A group or channel member declined: their local user index dismisses the ring elsewhere."""
    return [Notification(
        seq=first_seq, message_id=call.message_id, room_name=call.room_name,
        kind=NotificationKind.DECLINED, canister_kind=CanisterKind.LOCAL_USER_INDEX,
        canister_id=local_user_index, method=DECLINED_METHOD,
        args={"user_id": user_id, "chat_id": decline_chat_id(call, user_id), "message_id": call.message_id},
        created_at=now,
    )]
