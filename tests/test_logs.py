"""Log lines: one JSON object per line, secrets never rendered, one access line per request."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import structlog

from videobridge.logs import (
    REDACTED,
    access_line,
    configure_logging,
    get_logger,
    parse_level,
    redact_value,
    reset_logging,
    stream_is_journal,
)

# Shaped like the real thing, but not a valid token for anything.
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJjbGFpbV90eXBlIjoiSm9pblZpZGVvQ2FsbCJ9.c2lnbmF0dXJlLW5vdC1yZWFs"
PEM = "-----BEGIN EC PRIVATE KEY-----\nMHQCAQEEIBsecretsecretsecretsecretsecretsecret\n-----END EC PRIVATE KEY-----"
SECRETS = ("c2lnbmF0dXJlLW5vdC1yZWFs", "eyJjbGFpbV90eXBl", "MHQCAQEEIBsecret", "daily-key-123", "hmac-456",
           "opaque-bearer-789", "admin-000")  # fmt: skip


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_logging()


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_json_lines_parse_with_iso_utc_timestamp_level_event() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    log = get_logger("videobridge.test")
    log.info("call_started", room="GAAAAAAHwqV0BAQ", joining=False)
    log.warning("multi\nline\nmessage", detail={"a": [1, 2]})
    raw = out.getvalue().splitlines()
    assert len(raw) == 2  # a newline in a value is escaped, never a second journal entry
    first, second = lines(out)
    assert list(first)[:3] == ["timestamp", "level", "event"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", first["timestamp"])
    assert first["level"] == "info" and first["event"] == "call_started"
    assert first["logger"] == "videobridge.test" and first["joining"] is False
    assert second["level"] == "warning" and second["detail"] == {"a": [1, 2]}


def test_secrets_are_redacted_by_key_and_by_shape() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    structlog.get_logger().info(
        f"rejected token {JWT}",
        token="opaque-bearer-789",
        has_token=True,  # booleans say "present", they stay
        headers={"X-Auth-JWT": JWT, "Authorization": "Bearer opaque-bearer-789", "Accept": "*/*"},
        config=[{"daily_api_key": "daily-key-123"}, {"DAILY_HOOK_HMAC": "hmac-456"}, ("admin_token", "x")],
        nested={"deeper": {"oc_identity": PEM, "note": f"key was {PEM}"}},
        error="upstream said: Authorization: Bearer opaque-bearer-789 is wrong",
        pem_with_literal_newlines=PEM.replace("\n", "\\n"),
        videobridge_admin_token="admin-000",
        room="GAAAAAAHwqV0BAQ",
    )
    text = out.getvalue()
    assert_no_secret(text)
    [event] = lines(out)
    assert event["event"] == "rejected token [JWT]"
    assert event["token"] == REDACTED and event["has_token"] is True
    assert event["headers"] == {"X-Auth-JWT": REDACTED, "Authorization": REDACTED, "Accept": "*/*"}
    assert event["config"][0] == {"daily_api_key": REDACTED}
    assert event["config"][1] == {"DAILY_HOOK_HMAC": REDACTED}
    assert event["nested"]["deeper"] == {"oc_identity": REDACTED, "note": "key was [PEM]"}
    assert event["error"] == f"upstream said: Authorization: Bearer {REDACTED} is wrong"
    assert event["pem_with_literal_newlines"] == "[PEM]"
    assert event["room"] == "GAAAAAAHwqV0BAQ"  # ordinary values untouched


def test_redact_value_handles_odd_values() -> None:
    class Opaque:
        def __str__(self) -> str:
            return f"Opaque({JWT})"

    value = {"items": ({"secret": b"x"},), "blob": JWT.encode(), "obj": Opaque(), "n": 3, "none": None,
             "truncated": "-----BEGIN PRIVATE KEY-----\nMIIEvQ"}  # fmt: skip
    assert redact_value(value) == {"items": [{"secret": REDACTED}], "blob": "[JWT]", "obj": "Opaque([JWT])",
                                   "n": 3, "none": None, "truncated": "[PEM]"}  # fmt: skip


def test_exceptions_are_one_structured_line_without_locals_or_secrets() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    log = get_logger("videobridge.test")

    def verify(api_key: str) -> None:
        raise ValueError(f"bad token {JWT}")

    try:
        verify("daily-key-123")
    except ValueError:
        log.exception("verify_failed")
    assert len(out.getvalue().splitlines()) == 1
    [event] = lines(out)
    assert event["level"] == "error"
    assert event["exception"][0]["exc_type"] == "ValueError"
    assert_no_secret(out.getvalue())  # neither the message's JWT nor the local api_key


def test_stdlib_loggers_share_the_pipeline_at_warning_and_above() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    logging.getLogger("aiohttp.server").info("noise")
    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /room/meeting_access_token?x=1"')
    logging.getLogger("aiohttp.server").warning("bad header %s", f"Bearer {JWT}")
    [event] = lines(out)
    assert event["logger"] == "aiohttp.server" and event["level"] == "warning"
    assert event["event"] == "bad header Bearer [JWT]"
    assert "timestamp" in event


def test_reconfiguring_never_duplicates_lines_and_follows_the_new_stream() -> None:
    first, second = io.StringIO(), io.StringIO()
    log = get_logger("videobridge.test")  # obtained before configuration, like module-level loggers
    for _ in range(5):
        configure_logging(fmt="json", stream=first)
    configure_logging(fmt="json", stream=second)
    log.info("once")
    logging.getLogger("aiohttp.web").error("once too")
    assert first.getvalue() == ""
    assert [e["event"] for e in lines(second)] == ["once", "once too"]
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
            and getattr(h, "stream", None) in (first, second)]  # fmt: skip
    assert len(ours) == 1


def test_level_filtering() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="warning", stream=out)
    log = get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    assert [e["event"] for e in lines(out)] == ["w"]
    with pytest.raises(ValueError, match="log level"):
        parse_level("loud")
    with pytest.raises(ValueError, match="log format"):
        configure_logging(fmt="xml", stream=out)  # type: ignore[arg-type]


def test_console_format_is_readable_and_redacted() -> None:
    out = io.StringIO()
    configure_logging(fmt="console", stream=out)
    get_logger().info("hello", authorization=f"Bearer {JWT}", note=f"see {JWT}")
    text = out.getvalue()
    assert "hello" in text and not text.startswith("{")
    assert "\x1b[" not in text  # a StringIO is no terminal: no colours
    assert_no_secret(text)


def test_auto_format_is_json_off_a_terminal() -> None:
    out = io.StringIO()
    configure_logging(fmt="auto", stream=out)
    get_logger().info("x")
    assert lines(out)[0]["event"] == "x"


def test_journal_priority_prefix(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out, journal=True)
    log = get_logger()
    log.info("i")
    log.error("e")
    info, error = out.getvalue().splitlines()
    assert info.startswith("<6>{") and error.startswith("<3>{")
    assert json.loads(info[3:])["event"] == "i"

    with open(tmp_path / "journal", "w") as stream:
        st = os.fstat(stream.fileno())
        assert stream_is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not stream_is_journal(stream, {})
    assert not stream_is_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_access_line_has_no_query_string() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    log = get_logger("videobridge.http")
    access_line(log, method="GET", path="/room/meeting_access_token?initiator-username=alice&x=1",
                status=200, duration_ms=0.73456, claim_type="JoinVideoCall", chat_kind="group")  # fmt: skip
    access_line(log, method="POST", path="/room/end_meeting#frag", status=502, duration_ms=12.0,
                outcome="daily_unavailable", ignored=None)  # fmt: skip
    ok, failed = lines(out)
    assert ok["event"] == "http_request" and ok["path"] == "/room/meeting_access_token"
    assert ok["status"] == 200 and ok["duration_ms"] == 0.735 and ok["level"] == "info"
    assert ok["claim_type"] == "JoinVideoCall" and ok["chat_kind"] == "group"
    assert "alice" not in out.getvalue()
    assert failed["path"] == "/room/end_meeting" and failed["level"] == "error"
    assert failed["outcome"] == "daily_unavailable" and "ignored" not in failed
    assert "claim_type" not in failed


def test_malformed_http_requests_are_one_short_warning():
    import io
    import json
    import logging

    from aiohttp.http_exceptions import LineTooLong

    from videobridge.logs import configure_logging

    out = io.StringIO()
    configure_logging(fmt="json", level="info", stream=out)
    try:
        raise LineTooLong("x" * 100, "8190")
    except LineTooLong:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "warning" and record["event"] == "bad HTTP request: LineTooLong"
    assert "exception" not in record and "Traceback" not in line


_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
ACCESS_CASES: list[dict[str, Any]] = [
    {"method": "GET", "path": "/room/meeting_access_token?initiator-username=alice", "status": 200,
     "duration_ms": 0.73456, "claim_type": "JoinVideoCall", "chat_kind": "group", "outcome": "joined"},
    {"method": "POST", "path": f"/room/x/{JWT}", "status": 503, "duration_ms": 1e-9, "outcome": None},
    {"method": "GE T", "path": "/a b/Bearer opaque-bearer-789#x", "status": 404, "duration_ms": float("nan")},
    {"method": "GET", "path": "/\u00fc\n\"q\"", "status": 500, "duration_ms": 2, "token": "opaque-bearer-789",
     "api_key": None, "has_token": True, "detail": {"secret": "hmac-456", "n": [JWT, 1.5]}, "count": 3},
    {"method": "GET", "path": "/healthz", "status": HTTPStatus.OK, "duration_ms": float("-inf"), "retried": False,
     "secret": 7, "hmac": 0.5, "outcome": "joined"},
    {"method": "OPTIONS", "path": "/room/leave", "status": 204, "duration_ms": float("inf"), "claim_type": "\t",
     "outcome": "left", "kept": True, "n": -(2**70), "password": 31337, "x_hmac": 2.5},
]  # fmt: skip
ACCESS_CASES += ACCESS_CASES  # the second time round, recurring strings come from the cache


@pytest.mark.parametrize(("fmt", "level", "journal"), [
    ("json", "info", False), ("json", "info", True), ("console", "info", False), ("json", "warning", False),
    ("json", "critical", False),
])  # fmt: skip
def test_access_line_fast_path_writes_exactly_what_the_chain_writes(
        fmt: str, level: str, journal: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import videobridge.access_log as access_log

    def written(fast: bool) -> list[str]:
        out = io.StringIO()
        configure_logging(fmt=fmt, level=level, stream=out, journal=journal)  # type: ignore[arg-type]
        log = structlog.get_logger("videobridge.http").bind()  # as the middleware binds it
        taken: list[int] = []  # the cases the template wrote
        if fast:
            http = access_log._AccessLines.http
            monkeypatch.setattr(access_log._AccessLines, "http", lambda *a: http(*a) and not taken.append(1))
        else:
            monkeypatch.setattr(access_log, "_access_lines", None)
        for case in ACCESS_CASES:
            access_line(log, **case)
        monkeypatch.undo()
        if fast:  # the plain ones (a join, a 503), twice each, and below info a NaN 404 dropped unread
            assert len(taken) == (0 if fmt != "json" else 4 if level == "info" else 6)
        return [_STAMP.sub("<ts>", line) for line in out.getvalue().splitlines()]

    fast, chain = written(True), written(False)
    assert fast == chain
    assert_no_secret("\n".join(fast))
    expected = {"info": 12, "warning": 4, "critical": 0}[level]  # 5xx lines are errors
    assert len(fast) == expected and all("<ts>" in line for line in fast)


def test_access_line_takes_the_chain_when_the_chain_is_not_the_configured_one() -> None:
    import videobridge.access_log as access_log

    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    fast = access_log._access_lines
    assert fast is not None
    bound = structlog.get_logger("videobridge.http").bind()
    plain = ("GET", "/healthz", 200, 0.1, None, None, None)
    assert not fast.http(get_logger("videobridge.http"), *plain)  # a lazy proxy: the chain
    assert not fast.http(bound.bind(request_id="r1"), *plain)  # bound context: the chain
    assert not out.getvalue()
    with structlog.testing.capture_logs() as captured:  # edits the processor list in place
        access_line(bound, method="GET", path="/healthz", status=200, duration_ms=0.1)
    assert captured == [{"event": "http_request", "log_level": "info", "method": "GET", "path": "/healthz",
                         "status": 200, "duration_ms": 0.1}]
    configure_logging(fmt="json", stream=out)  # a new chain: the old logger keeps the old one
    access_line(bound, method="GET", path="/healthz", status=200, duration_ms=0.1)
    access_line(bound, method="GET", path="/healthz", status=200, duration_ms=0.1, event_id="e", logger="x")
    first, second = lines(out)
    assert first["event"] == "http_request" and first["logger"] == "videobridge.http"
    assert second["logger"] == "x" and second["event_id"] == "e"
    assert out.getvalue().count("http_request") == 2


def test_access_line_takes_the_template_unless_a_value_needs_the_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    import videobridge.access_log as access_log

    configure_logging(fmt="json", stream=io.StringIO())
    taken: list[bool] = []
    http = access_log._AccessLines.http
    monkeypatch.setattr(access_log._AccessLines, "http", lambda *a: taken.append(http(*a)) or taken[-1])
    log = structlog.get_logger("videobridge.http").bind()
    for case in ACCESS_CASES[:6]:
        access_line(log, **case)
    # a NaN duration; extra fields (a dict among them); an IntEnum status; infinities and extras
    assert taken == [True, True, False]  # the cases with extra fields beyond `outcome` never ask it


@pytest.mark.parametrize("now", [1_765_000_000.0, 1_765_000_000.25, 1_765_000_000.9999996, 1_765_000_059.000001,
                                 1_765_000_000.5e0 + 0.0000004])
def test_the_template_timestamp_is_what_structlogs_iso_utc_stamper_writes(
        now: float, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime

    import videobridge.access_log as access_log

    configure_logging(fmt="json", stream=io.StringIO())
    fast = access_log._access_lines
    assert fast is not None
    monkeypatch.setattr(access_log.time, "time", lambda: now)
    expected = datetime.datetime.fromtimestamp(now, tz=datetime.UTC).isoformat().replace("+00:00", "Z")
    assert fast._now() == expected
    assert fast._now() == expected  # the cached date part


class _Writes(io.StringIO):
    """A stream that counts the writes it gets (each one a system call on a real file)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


