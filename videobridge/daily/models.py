"""Frozen values parsed from Daily REST answers.

Daily mixes conventions: rooms are snake_case, presence is camelCase (`userId`, `joinTime`),
webhooks are camelCase and their `state`/timestamps were once numeric. Parse both spellings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Older webhook docs used numeric states.
_NUMERIC_WEBHOOK_STATES = {0: "FAILED", 1: "ACTIVE", 2: "STOPPED"}


def _pick(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in data:
            return data[key]
    return None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _moment(value: Any) -> str | None:
    """ISO text as given; epoch numbers (old docs) become ISO-8601 UTC."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e11 else value  # tolerate milliseconds
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainInfo:
    domain_name: str
    domain_id: str
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DomainInfo:
        return cls(
            domain_name=str(data.get("domain_name", "")),
            domain_id=str(data.get("domain_id", "")),
            config=dict(data.get("config") or {}),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Room:
    name: str
    id: str
    url: str
    privacy: str
    created_at: str
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    exp: int | None = None  # copied from config for convenience

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Room:
        config = dict(data.get("config") or {})
        return cls(
            name=str(data.get("name", "")),
            id=str(data.get("id", "")),
            url=str(data.get("url", "")),
            privacy=str(data.get("privacy", "public")),
            created_at=str(data.get("created_at", "")),
            config=config,
            exp=_opt_int(config.get("exp")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Participant:
    id: str  # Daily's participant (session) id
    room: str
    user_id: str | None  # the meeting token's user_id; absent for token-less joins
    user_name: str | None
    join_time: str | None  # ISO-8601
    duration: float  # seconds in the call so far
    meeting_id: str | None = None  # `mtgSessionId`: the meeting session the participant is in

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, room: str | None = None) -> Participant:
        duration = _pick(data, "duration")
        return cls(
            id=str(_pick(data, "id", "session_id", "participant_id") or ""),
            room=str(_pick(data, "room", "room_name") or room or ""),
            user_id=_opt_str(_pick(data, "userId", "user_id")),
            user_name=_opt_str(_pick(data, "userName", "user_name")),
            join_time=_moment(_pick(data, "joinTime", "join_time", "joined_at")),
            duration=float(duration) if isinstance(duration, (int, float)) else 0.0,
            meeting_id=_opt_str(_pick(data, "mtgSessionId")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    uuid: str
    url: str
    state: str  # "ACTIVE", "FAILED", "INACTIVE", ...
    failed_count: int
    event_types: tuple[str, ...]
    retry_type: str
    hmac: str | None = field(default=None, repr=False)  # the shared secret: keep out of logs
    last_moment_pushed: str | None = None

    @property
    def active(self) -> bool:
        return self.state == "ACTIVE"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Webhook:
        state = _pick(data, "state")
        if isinstance(state, (int, float)) and not isinstance(state, bool):
            state = _NUMERIC_WEBHOOK_STATES.get(int(state), str(state))
        events = _pick(data, "eventTypes", "event_types") or ()
        return cls(
            uuid=str(_pick(data, "uuid", "id") or ""),
            url=str(_pick(data, "url") or ""),
            state=str(state or "UNKNOWN").upper(),
            failed_count=_opt_int(_pick(data, "failedCount", "failed_count")) or 0,
            event_types=tuple(str(e) for e in events) if isinstance(events, (list, tuple)) else (),
            retry_type=str(_pick(data, "retryType", "retry_type") or "circuit-breaker"),
            hmac=_opt_str(_pick(data, "hmac")),
            last_moment_pushed=_moment(_pick(data, "lastMomentPushed", "last_moment_pushed")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Meeting:
    """A meeting session (GET /meetings/:meeting): one stretch of people in a room together."""

    id: str
    room: str
    start_time: int | None  # unix seconds, Daily's clock (~15 s granularity)
    duration: int | None
    ongoing: bool  # anyone in the room now
    max_participants: int | None  # the most present at one time

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Meeting:
        return cls(
            id=str(data.get("id", "")),
            room=str(data.get("room", "")),
            start_time=_opt_int(data.get("start_time")),
            duration=_opt_int(data.get("duration")),
            ongoing=data.get("ongoing") is True,
            max_participants=_opt_int(data.get("max_participants")),
        )
