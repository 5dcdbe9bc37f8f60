"""Daily reachability as seen by every client request (feeds /readyz and metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

UNREACHABLE_AFTER = 60.0  # seconds of nothing but transport errors/5xx before /readyz fails


class DailyHealth:
    """A DailyObserver that remembers when Daily last answered and forwards to metrics."""

    def __init__(self, *, forward: Any | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._forward = forward
        self._monotonic = monotonic
        self.failing_since: float | None = None

    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
        if outcome == "unavailable":
            if self.failing_since is None:
                self.failing_since = self._monotonic()
        else:  # any answer, even a 404 or 429, means Daily is there
            self.failing_since = None
        if self._forward is not None:
            self._forward.request_done(endpoint, outcome, seconds)

    def retried(self, endpoint: str, reason: str) -> None:
        if self._forward is not None:
            self._forward.retried(endpoint, reason)

    def reachable(self) -> bool:
        return self.failing_since is None or self._monotonic() - self.failing_since < UNREACHABLE_AFTER
