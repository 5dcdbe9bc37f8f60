"""Capped exponential backoff with jitter, shared by the outbox and the presence poller."""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_DOUBLINGS = 30  # keeps `factor ** n` finite however long a failure lasts


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 300.0
    factor: float = 2.0

    def cap(self, attempt: int) -> float:
        """The longest wait before retry `attempt` (1 for the first retry)."""
        return min(self.maximum, self.initial * self.factor ** min(MAX_DOUBLINGS, max(0, attempt - 1)))

    def delay(self, attempt: int) -> float:
        cap = self.cap(attempt)
        return random.uniform(cap / 2, cap)  # "equal jitter": never retries in lockstep, never zero
