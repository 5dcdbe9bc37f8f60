"""Daily.co REST client, meeting tokens and the values they exchange.

Names are imported on first use (PEP 562), so `videobridge.daily.errors` and `.protocol` stay
light for the CLI's quick commands: importing this package does not import aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME = {
    "DEFAULT_BASE_URL": "client", "DailyClient": "client",
    "DailyError": "errors", "DailyNotFound": "errors", "DailyRateLimited": "errors", "DailyRejected": "errors",
    "DailyRoomExists": "errors", "DailyUnavailable": "errors",
    "DomainInfo": "models", "Meeting": "models", "Participant": "models", "Room": "models", "Webhook": "models",
    "DailyObserver": "retry", "RetryPolicy": "retry",
    "TokenGrant": "tokens", "TokenMinter": "tokens", "rest_token_properties": "tokens",
    "self_signed_token": "tokens",
}
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


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
