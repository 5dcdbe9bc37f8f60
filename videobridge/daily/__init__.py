"""Daily.co REST client, meeting tokens and the values they exchange."""

from __future__ import annotations

from videobridge.daily.client import DEFAULT_BASE_URL, DailyClient
from videobridge.daily.errors import (
    DailyError,
    DailyNotFound,
    DailyRateLimited,
    DailyRejected,
    DailyRoomExists,
    DailyUnavailable,
)
from videobridge.daily.models import DomainInfo, Meeting, Participant, Room, Webhook
from videobridge.daily.retry import DailyObserver, RetryPolicy
from videobridge.daily.tokens import TokenGrant, TokenMinter, rest_token_properties, self_signed_token

__all__ = [
    "DEFAULT_BASE_URL",
    "DailyClient",
    "DailyError",
    "DailyNotFound",
    "DailyObserver",
    "DailyRateLimited",
    "DailyRejected",
    "DailyRoomExists",
    "DailyUnavailable",
    "DomainInfo",
    "Meeting",
    "Participant",
    "RetryPolicy",
    "Room",
    "TokenGrant",
    "TokenMinter",
    "Webhook",
    "rest_token_properties",
    "self_signed_token",
]
