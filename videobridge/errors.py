"""The one error hierarchy: every failure the bridge can explain in one line is a VideoBridgeError.

The edges convert them once: the HTTP middleware (`web/middleware.py`, one table from class to
status) and the CLI. Code that raises them never decides an HTTP status or an exit code.
Messages never carry secrets, JWTs or meeting tokens. `DailyError` (daily/errors.py) is a
subclass too.
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
    """A request the bridge refuses or cannot serve (the middleware picks the status by class)."""


class BadRequest(RequestError):
    """The request itself is malformed or incomplete."""


class NoMeetingToJoin(BadRequest):
    """A join with no call in progress: the front end shows "no meeting to join"."""

    def __init__(self) -> None:
        super().__init__("no meeting in progress to join")


class AuthError(RequestError):
    """No credentials, or credentials that do not verify."""


class NotFound(RequestError):
    """What the request names does not exist (an endpoint, a tracked call)."""


class NoCallInProgress(NotFound):
    """Decline or leave with no tracked call in the token's chat."""

    def __init__(self) -> None:
        super().__init__("No call in progress")


class Conflict(RequestError):
    """The request does not fit the call as it is now (another call, or who is in the room)."""


class BodyTooLarge(RequestError):
    """A request body past its endpoint's limit."""


class TryAgain(RequestError):
    """Nothing is wrong with the request, but it cannot be served right now (Daily's presence
    unreadable, a shared piece of work interrupted)."""
