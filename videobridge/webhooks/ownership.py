"""Is the Daily webhook this bridge's, and putting it back when Daily stopped it.

Shared by `videobridge webhook status|reactivate` and the daemon's self-heal
(`videobridge.webhooks.monitor`). Light on purpose (the CLI imports it for --help): no aiohttp.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from videobridge.daily.models import Webhook

HOOK_PATH = "/room/hook"
REACTIVATE_DEADLINE = 20.0  # Daily probes the URL before it answers


class WebhookApi(Protocol):
    async def list_webhooks(self, *, deadline: float | None = None) -> list[Webhook]: ...
    async def update_webhook(self, uuid: str, *, deadline: float | None = None, **fields: Any) -> Webhook: ...


def hmac_matches(hook: Webhook, secret: bytes | None) -> bool | None:
    """Whether Daily signs with `secret` (our DAILY_HOOK_HMAC); None when either side is unknown."""
    if not hook.hmac or not secret:
        return None
    try:
        theirs = base64.b64decode(hook.hmac, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(theirs, secret)


def points_here(hook: Webhook, secret: bytes | None) -> bool:
    """Daily's webhook is this bridge's: it signs with our secret (or, when Daily does not show
    the secret, its URL ends in /room/hook). A domain has one webhook; never touch someone else's."""
    matches = hmac_matches(hook, secret)
    if matches is not None:
        return matches
    return urlsplit(hook.url).path.rstrip("/").endswith(HOOK_PATH)


async def reactivate(daily: WebhookApi, hook: Webhook, *, deadline: float = REACTIVATE_DEADLINE) -> Webhook:
    """Re-enable a stopped webhook: same URL, Daily probes it and answers ACTIVE on a 200."""
    return await daily.update_webhook(hook.uuid, url=hook.url, deadline=deadline)
