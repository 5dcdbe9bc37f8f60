"""contrib/: the Prometheus alert rules (unit-tested with promtool) and the Grafana dashboard.

The last test runs a real `serve` through a call's whole life and checks that every series a rule
or a dashboard panel reads is in its /metrics, so a renamed metric cannot silently blind an alert.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from ops_support import REPO, require_tool
from procs import EmulatorThread, ServeProcess, free_port, serve_env
from prometheus_client.parser import text_string_to_metric_families

from videobridge.devjwt import DevSigner

RULES = REPO / "contrib" / "prometheus" / "videobridge-rules.yml"
RULE_TESTS = REPO / "contrib" / "prometheus" / "videobridge-rules.test.yml"
DASHBOARD = REPO / "contrib" / "grafana" / "videobridge.json"
SERIES = re.compile(r"\bvideobridge_[a-z0-9_]+\b")
NOT_FROM_THE_BRIDGE = {"up"}  # Prometheus's own per-target series
# What the issue asks alerts for, by the name each has here.
REQUIRED_ALERTS = {
    "VideobridgeNotReady", "VideobridgeRestarting", "VideobridgeOutboxStuck", "VideobridgePresenceStale",
    "VideobridgeDailyErrors", "VideobridgeICDeliveryFailing", "VideobridgeWebhookNotActive",
    "VideobridgeCallsStuckStarting", "VideobridgeLeaseFlapping",
}
# Grafana's variables, given a value so promtool can parse the expression.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("promtool", "prometheus")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False,
                          cwd=RULES.parent)


def alert_names() -> list[str]:
    return re.findall(r"^\s*- alert:\s*(\w+)\s*$", RULES.read_text(), flags=re.MULTILINE)


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_the_rules_are_valid_and_every_alert_is_unit_tested() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout

    names = alert_names()
    assert len(names) == len(set(names)) and REQUIRED_ALERTS <= set(names)
    tests = RULE_TESTS.read_text()
    for name in names:
        evaluations = re.findall(rf"alertname: {name}\b.*?(exp_alerts: \[\]|exp_labels)", tests, flags=re.DOTALL)
        # each alert is shown quiet (before its `for`, or healthy) and firing, with its labels and text
        assert "exp_alerts: []" in evaluations and "exp_labels" in evaluations, name
    rules = RULES.read_text()
    for name in names:
        assert f"README.md#{name.lower()}" in rules, f"{name} has no runbook link"


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: loosen one threshold and promtool says which alert broke."""
    loosened = RULES.read_text().replace("oldest_age_seconds > 300", "oldest_age_seconds > 3000")
    (tmp_path / RULES.name).write_text(loosened)
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    binary = require_tool("promtool", "prometheus")
    broken = subprocess.run([binary, "test", "rules", RULE_TESTS.name], capture_output=True, text=True, timeout=120,
                            check=False, cwd=tmp_path)
    assert broken.returncode != 0 and "VideobridgeOutboxStuck" in broken.stdout + broken.stderr


def test_the_dashboard_is_importable_and_its_queries_parse(tmp_path: Path) -> None:
    board = dashboard()
    assert board["uid"] == "videobridge" and board["id"] is None and board["title"] == "videobridge"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "__inputs" not in board  # no import-time prompts: the datasource is a dashboard variable
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"]), panel["title"]
    titles = " | ".join(p["title"] for p in board["panels"]).lower()
    for topic in ("requests by route", "latency by route", "calls by state", "calls by type", "starts and ends",
                  "daily calls", "retries", "outbox depth", "outbox oldest age", "notification outcomes",
                  "poll age", "webhook events"):
        assert topic in titles, topic

    # promtool parses PromQL for recording rules: one per panel query, Grafana's variables filled in.
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for index, expr in enumerate(dashboard_exprs()):
        if expr.startswith("label_values("):
            continue
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        lines += [f"      - record: dashboard:query_{index}", f"        expr: {json.dumps(expr)}"]
    (tmp_path / "dashboard-rules.yml").write_text("\n".join(lines) + "\n")
    binary = require_tool("promtool", "prometheus")
    parsed = subprocess.run([binary, "check", "rules", "dashboard-rules.yml"], capture_output=True, text=True,
                            timeout=120, check=False, cwd=tmp_path)
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr


def request(base: str, path: str, jwt: str, method: str = "GET") -> dict[str, Any]:
    req = urllib.request.Request(base + path, headers={"x-auth-jwt": jwt}, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def scrape_names(base: str) -> set[str]:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.timeout(300)
def test_every_series_the_rules_and_dashboard_read_is_exported(tmp_path: Path, signer: DevSigner) -> None:
    used = set(SERIES.findall(RULES.read_text())) | {n for e in dashboard_exprs() for n in SERIES.findall(e)}
    assert len(used) > 20
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with EmulatorThread("contrib-api-key-" + "0123456789abcdef" * 2) as daily:
        env = serve_env(tmp_path, daily, signer, PORT=str(port), VIDEOBRIDGE_PRESENCE_INTERVAL="1",
                        DAILY_HOOK_HMAC="Y29udHJpYi13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5")
        proc = ServeProcess.start(env, cwd=tmp_path, port=port)
        try:
            proc.wait_listening(timeout=60)
            # A call's whole life, one Daily hiccup included (so a retry is counted).
            daily.run(lambda: daily.emu.fail_next("POST /rooms", 503))
            chat = {"Group": "ll4qc-niaaa-aaaap-qvfoq-cai"}
            alice = "724ke-xyaaa-aaaan-ayptq-cai"
            grant = request(base, "/room/meeting_access_token?initiator-username=alice",
                            signer.video_call_token("StartVideoCall", user_id=alice, chat_id=chat,
                                                    call_type="Default", is_diamond=False))
            daily.run(lambda: daily.emu.join(grant["roomName"], grant["token"]))
            wait_until(lambda: "videobridge_presence_last_success_age_seconds" in scrape_names(base),
                       "a good presence poll")
            daily.run(lambda: daily.emu.leave_all(grant["roomName"]))
            ended = request(base, "/room/end_meeting",
                            signer.video_call_token("MarkVideoCallAsEnded", user_id=alice, chat_id=chat), "POST")
            assert ended["ended"] is True
            exported = scrape_names(base)
        finally:
            proc.kill()
    missing = sorted(name for name in used - NOT_FROM_THE_BRIDGE if name not in exported)
    assert not missing, f"rules or dashboard read series a running bridge does not export: {missing}"