JOIN = {"method": "GET", "path": "/room/meeting_access_token", "status": 200, "duration_ms": 0.5,
        "claim_type": "JoinVideoCall", "chat_kind": "group", "outcome": "joined"}


async def test_access_lines_of_one_loop_round_go_out_in_one_write_in_order() -> None:
    import asyncio

    out = _Writes()
    configure_logging(fmt="json", stream=out)
    log = structlog.get_logger("videobridge.http").bind()
    for n in range(5):
        access_line(log, **{**JOIN, "duration_ms": float(n)})
    assert out.getvalue() == ""  # held until this round of the loop is done
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    written = lines(out)
    assert [line["duration_ms"] for line in written] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert out.writes == 1 and all(line["event"] == "http_request" for line in written)


async def test_any_other_line_writes_the_held_access_lines_first() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    access_log = structlog.get_logger("videobridge.http").bind()
    access_line(access_log, **JOIN)
    get_logger("videobridge").info("call_started")  # structlog, same round
    access_line(access_log, **{**JOIN, "duration_ms": 2.0})
    logging.getLogger("aiohttp.server").warning("slow client")  # stdlib, same round
    access_line(access_log, **{**JOIN, "status": 503, "outcome": None})  # an error line: written at once
    assert [line["event"] for line in lines(out)] == [
        "http_request", "call_started", "http_request", "slow client", "http_request"]


async def test_held_access_lines_go_to_their_stream_when_logging_is_reconfigured() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", stream=first)
    access_line(structlog.get_logger("videobridge.http").bind(), **JOIN)
    configure_logging(fmt="json", stream=second)
    assert len(lines(first)) == 1 and second.getvalue() == ""


def test_lines_a_closed_loop_left_held_go_out_before_the_next_loops() -> None:
    import asyncio

    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    log = structlog.get_logger("videobridge.http").bind()
    loop = asyncio.new_event_loop()

    async def last_request() -> None:
        access_line(log, **JOIN)
        loop.stop()  # the loop ends with this round's callbacks, its flush among them, not run

    loop.run_until_complete(last_request())
    loop.close()
    assert out.getvalue() == ""

    async def next_request() -> None:
        access_line(log, **{**JOIN, "duration_ms": 2.0})
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(next_request())
    assert [line["duration_ms"] for line in lines(out)] == [0.5, 2.0]
