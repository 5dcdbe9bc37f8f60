"""Daily's documented REST rate limits, enforced the strict way: at most N arrivals in any W s.

daily-api.md §2: most endpoints 20 requests/s and 100 per 5 s; DELETE /rooms/:name (and
GET /recordings) about 2/s and 50 per 30 s. Deletes count against the general budget as well
(Daily does not say they don't; counting them is the stricter reading). Over the limit: 429
`rate-limit-error`, no Retry-After (Daily documents none). The emulator's own copy of the
numbers, not the bridge's.
"""

from __future__ import annotations

import collections
import time
from collections import deque
from collections.abc import Callable

GENERAL = ((20, 1.0), (100, 5.0))
SLOW = ((2, 1.0), (50, 30.0))
SLOW_ENDPOINTS = frozenset({"DELETE /rooms/:name", "GET /recordings"})


class RateLimits:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._arrivals: dict[str, deque[float]] = {"general": deque(), "slow": deque()}
        self.limited: collections.Counter[str] = collections.Counter()  # 429s answered, by endpoint

    def admit(self, endpoint: str) -> bool:
        """Record an arrival; False (and counted) when it breaks a limit."""
        now = self._clock()
        classes = [("general", GENERAL)]
        if endpoint in SLOW_ENDPOINTS:
            classes.append(("slow", SLOW))
        for name, windows in classes:
            arrivals = self._arrivals[name]
            longest = max(w for _, w in windows)
            while arrivals and arrivals[0] <= now - longest:
                arrivals.popleft()
            for count, seconds in windows:
                if sum(1 for t in arrivals if t > now - seconds) >= count:
                    self.limited[endpoint] += 1
                    return False
        for name, _ in classes:
            self._arrivals[name].append(now)
        return True
