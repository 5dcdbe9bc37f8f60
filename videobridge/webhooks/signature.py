"""Daily webhooks: signature check over the raw body, replay window, de-duplication.

Verification is pure and synchronous (no I/O) so the handler can answer Daily within its few
seconds; the call service does the work after the answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from videobridge.daily.protocol import EVENT_TYPES

MAX_BODY = 64 * 1024
# Daily retries a failed delivery for up to ~15 min and does not say whether a retry is signed
# anew; accept signed events up to 20 min old (ids are de-duplicated), at most 5 min ahead.
WINDOW_SECONDS = 300
PAST_WINDOW_SECONDS = 1200
HANDLED = frozenset(EVENT_TYPES)
PROBE = {"test": "test"}


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    PROBE = "probe"
    IGNORED = "ignored"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"
    MALFORMED = "malformed"
    DISABLED = "disabled"

    @property
    def http_status(self) -> int:
        return {Verdict.BAD_SIGNATURE: 401, Verdict.STALE: 401, Verdict.MALFORMED: 400,
                Verdict.DISABLED: 503}.get(self, 200)


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    type: str
    room: str | None
    payload: dict[str, Any]


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """Daily's recipe: base64(HMAC-SHA256(secret, timestamp + "." + raw body))."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def parse_timestamp(value: str | None) -> float | None:
    """Daily does not document the unit: seconds or milliseconds, told apart by magnitude."""
    if not value or len(value) > 20:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return number / 1000.0 if number > 1e11 else number


def is_probe(body: bytes) -> bool:
    if len(body) > 64:
        return False
    try:
        return bool(json.loads(body) == PROBE)
    except (ValueError, UnicodeDecodeError):
        return False


class WebhookVerifier:
    def __init__(self, secret: bytes | None, *, window: float = WINDOW_SECONDS,
                 past_window: float = PAST_WINDOW_SECONDS,
                 clock: Callable[[], float] = time.time, remember: int = 10_000) -> None:
        self._secret = secret
        self._window = window
        self._past_window = past_window
        self._clock = clock
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._secret is not None

    def check(self, body: bytes, timestamp: str | None, signature: str | None) -> tuple[Verdict, WebhookEvent | None]:
        if is_probe(body):
            return Verdict.PROBE, None
        if self._secret is None:
            return Verdict.DISABLED, None
        ts = parse_timestamp(timestamp)
        expected = sign(self._secret, timestamp or "", body)
        if ts is None or not signature or not hmac.compare_digest(expected.encode(), signature.encode()):
            return Verdict.BAD_SIGNATURE, None
        age = self._clock() - ts
        if age > self._past_window or -age > self._window:
            return Verdict.STALE, None
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return Verdict.MALFORMED, None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return Verdict.MALFORMED, None
        raw_payload = data.get("payload")
        payload: dict[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
        event_id = data.get("id") if isinstance(data.get("id"), str) else None
        room = payload.get("room") if isinstance(payload.get("room"), str) else None
        if event_id is not None:
            if event_id in self._seen:
                return Verdict.DUPLICATE, None
            self._seen[event_id] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        event = WebhookEvent(id=event_id or "", type=data["type"], room=room, payload=payload)
        if event.type not in HANDLED or room is None:
            return Verdict.IGNORED, event
        return Verdict.ACCEPTED, event
