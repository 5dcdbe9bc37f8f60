"""Prometheus exposition: `videobridge_` series, scrape-time gauges, bounded label values."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from videobridge.metrics import HTTP_BUCKETS, MAX_SERIES_PER_FAMILY, WEBHOOK_VERDICTS, Metrics, _ProcessCollector

ROOM = re.compile(r"^[GDC][A-Za-z0-9_-]{12,}$")  # what a Daily room name looks like

SERIES = [
    "videobridge_http_requests_total", "videobridge_http_request_duration_seconds_bucket",
    "videobridge_daily_requests_total", "videobridge_daily_request_duration_seconds_bucket",
    "videobridge_daily_retries_total", "videobridge_daily_rate_limited_total", "videobridge_webhook_events_total",
    "videobridge_calls_tracked", "videobridge_calls_started_total", "videobridge_calls_ended_total",
    "videobridge_notifications_total", "videobridge_outbox_depth", "videobridge_outbox_oldest_age_seconds",
    "videobridge_presence_polls_total", "videobridge_presence_last_success_age_seconds", "videobridge_build_info",
]  # fmt: skip


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render()[0].decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def exercise(m: Metrics) -> None:
    """Drive every observer hook with realistic arguments, as the bridge does."""
    m.set_state_source(lambda: {"live": 2, "starting": 1}, outbox_depth=lambda: 4,
                       outbox_age=lambda: 12.5, poll_age=lambda: 3.0)  # fmt: skip
    m.observe_http("/room/meeting_access_token", "GET", 200, 0.0007)
    m.observe_http("/room/meeting_access_token", "GET", 401, 0.0003)
    m.observe_http("unmatched", "BREW", 404, 0.0001)
    m.request_done("POST /rooms", "ok", 0.12)
    m.request_done("DELETE /rooms/:name", "rate_limited", 2.0)
    m.retried("DELETE /rooms/:name", "429")
    m.webhook_event("accepted")
    m.webhook_event("bad_signature")
    m.call_started()
    m.call_ended("empty")
    m.notification_done("start", "success")
    m.notification_done("end", "retry")
    m.poll_done("ok")


def test_exposition_has_every_series_with_the_prefix() -> None:
    m = Metrics()
    exercise(m)
    text = m.render()[0].decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert set(SERIES) <= names
    assert all(name.startswith("videobridge_") for name in names)
    got = samples(m)
    assert got[("videobridge_http_requests_total",
                (("method", "GET"), ("route", "/room/meeting_access_token"), ("status_class", "4xx")))] == 1
    assert value(m, "videobridge_http_requests_total", route="unmatched", method="other", status_class="4xx") == 1
    assert value(m, "videobridge_daily_rate_limited_total") == 1
    assert value(m, "videobridge_daily_retries_total", endpoint="DELETE /rooms/:name", reason="429") == 1
    assert value(m, "videobridge_notifications_total", kind="end", outcome="retry") == 1
    assert value(m, "videobridge_calls_ended_total", reason="empty") == 1
    # Known label values exist at 0 before anything happens, so alerts can use rate() at once.
    fresh = Metrics()
    for verdict in WEBHOOK_VERDICTS:
        assert value(fresh, "videobridge_webhook_events_total", verdict=verdict) == 0
    assert value(fresh, "videobridge_notifications_total", kind="start", outcome="cancelled") == 0
    assert value(fresh, "videobridge_build_info", version="0.1.0", python=__import__("platform").python_version()) == 1


def test_histogram_buckets_cover_sub_millisecond_to_seconds() -> None:
    m = Metrics()
    assert HTTP_BUCKETS[0] == 0.0005 and HTTP_BUCKETS[-1] == 5.0
    m.observe_http("/room/meeting_access_token", "GET", 200, 0.0007)
    m.observe_http("/room/meeting_access_token", "GET", 200, 3.0)

    def bucket(le: str) -> float | None:
        return value(m, "videobridge_http_request_duration_seconds_bucket", route="/room/meeting_access_token", le=le)

    assert bucket("0.0005") == 0
    assert bucket("0.001") == 1
    assert bucket("5.0") == 2
    assert bucket("+Inf") == 2
    assert value(m, "videobridge_http_request_duration_seconds_count", route="/room/meeting_access_token") == 2


def test_gauges_are_computed_at_scrape_time() -> None:
    m = Metrics()
    state: dict[str, Any] = {"calls": {"live": 1}, "depth": 0, "poll_age": None}
    m.set_state_source(lambda: state["calls"], outbox_depth=lambda: state["depth"],
                       outbox_age=lambda: 0.0, poll_age=lambda: state["poll_age"])  # fmt: skip
    assert value(m, "videobridge_calls_tracked", state="live") == 1
    assert value(m, "videobridge_calls_tracked", state="starting") == 0  # known states always present
    assert value(m, "videobridge_calls_tracked", state="ending") == 0
    # No successful poll yet: the series is absent (not a misleading 0).
    assert value(m, "videobridge_presence_last_success_age_seconds") is None

    state.update(calls={"live": 3, "ending": 1}, depth=7, poll_age=4.5)
    assert value(m, "videobridge_calls_tracked", state="live") == 3
    assert value(m, "videobridge_calls_tracked", state="ending") == 1
    assert value(m, "videobridge_outbox_depth") == 7
    assert value(m, "videobridge_presence_last_success_age_seconds") == 4.5


def test_a_failing_source_does_not_break_the_scrape() -> None:
    m = Metrics()

    def broken() -> int:
        raise RuntimeError("store closed")

    m.set_state_source(outbox_depth=broken)
    assert value(m, "videobridge_outbox_depth") == 0
    assert value(m, "videobridge_calls_tracked", state="live") == 0  # no source yet: zeros


def test_no_room_names_or_user_ids_in_label_values() -> None:
    m = Metrics()
    exercise(m)
    labels = {v for (_, pairs) in samples(m) for _, v in pairs}
    assert labels, "expected labelled series"
    assert not [v for v in labels if ROOM.match(v)]
    assert not [v for v in labels if re.search(r"[a-z0-9]{5}-[a-z0-9]{5}-", v)]  # principals


def test_label_cardinality_is_capped() -> None:
    m = Metrics()
    for i in range(MAX_SERIES_PER_FAMILY + 40):  # e.g. a caller passing raw paths by mistake
        m.observe_http(f"/room/GAAAAAAHwqV0BAQ{i}", "GET", 200, 0.001)
    routes = {dict(pairs)["route"] for (name, pairs) in samples(m) if name == "videobridge_http_requests_total"}
    assert len(routes) <= MAX_SERIES_PER_FAMILY + 1
    assert "other" in routes
    assert value(m, "videobridge_http_requests_total", route="other", method="other", status_class="other") == 40


def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.call_started()
    assert value(a, "videobridge_calls_started_total") == 1
    assert value(b, "videobridge_calls_started_total") == 0


def test_hot_path_is_cheap() -> None:
    m = Metrics()
    started = time.perf_counter()
    for _ in range(20_000):
        m.observe_http("/room/meeting_access_token", "GET", 200, 0.0004)
    per_call = (time.perf_counter() - started) / 20_000
    assert per_call < 50e-6  # typically ~2 µs; generous for slow CI machines


async def test_metrics_endpoint(aiohttp_client: Any) -> None:
    m = Metrics()
    exercise(m)
    app = web.Application()
    app.router.add_get("/metrics", m.handle_metrics)
    client = await aiohttp_client(app)

    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    assert "videobridge_calls_tracked{state=\"live\"} 2.0" in await resp.text()

    resp = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await resp.text()).rstrip().endswith("# EOF")


def test_process_metrics_survive_procsubset_pid(tmp_path: Path) -> None:
    """Under ProcSubset=pid only /proc/<pid> is visible: process metrics must still be exported."""
    (tmp_path / "self").symlink_to("/proc/self")  # a /proc without /proc/stat
    collector = _ProcessCollector(namespace="videobridge", proc=str(tmp_path), registry=None)
    names = {family.name for family in collector.collect()}
    assert {"videobridge_process_start_time_seconds", "videobridge_process_resident_memory_bytes"} <= names
    assert value(Metrics(), "videobridge_process_open_fds") is not None
