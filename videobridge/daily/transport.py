"""The HTTP side of the Daily client: one session, bearer auth, client-side rate limits, a
per-attempt timeout and a per-call deadline covering retries (policy in retry.py)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import structlog
from yarl import URL

from videobridge.daily.errors import (
    DailyError,
    DailyNotFound,
    DailyRateLimited,
    DailyRejected,
    DailyUnavailable,
)
from videobridge.daily.limits import Ticket, Window, WindowLimiter
from videobridge.daily.retry import DailyObserver, RetryPolicy, TransientFailure, parse_retry_after

_INFO_LIMIT = 300  # keep error text (e.g. proxy pages) short in messages
_READ_LIMIT = 8192

_log = structlog.get_logger("videobridge.daily")


def _date_offset(value: str | None, *, sent: float, answered: float) -> tuple[float, float] | None:
    """Bounds on Daily's clock minus ours from an answer's Date header (whole seconds, so Daily's
    time was in [Date, Date + 1) somewhere between our send and the answer)."""
    if not value:
        return None
    try:
        daily = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return daily - answered, daily + 1.0 - sent


class ClockOffset:
    """Daily's wall clock minus ours, narrowed answer by answer; 0 while the clocks agree within
    what the headers can tell."""

    def __init__(self) -> None:
        self._low: float | None = None
        self._high: float | None = None

    def add(self, low: float, high: float) -> None:
        if self._low is None or self._high is None or low > self._high or high < self._low:
            self._low, self._high = low, high  # first answer, or a clock was stepped: start over
        else:
            self._low, self._high = max(self._low, low), min(self._high, high)

    @property
    def value(self) -> float | None:
        if self._low is None or self._high is None:
            return None
        if self._low <= 0.0 <= self._high:
            return 0.0
        return self._low if self._low > 0 else self._high


class DailyTransport:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        session: aiohttp.ClientSession | None,
        request_timeout: float,
        deadline: float,
        limits: Sequence[Window],
        delete_limits: Sequence[Window],
        observer: DailyObserver | None,
        retry_policy: RetryPolicy | None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        self._api_key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._request_timeout = request_timeout
        self._deadline = deadline
        self._limiter = WindowLimiter(limits, clock=monotonic, sleep=sleep)
        self._slow_limiter = WindowLimiter(delete_limits, clock=monotonic, sleep=sleep)
        self._offset = ClockOffset()
        self._observer = observer
        self._policy = retry_policy or RetryPolicy()
        self._rng = random.Random()

    def __repr__(self) -> str:  # never show the key
        return f"DailyTransport(base_url={self.base_url!r})"

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise RuntimeError("the aiohttp session given to DailyClient is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    async def call(
        self,
        method: str,
        endpoint: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
        slow: bool = False,
        shape: type | tuple[type, ...] = dict,
        reserved: Ticket | None = None,
    ) -> Any:
        """One API call with retries; parsed JSON of a 2xx answer, else a DailyError.

        `reserved`: a slow-limiter slot the caller already waited for (used by the first attempt).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        stop_at = started + (self._deadline if deadline is None else deadline)
        url = URL(self.base_url + path, encoded=True)
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self._attempt(method, endpoint, url, body, params, stop_at, slow, reserved)
                reserved = None
            except TransientFailure as failure:
                reserved = None
                delay = failure.retry_after
                if delay is None:
                    delay = self._policy.backoff(attempt - 1, self._rng)
                if loop.time() + delay >= stop_at:  # waiting would overrun the caller's deadline
                    error = failure.final(endpoint, attempt)
                    self._done(endpoint, error.outcome, loop.time() - started)
                    raise error from None
                self._retried(endpoint, failure.reason, attempt, delay)
                await asyncio.sleep(delay)
                continue
            except DailyError as error:
                reserved = None
                error.attempts = attempt
                self._done(endpoint, error.outcome, loop.time() - started)
                raise
            if not isinstance(result, shape):  # e.g. a proxy's JSON, or an API change
                odd = DailyUnavailable(endpoint=endpoint, status=200, info="unexpected answer shape", attempts=attempt)
                self._done(endpoint, odd.outcome, loop.time() - started)
                raise odd
            self._done(endpoint, "ok", loop.time() - started)
            return result

    async def _attempt(
        self,
        method: str,
        endpoint: str,
        url: URL,
        body: Any,
        params: Mapping[str, str] | None,
        stop_at: float,
        slow: bool,
        reserved: Ticket | None,
    ) -> Any:
        loop = asyncio.get_running_loop()
        tickets: list[Ticket] = [] if reserved is None else [reserved]
        try:
            try:
                async with asyncio.timeout_at(stop_at):
                    if slow and reserved is None:
                        tickets.append(await self._slow_limiter.acquire())
                    tickets.append(await self._limiter.acquire())
            except TimeoutError:
                for ticket in tickets:
                    ticket.limiter.release(ticket, sent=False)
                raise DailyRateLimited(endpoint=endpoint,
                                       info="client-side rate limit outlasted the deadline") from None
            per_attempt = min(self._request_timeout, stop_at - loop.time())
            sent = time.time()
            async with asyncio.timeout(per_attempt):
                async with self._http().request(
                    method, url, json=body, params=params, headers=self._headers, allow_redirects=False
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
                    retry_after = resp.headers.get("Retry-After")
                    offset = _date_offset(resp.headers.get("Date"), sent=sent, answered=time.time())
        except TimeoutError:
            raise TransientFailure("timeout", info=f"no answer within {per_attempt:.1f}s") from None
        except aiohttp.ClientError as exc:
            raise TransientFailure("transport", info=f"connection failed ({type(exc).__name__})") from None
        finally:
            for ticket in tickets:  # a slot is held until a full window after the answer
                ticket.limiter.release(ticket)
        if offset is not None:
            self._offset.add(*offset)
        if 200 <= status < 300:
            try:
                return json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise DailyUnavailable(endpoint=endpoint, status=status, info="answer is not JSON") from None
        error, info = self._error_fields(raw)
        if status == 429 or status >= 500:
            wait = parse_retry_after(retry_after, now=time.time())
            reason = "429" if status == 429 else "5xx"
            raise TransientFailure(reason, status=status, error=error, info=info, retry_after=wait)
        if status == 404:
            raise DailyNotFound(endpoint=endpoint, status=status, error=error, info=info)
        if 400 <= status < 500:
            raise DailyRejected(endpoint=endpoint, status=status, error=error, info=info)
        raise DailyUnavailable(endpoint=endpoint, status=status, error=error, info="unexpected HTTP status")

    @property
    def clock_offset(self) -> float | None:
        return self._offset.value

    async def reserve_slow(self) -> Ticket:
        """Wait for a slow-limiter slot now, to spend it later with `call(..., reserved=)`."""
        return await self._slow_limiter.acquire()

    def _error_fields(self, raw: bytes) -> tuple[str | None, str | None]:
        text = raw[:_READ_LIMIT].decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            error, info = data.get("error"), data.get("info")
            error = None if error is None else str(error)[:_INFO_LIMIT]
            info = None if info is None else str(info)
        else:
            error, info = None, text.strip() or None
        if info:
            # Redact before truncating: an echoing proxy must not smuggle (part of) the key into logs.
            info = info.replace(self._api_key, "[redacted]")[:_INFO_LIMIT]
        return error, info

    def _done(self, endpoint: str, outcome: str, seconds: float) -> None:
        if self._observer is not None:
            self._observer.request_done(endpoint, outcome, seconds)

    def _retried(self, endpoint: str, reason: str, attempt: int, delay: float) -> None:
        _log.info("daily_retry", endpoint=endpoint, reason=reason, attempt=attempt, delay=round(delay, 3))
        if self._observer is not None:
            self._observer.retried(endpoint, reason)
