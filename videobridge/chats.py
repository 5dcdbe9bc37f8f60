"""OpenChat chats and their Daily room names (compatible with the original bridge).

`b64(bytes)` is standard base64 with `+`->`_`, `/`->`-` and the `=` padding stripped.
Group: "G"+b64(group); Direct: "D"+b64(a)+b64(b) with the two users sorted by their text;
Channel: "C"+b64(community)+b64(16-byte big-endian channel id mod 2^32).
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

from videobridge.daily.protocol import ROOM_NAME
from videobridge.principal import InvalidPrincipal, bytes_to_principal, principal_to_bytes

CHANNEL_ID_MODULUS = 2**32
_ROOM_RE = ROOM_NAME
# OpenChat canister ids are 10 bytes, i.e. 14 characters of unpadded base64.
CANISTER_ID_BYTES = 10
_CANISTER_B64_LEN = 14
_CHANNEL_B64_LEN = 22


class ChatKind(StrEnum):
    GROUP = "group"
    DIRECT = "direct"
    CHANNEL = "channel"


class InvalidChat(ValueError):
    """A chat id or room name that does not describe an OpenChat chat."""


@dataclass(frozen=True, slots=True)
class GroupChat:
    group_id: str

    kind = ChatKind.GROUP

    def canister_id(self) -> str:
        return self.group_id


@dataclass(frozen=True, slots=True)
class DirectChat:
    """A one-to-one chat between two users (user-canister principals, sorted by text)."""

    users: tuple[str, str]

    kind = ChatKind.DIRECT

    @classmethod
    def between(cls, a: str, b: str) -> DirectChat:
        first, second = sorted((a, b))
        return cls(users=(first, second))

    def other(self, user_id: str) -> str:
        first, second = self.users
        return second if user_id == first else first


@dataclass(frozen=True, slots=True)
class ChannelChat:
    community_id: str
    channel_id: int  # already reduced mod 2^32

    kind = ChatKind.CHANNEL

    def canister_id(self) -> str:
        return self.community_id


Chat: TypeAlias = GroupChat | DirectChat | ChannelChat


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().replace("+", "_").replace("/", "-").rstrip("=")


def _unb64(text: str) -> bytes:
    std = text.replace("_", "+").replace("-", "/")
    try:
        return base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidChat("room name is not base64") from exc


def _principal(text: object, what: str, *, canister: bool = False) -> str:
    if not isinstance(text, str):
        raise InvalidChat(f"{what} must be a principal string")
    try:
        raw = principal_to_bytes(text)
    except InvalidPrincipal as exc:
        raise InvalidChat(f"{what} is not a valid principal: {exc}") from exc
    # Direct and channel room names concatenate fixed-width canister ids: other lengths collide
    if canister and len(raw) != CANISTER_ID_BYTES:
        raise InvalidChat(f"{what} is not a canister id")
    return text


def parse_channel_id(value: object) -> int:
    """A channel id arrives as a JSON number or a decimal string; reduce it mod 2^32."""
    if isinstance(value, bool):
        raise InvalidChat("channel id must be a number or a decimal string")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdecimal() and len(value) <= 40:
        number = int(value)
    else:
        raise InvalidChat("channel id must be a number or a decimal string")
    if number < 0:
        raise InvalidChat("channel id must not be negative")
    return number % CHANNEL_ID_MODULUS


def chat_from_claim(chat_id: Any, user_id: str) -> Chat:
    """Build a chat from the JWT's externally tagged `chat_id` and the requesting user."""
    if not isinstance(chat_id, dict) or len(chat_id) != 1:
        raise InvalidChat("chat_id must be an object with exactly one of Group, Direct, Channel")
    ((tag, value),) = chat_id.items()
    if tag == "Group":
        return GroupChat(_principal(value, "chat_id.Group"))
    if tag == "Direct":
        other = _principal(value, "chat_id.Direct", canister=True)
        _principal(user_id, "user_id", canister=True)
        if other == user_id:
            raise InvalidChat("a direct chat needs two different users")
        return DirectChat.between(user_id, other)
    if tag == "Channel":
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidChat("chat_id.Channel must be [community, channel id]")
        return ChannelChat(_principal(value[0], "chat_id.Channel[0]", canister=True), parse_channel_id(value[1]))
    raise InvalidChat(f"unknown chat kind {str(tag)[:32]!r}")


@functools.lru_cache(maxsize=4096)  # pure; every join of a call asks it for the same chat
def room_name(chat: Chat) -> str:
    if isinstance(chat, GroupChat):
        return "G" + _b64(principal_to_bytes(chat.group_id))
    if isinstance(chat, DirectChat):
        first, second = chat.users
        return "D" + _b64(principal_to_bytes(first)) + _b64(principal_to_bytes(second))
    channel = chat.channel_id.to_bytes(16, "big")
    return "C" + _b64(principal_to_bytes(chat.community_id)) + _b64(channel)


def chat_from_room(name: str) -> Chat:
    """Decode a room name back into its chat (the inverse of `room_name`)."""
    if not isinstance(name, str) or not _ROOM_RE.match(name):
        raise InvalidChat("not a Daily room name")
    kind, rest = name[0], name[1:]
    try:
        if kind == "G":
            chat: Chat = GroupChat(bytes_to_principal(_unb64(rest)))
        elif kind == "D" and len(rest) == 2 * _CANISTER_B64_LEN:
            a = bytes_to_principal(_unb64(rest[:_CANISTER_B64_LEN]))
            b = bytes_to_principal(_unb64(rest[_CANISTER_B64_LEN:]))
            chat = DirectChat.between(a, b)
        elif kind == "C" and len(rest) == _CANISTER_B64_LEN + _CHANNEL_B64_LEN:
            community = bytes_to_principal(_unb64(rest[:_CANISTER_B64_LEN]))
            channel = int.from_bytes(_unb64(rest[_CANISTER_B64_LEN:]), "big")
            chat = ChannelChat(community, channel % CHANNEL_ID_MODULUS)
        else:
            raise InvalidChat("not a videobridge room name")
    except InvalidPrincipal as exc:
        raise InvalidChat(f"room name holds no valid principal: {exc}") from exc
    if room_name(chat) != name:
        raise InvalidChat("room name is not in canonical form")
    return chat


def chat_to_json(chat: Chat) -> dict[str, Any]:
    if isinstance(chat, GroupChat):
        return {"kind": "group", "group": chat.group_id}
    if isinstance(chat, DirectChat):
        return {"kind": "direct", "users": list(chat.users)}
    return {"kind": "channel", "community": chat.community_id, "channel": chat.channel_id}


def chat_from_json(data: dict[str, Any]) -> Chat:
    kind = data.get("kind")
    if kind == "group":
        return GroupChat(data["group"])
    if kind == "direct":
        a, b = data["users"]
        return DirectChat.between(a, b)
    if kind == "channel":
        return ChannelChat(data["community"], int(data["channel"]))
    raise InvalidChat(f"unknown chat kind {kind!r}")
