"""Series for operators' alerts and dashboards: readiness, the webhook's state, stuck starts, the lease.

Part of `Metrics` (same registry, same `videobridge_` prefix). Every series exists from the first
scrape with a value (0 included), so `contrib/prometheus/videobridge-rules.yml` can rely on it:
- `_ready` mirrors GET /readyz (1 ready, 0 not); `_leader` is 1 on the instance running the
  poller and the outbox (always, on the file store);
- `_webhook_state{state}` is 1 for the state the last check saw (ACTIVE, FAILED, ... or `unknown`
  before the first check, `missing` with none registered, `disabled` without DAILY_HOOK_HMAC);
- `_calls_starting_oldest_age_seconds` against `_start_grace_seconds` finds starts nobody ends;
- `_leader_changes_total` counts store lease hand-overs: always 0 on the file store (one process
  owns the state file), it only moves on a shared store with a leader lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from videobridge.models import Call, CallState, CallType

WEBHOOK_STATES = ("ACTIVE", "FAILED", "INACTIVE", "STOPPED", "missing", "unknown", "disabled")
WEBHOOK_CHECK_OUTCOMES = ("ok", "error")
WEBHOOK_REACTIVATION_OUTCOMES = ("ok", "failed")
OTHER = "other"


class _OpsGauges:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ready: Callable[[], bool] | None = None
        self.leading: Callable[[], bool] | None = None
        self.webhook: Callable[[], tuple[str, int]] | None = None  # (state, failedCount)
        self.calls: Callable[[], Mapping[str, Call]] | None = None
        self.start_grace: float = 0.0
        self.clock: Callable[[], float] = time.time

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        ready, leader, hook_state, hook_failed, by_type, starting_age, grace = self._families()
        ready.add_metric([], 1.0 if _safe(self.ready, False) else 0.0)
        leader.add_metric([], 1.0 if _safe(self.leading, False) else 0.0)
        state, failed = _safe(self.webhook, ("unknown", 0))
        states = dict.fromkeys(WEBHOOK_STATES, 0)
        states[state if state in states else OTHER] = 1
        for name, value in states.items():
            hook_state.add_metric([name], value)
        hook_failed.add_metric([], failed)
        calls = _safe(self.calls, {})
        types = dict.fromkeys((t.value for t in CallType), 0)
        oldest: float | None = None
        for call in calls.values():
            types[call.call_type.value] = types.get(call.call_type.value, 0) + 1
            if call.state is CallState.STARTING:
                oldest = call.created_at if oldest is None else min(oldest, call.created_at)
        for call_type, count in types.items():
            by_type.add_metric([call_type], count)
        starting_age.add_metric([], 0.0 if oldest is None else max(0.0, self.clock() - oldest))
        grace.add_metric([], self.start_grace)
        return iter((ready, leader, hook_state, hook_failed, by_type, starting_age, grace))

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        p = self.prefix
        return (
            GaugeMetricFamily(f"{p}_ready", "1 when GET /readyz answers ready, else 0."),
            GaugeMetricFamily(f"{p}_leader", "1 while this instance runs the presence poller and the outbox."),
            GaugeMetricFamily(f"{p}_webhook_state", "1 for the Daily webhook state the last check saw.",
                              labels=["state"]),
            GaugeMetricFamily(f"{p}_webhook_failed_count", "Daily's failedCount for the webhook at the last check."),
            GaugeMetricFamily(f"{p}_calls_by_type", "Tracked calls, by call type.", labels=["call_type"]),
            GaugeMetricFamily(f"{p}_calls_starting_oldest_age_seconds",
                              "Age of the oldest call still in state starting (0 when none)."),
            GaugeMetricFamily(f"{p}_start_grace_seconds", "VIDEOBRIDGE_START_GRACE: how long a start may stay unseen."),
        )


def _safe(source: Callable[[], Any] | None, default: Any) -> Any:
    if source is None:
        return default
    try:
        return source()
    except Exception:
        return default


class OpsMetrics:
    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.webhook_checks = Counter(f"{prefix}_webhook_checks", "Checks of the Daily webhook's state.",
                                      ["outcome"], registry=registry)
        self.webhook_reactivations = Counter(
            f"{prefix}_webhook_reactivations", "FAILED webhooks the bridge reactivated.", ["outcome"], registry=registry
        )
        self.leader_changes = Counter(
            f"{prefix}_leader_changes", "Store leader lease hand-overs (0 on the file store).", registry=registry
        )
        for outcome in WEBHOOK_CHECK_OUTCOMES:
            self.webhook_checks.labels(outcome)
        for outcome in WEBHOOK_REACTIVATION_OUTCOMES:
            self.webhook_reactivations.labels(outcome)
        self._gauges = _OpsGauges(prefix)
        registry.register(self._gauges)

    def set_sources(self, *, ready: Callable[[], bool], webhook: Callable[[], tuple[str, int]],
                    calls: Callable[[], Mapping[str, Call]], start_grace: float,
                    clock: Callable[[], float] = time.time, leading: Callable[[], bool] | None = None) -> None:
        g = self._gauges
        g.ready, g.webhook, g.calls, g.start_grace, g.clock = ready, webhook, calls, start_grace, clock
        g.leading = leading

    # WebhookObserver
    def webhook_checked(self, outcome: str) -> None:
        self.webhook_checks.labels(outcome if outcome in WEBHOOK_CHECK_OUTCOMES else OTHER).inc()

    def webhook_reactivated(self, outcome: str) -> None:
        self.webhook_reactivations.labels(outcome if outcome in WEBHOOK_REACTIVATION_OUTCOMES else OTHER).inc()

    def leader_changed(self) -> None:
        self.leader_changes.inc()
