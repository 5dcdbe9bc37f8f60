"""The handful of error classes that mean something to a caller.

HTTP handlers map `RequestError` subclasses to JSON answers; the CLI maps everything to one
line and an exit status. Messages never carry secrets, JWTs or meeting tokens.
"""

from __future__ import annotations


class VideoBridgeError(Exception):
    """Base class: something the bridge can explain in one line."""


class ConfigError(VideoBridgeError):
    """A setting is missing or malformed (exit status 2)."""


class StateError(VideoBridgeError):
    """The state file cannot be used."""


class StateLocked(StateError):
    """Another process (a running `serve`) owns the state file."""


class RequestError(VideoBridgeError):
    """A request the bridge refuses or cannot serve; carries the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequest(RequestError):
    status = 400


class NoMeetingToJoin(BadRequest):
    """A join with no call in progress: the front end shows "no meeting to join"."""

    def __init__(self) -> None:
        super().__init__("no meeting in progress to join")


class AuthError(RequestError):
    status = 401


class UpstreamError(RequestError):
    """Daily failed us: 502 when it answered badly, 503 when it could not be reached."""

    status = 502


class NoCallInProgress(RequestError):
    """Decline or leave with no tracked call in the token's chat."""

    status = 404

    def __init__(self) -> None:
        super().__init__("No call in progress")


class Conflict(RequestError):
    """The request does not fit the call as it is now (another call, or who is in the room)."""

    status = 409
