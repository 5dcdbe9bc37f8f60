"""Prometheus metrics for one bridge: its own registry (tests build many apps), `videobridge_` series.

Labels are low-cardinality by construction: route templates, Daily endpoint templates, fixed
outcome words. Never a room name or a user id. Every labelled family is also capped: a caller
that passes something unbounded by mistake ends up in an `other` series, not in a memory leak.

"Current value" gauges (tracked calls, outbox depth and age, presence age) are computed at scrape
time from callbacks, so nothing on the request path has to keep them up to date.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, Info, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

import videobridge
from videobridge.metrics_ops import OpsMetrics
from videobridge.models import CallState, NotificationKind

PREFIX = "videobridge"
# The join endpoint answers in well under a millisecond when warm; a Daily round trip is ~100 ms.
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DAILY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WEBHOOK_VERDICTS = ("accepted", "duplicate", "bad_signature", "stale", "probe", "ignored", "disabled", "malformed")
NOTIFICATION_OUTCOMES = ("success", "error", "rejected", "skipped", "retry", "cancelled")
POLL_OUTCOMES = ("ok", "error")
HTTP_METHODS = frozenset({"GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE", "PATCH"})
RATE_LIMITED = frozenset({"rate_limited", "429"})
OVERFLOW = "other"
MAX_SERIES_PER_FAMILY = 64

log = structlog.get_logger("videobridge.metrics")

CallCounts = Callable[[], Mapping[str, int]]
Number = Callable[[], "float | int | None"]


class _Children:
    """Pre-bound label children of one metric, looked up by a tuple (one dict hit per event)."""

    __slots__ = ("_children", "_limit", "_metric", "_warned")

    def __init__(self, metric: Any, limit: int = MAX_SERIES_PER_FAMILY) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}
        self._limit = limit
        self._warned = False

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        return child if child is not None else self._bind(values)

    def _bind(self, values: tuple[str, ...]) -> Any:
        if len(self._children) >= self._limit:
            if not self._warned:
                self._warned = True
                log.warning("metric_label_overflow", metric=getattr(self._metric, "_name", "?"), labels=list(values))
            values = (OVERFLOW,) * len(values)
            if values in self._children:
                return self._children[values]
        child = self._metric.labels(*values)
        self._children[values] = child
        return child


class _ProcessCollector(ProcessCollector):
    """videobridge_process_* (cpu, rss, fds, start time), also under the unit's ProcSubset=pid.

    prometheus_client reads the boot time from /proc/stat and exports nothing without it, but
    ProcSubset=pid hides /proc/stat; CLOCK_BOOTTIME gives the same number.
    """

    def _boot_time(self) -> float:
        try:
            return float(super()._boot_time() or 0.0)  # type: ignore[no-untyped-call]
        except OSError:
            return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


class _ScrapeTimeGauges:
    """A collector whose gauges are read from callbacks at scrape time."""

    def __init__(self) -> None:
        self.calls: CallCounts | None = None
        self.outbox_depth: Number | None = None
        self.outbox_age: Number | None = None
        self.poll_age: Number | None = None

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        calls, depth, age, poll_age = self._families()
        # Every known state is always present (0 included), so dashboards never see gaps.
        states = dict.fromkeys((s.value for s in CallState), 0)
        states.update(_read(self.calls) or {})
        for state, count in states.items():
            calls.add_metric([state], count)
        depth.add_metric([], _read(self.outbox_depth) or 0)
        age.add_metric([], _read(self.outbox_age) or 0.0)
        # Before the first successful poll there is no age: the series is absent, not 0 or NaN.
        seconds = _read(self.poll_age)
        if seconds is not None:
            poll_age.add_metric([], seconds)
        return iter((calls, depth, age, poll_age))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(f"{PREFIX}_calls_tracked", "Calls in the state file, by state.", labels=["state"]),
            GaugeMetricFamily(f"{PREFIX}_outbox_depth", "Notifications waiting to reach OpenChat."),
            GaugeMetricFamily(f"{PREFIX}_outbox_oldest_age_seconds", "Age of the oldest queued notification."),
            GaugeMetricFamily(
                f"{PREFIX}_presence_last_success_age_seconds", "Seconds since the last good presence poll."
            ),
        )


def _read(source: Callable[[], Any] | None) -> Any:
    if source is None:
        return None
    try:
        value = source()
    except Exception as exc:  # a broken callback must not break the whole scrape
        log.warning("metrics_source_failed", source=getattr(source, "__name__", repr(source)), error=repr(exc))
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _package_version() -> str:
    try:
        return importlib.metadata.version("videobridge")
    except importlib.metadata.PackageNotFoundError:  # e.g. run from a zipapp without metadata
        return str(getattr(videobridge, "__version__", "unknown"))


class Metrics:
    """All series of one bridge; also the Daily, call, outbox and poller observer."""

    def __init__(self, *, version: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = PREFIX

        self.http_requests = Counter(
            f"{p}_http_requests", "HTTP requests served.", ["route", "method", "status_class"], registry=r
        )
        self.http_duration = Histogram(
            f"{p}_http_request_duration_seconds", "Time to answer an HTTP request.", ["route"],
            buckets=HTTP_BUCKETS, registry=r,
        )  # fmt: skip
        self.daily_requests = Counter(
            f"{p}_daily_requests", "Daily REST calls (after retries).", ["endpoint", "outcome"], registry=r
        )
        self.daily_duration = Histogram(
            f"{p}_daily_request_duration_seconds", "Daily REST call time, retries included.", ["endpoint"],
            buckets=DAILY_BUCKETS, registry=r,
        )  # fmt: skip
        self.daily_retries = Counter(
            f"{p}_daily_retries", "Daily REST attempts retried.", ["endpoint", "reason"], registry=r
        )
        self.daily_rate_limited = Counter(f"{p}_daily_rate_limited", "Daily calls that ended rate limited.", registry=r)
        self.webhook_events = Counter(f"{p}_webhook_events", "Daily webhook deliveries.", ["verdict"], registry=r)
        self.calls_started = Counter(f"{p}_calls_started", "Calls started (Daily room created).", registry=r)
        self.calls_ended = Counter(f"{p}_calls_ended", "Calls ended, by why.", ["reason"], registry=r)
        self.notifications = Counter(
            f"{p}_notifications", "OpenChat notifications settled or retried.", ["kind", "outcome"], registry=r
        )
        self.presence_polls = Counter(f"{p}_presence_polls", "Daily presence polls.", ["outcome"], registry=r)
        Info(f"{p}_build", "Version of the running bridge.", registry=r).info(
            {"version": version or _package_version(), "python": platform.python_version()}
        )
        _ProcessCollector(namespace=p, registry=r)
        self._gauges = _ScrapeTimeGauges()
        r.register(self._gauges)
        self.ops = OpsMetrics(r, p)  # readiness, webhook state, stuck starts, lease (alerting)

        self._http_count = _Children(self.http_requests)
        self._http_time = _Children(self.http_duration)
        self._daily_count = _Children(self.daily_requests)
        self._daily_time = _Children(self.daily_duration)
        self._daily_retry = _Children(self.daily_retries)
        self._webhook = _Children(self.webhook_events)
        self._ended = _Children(self.calls_ended)
        self._notified = _Children(self.notifications)
        self._polls = _Children(self.presence_polls)
        # Known label values exist from the start at 0, so rate() and alerts see them at once.
        for verdict in WEBHOOK_VERDICTS:
            self._webhook(verdict)
        for kind in NotificationKind:
            for outcome in NOTIFICATION_OUTCOMES:
                self._notified(kind.value, outcome)
        for outcome in POLL_OUTCOMES:
            self._polls(outcome)

    # -- scrape-time sources -----------------------------------------------------------------

    def set_state_source(
        self,
        calls: CallCounts | None = None,
        *,
        outbox_depth: Number | None = None,
        outbox_age: Number | None = None,
        poll_age: Number | None = None,
    ) -> None:
        """Callables read at each scrape: calls by state, outbox length, oldest-entry age (s),
        seconds since the last good presence poll (None = never). Omitted ones stay as they were."""
        g = self._gauges
        g.calls = calls if calls is not None else g.calls
        g.outbox_depth = outbox_depth if outbox_depth is not None else g.outbox_depth
        g.outbox_age = outbox_age if outbox_age is not None else g.outbox_age
        g.poll_age = poll_age if poll_age is not None else g.poll_age

    # -- HTTP (called by the middleware once per request) ------------------------------------

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        """`route` is the route template (or "unmatched"), never the raw path."""
        if method not in HTTP_METHODS:
            method = OVERFLOW
        self._http_count(route, method, _STATUS_CLASS.get(status // 100, OVERFLOW)).inc()
        self._http_time(route).observe(seconds)

    # -- Daily client (DailyObserver) --------------------------------------------------------

    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
        self._daily_count(endpoint, outcome).inc()
        self._daily_time(endpoint).observe(seconds)
        if outcome in RATE_LIMITED:
            self.daily_rate_limited.inc()

    def retried(self, endpoint: str, reason: str) -> None:
        self._daily_retry(endpoint, reason).inc()

    # -- webhooks, calls (CallObserver), outbox (OutboxObserver), poller (PollObserver) --------

    def webhook_event(self, verdict: str) -> None:
        self._webhook(str(verdict)).inc()

    def call_started(self) -> None:
        self.calls_started.inc()

    def call_ended(self, reason: str) -> None:
        self._ended(reason).inc()

    def notification_done(self, kind: str, outcome: str) -> None:
        self._notified(str(kind), outcome).inc()

    def poll_done(self, outcome: str) -> None:
        self._polls(outcome).inc()

    # -- exposition --------------------------------------------------------------------------

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition body and its content type (Prometheus text, or OpenMetrics if asked)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    async def handle_metrics(self, request: web.Request) -> web.Response:
        """aiohttp handler for GET /metrics."""
        body, content_type = self.render(",".join(request.headers.getall("Accept", [])))
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
