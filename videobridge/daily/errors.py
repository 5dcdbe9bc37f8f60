"""Errors raised by the Daily REST client.

Every error names a low-cardinality endpoint template ("GET /rooms/:name"), never a room name,
token or API key, so it can go straight into logs and metric labels. Imports nothing but
`videobridge.errors` (no aiohttp): the module is cheap, though the `videobridge.daily` package
__init__ pulls in the client.
"""

from __future__ import annotations

from videobridge.errors import VideoBridgeError


class DailyError(VideoBridgeError):
    """A Daily REST call failed. `str()` is a one-line summary without secrets."""

    outcome = "error"  # metric label for this failure class

    def __init__(
        self,
        *,
        endpoint: str,
        status: int | None = None,
        error: str | None = None,
        info: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.endpoint = endpoint
        self.status = status
        self.error = error
        self.info = info
        self.attempts = attempts
        super().__init__(self._summary())

    def __str__(self) -> str:  # computed late: `attempts` is filled in after the retry loop
        return self._summary()

    def _summary(self) -> str:
        parts = [f"Daily {self.endpoint} failed"]
        if self.status is not None:
            parts.append(f"with HTTP {self.status}")
        if self.error:
            parts.append(f"({self.error})")
        text = " ".join(parts)
        if self.info:
            text += f": {self.info}"
        if self.attempts > 1:
            text += f" [after {self.attempts} attempts]"
        return text

    def __reduce__(self) -> tuple[object, ...]:  # keyword-only __init__ needs help to pickle
        return (_rebuild, (type(self), self.endpoint, self.status, self.error, self.info, self.attempts))


def _rebuild(
    cls: type[DailyError], endpoint: str, status: int | None, error: str | None, info: str | None, attempts: int
) -> DailyError:
    return cls(endpoint=endpoint, status=status, error=error, info=info, attempts=attempts)


class DailyNotFound(DailyError):
    """HTTP 404: the room (or webhook) does not exist, or its room has expired."""

    outcome = "not_found"


class DailyRoomExists(DailyError):
    """POST /rooms answered 400 and GET /rooms/:name shows the name is taken; `room` is that room."""

    outcome = "exists"

    def __init__(self, *, endpoint: str, status: int | None = None, error: str | None = None,
                 info: str | None = None, attempts: int = 1, room: object = None) -> None:
        super().__init__(endpoint=endpoint, status=status, error=error, info=info, attempts=attempts)
        self.room = room


class DailyRejected(DailyError):
    """Any other 4xx (bad request, bad key, forbidden): retrying will not help."""

    outcome = "rejected"


class DailyRateLimited(DailyError):
    """HTTP 429 (or our own rate limiter) still blocking when the deadline ran out."""

    outcome = "rate_limited"


class DailyUnavailable(DailyError):
    """5xx, transport failure, timeout or an unreadable answer, after retries."""

    outcome = "unavailable"
