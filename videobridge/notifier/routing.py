"""Which canister hears about a call, and with what arguments (SPEC §6, openchat.md §3).

Group   -> the group canister.
Channel -> the community canister, with `channel_id` (nat32, already reduced mod 2^32).
Direct  -> start on the *other* user's canister (the recipient, named as `user_id`; `initiator`
           is the starter), end on *both* users' canisters, each naming its owner as `user_id`
           and the other party as `them` (SPEC §9). A user's canister is `user_canister_id`:
           a MultiUser canister holds several users (#9401).
Every start carries `audio_only` (true for an Audio call, sent as `call_type` Default; else none).

Pure functions: the outbox persists what they return and delivers `wire_form` of it in `seq` order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from videobridge.chats import ChannelChat, DirectChat, GroupChat
from videobridge.models import Call, CallType, CanisterKind, Notification, NotificationKind
from videobridge.notifier.candid import DECLINED_METHOD, END_METHOD, START_METHOD
from videobridge.principal import InvalidPrincipal
from videobridge.userid import user_canister_id

__all__ = ["DECLINED_METHOD", "decline_chat_id", "plan_decline", "plan_end", "plan_start", "wire_form"]


def _start_args(call: Call) -> dict[str, Any]:
    audio = call.call_type is CallType.AUDIO
    return {
        "message_id": call.message_id,
        "initiator": call.started_by,
        "initiator_username": call.initiator.username,
        # The front end always sends a display name, but it may arrive mangled or empty.
        "initiator_display_name": call.initiator.display_name or None,
        "max_duration": call.max_duration_ms,
        # The canisters' VideoCallType is Default | Broadcast: an Audio call is Default + audio_only.
        "call_type": CallType.DEFAULT.value if audio else call.call_type.value,
        "audio_only": True if audio else None,
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
        callee = chat.other(call.started_by)
        target, kind = user_canister_id(callee), CanisterKind.USER
        args = {"user_id": callee, **args}  # whose copy of the chat: a MultiUser canister has several
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
        # The starter's canister first, then the recipient's; each names its owner and the other.
        first = call.started_by if call.started_by in chat.users else chat.users[0]
        second = chat.other(first)
        return [
            _notification(call, seq=first_seq + i, now=now, kind=NotificationKind.END,
                          canister_kind=CanisterKind.USER, canister_id=user_canister_id(owner),
                          args={"user_id": owner, "them": other, "message_id": call.message_id})
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


def wire_form(note: Notification, *, legacy_user_end: bool) -> Notification:
    """What is sent for a stored notification, whichever version queued it (never raises).

    A start queued before audio calls lacks `audio_only` (none); a user-canister start queued
    before #9401 lacks `user_id` (it went to the callee's id, so that is the callee); a user end
    queued before #9401 is `{user_id: the other user}` on the owner's id. User notifications go
    to the user's canister. `legacy_user_end` sends user ends in the pre-#9401 shape.
    """
    args = dict(note.args)
    canister_id = note.canister_id
    if note.canister_kind is CanisterKind.USER:
        try:
            canister_id = user_canister_id(note.canister_id)
        except InvalidPrincipal:
            pass  # the notifier refuses it without sending
    if note.method == START_METHOD and note.canister_kind in (
            CanisterKind.USER, CanisterKind.GROUP, CanisterKind.COMMUNITY):
        args.setdefault("audio_only", None)
        if note.canister_kind is CanisterKind.USER:
            args.setdefault("user_id", note.canister_id)
    elif note.method == END_METHOD and note.canister_kind is CanisterKind.USER:
        if "them" not in args and "user_id" in args:
            args = {"user_id": note.canister_id, "them": args["user_id"], "message_id": args.get("message_id")}
        if legacy_user_end and "them" in args:
            args = {"user_id": args["them"], "message_id": args.get("message_id")}
    if args == note.args and canister_id == note.canister_id:
        return note
    return replace(note, canister_id=canister_id, args=args)
