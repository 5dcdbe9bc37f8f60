"""Retry policy for the Daily client: which failures are worth another attempt, and how long to wait.

We run our own small loop instead of `stamina`: we need full jitter, `Retry-After` capped by a
per-call deadline, and "do not sleep past the deadline" — stamina's jitter is additive, its
timeout is only checked after an attempt, and its testing switch is process-global.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

from videobridge.daily.errors import DailyError, DailyRateLimited, DailyUnavailable


class DailyObserver(Protocol):
    """Hooks for metrics. `outcome`: ok, not_found, exists, rejected, rate_limited, unavailable.
    `reason`: 429, 5xx, transport, timeout."""

    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None: ...

    def retried(self, endpoint: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial: float = 0.1  # seconds before the first retry (upper bound of the jitter window)
    cap: float = 2.0  # no single backoff longer than this (Retry-After may ask for more)

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, initial * 2**n)], n counting retries from 0."""
        ceiling = self.cap if retry_number >= 32 else min(self.cap, self.initial * (1 << retry_number))
        return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


class TransientFailure(Exception):
    """One attempt failed in a way that may succeed later (429, 5xx, transport, timeout)."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        error: str | None = None,
        info: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.error = error
        self.info = info
        self.retry_after = retry_after

    def final(self, endpoint: str, attempts: int) -> DailyError:
        """The error to raise once we stop retrying."""
        cls = DailyRateLimited if self.reason == "429" else DailyUnavailable
        return cls(endpoint=endpoint, status=self.status, error=self.error, info=self.info, attempts=attempts)
