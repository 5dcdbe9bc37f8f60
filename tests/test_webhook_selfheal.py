"""The webhook heals itself: Daily's circuit breaker tripped by a bridge that was really down.

`videobridge webhook register --retry-type circuit-breaker` points the emulator's webhook at a
real `serve`; the bridge stops; three events fail to arrive and the emulator, like Daily, puts
the webhook in FAILED and sends nothing more. A bridge started with self-heal off only reports it;
one with self-heal on reactivates it (the emulator probes the bridge first) and events flow again.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import wait_until
from procs import EmulatorThread, ServeProcess, free_port, serve_env
from prometheus_client.parser import text_string_to_metric_families

from videobridge.devjwt import DevSigner

API_KEY = "selfheal-api-key-" + "0123456789abcdef" * 2
SECRET = base64.b64encode(b"selfheal-webhook-secret-01234567").decode()
WAIT = 60.0

pytestmark = pytest.mark.timeout(300)


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_bridge_that_was_down_heals_its_tripped_webhook(tmp_path: Path, signer: DevSigner) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with EmulatorThread(API_KEY) as daily:
        emu = daily.emu
        env = serve_env(tmp_path, daily, signer, PORT=str(port), DAILY_HOOK_HMAC=SECRET,
                        VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL="1")

        def serve(name: str, **extra: str) -> ServeProcess:
            proc = ServeProcess.start({**env, **extra}, cwd=tmp_path, port=port, name=name)
            proc.wait_listening(timeout=60)
            return proc

        first = serve("first")
        try:
            cli = subprocess.run([sys.executable, "-m", "videobridge", "webhook", "register", base + "/room/hook",
                                  "--retry-type", "circuit-breaker"], env={**env, "PATH": os.environ["PATH"]},
                                 cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
            assert cli.returncode == 0, cli.stderr
            wait_until(lambda: scrape(base).get(("videobridge_webhook_state", (("state", "ACTIVE"),))) == 1,
                       "the first bridge sees its webhook ACTIVE")
        finally:
            assert first.stop() == 0
        (record,) = daily.run(lambda: list(emu.dispatcher.hooks.values()))

        # Down: people come and go in Daily, every delivery fails, the breaker trips.
        daily.run(lambda: emu.store.create("lobby", "public", {"exp": int(time.time()) + 3600}))
        for _ in range(3):
            daily.run(lambda: emu.join("lobby", None))
        wait_until(lambda: daily.run(lambda: record.state) == "FAILED", "the emulator's breaker trips")
        delivered = daily.run(lambda: emu.dispatcher.delivered)
        daily.run(lambda: emu.join("lobby", None))  # a FAILED webhook gets nothing more

        second = serve("second", VIDEOBRIDGE_WEBHOOK_AUTOHEAL="false")
        try:
            wait_until(lambda: scrape(base)[("videobridge_webhook_checks_total", (("outcome", "ok"),))] >= 2,
                       "two checks with self-heal off")
            found = scrape(base)
            assert found[("videobridge_webhook_state", (("state", "FAILED"),))] == 1
            assert found[("videobridge_webhook_failed_count", ())] == 3
            assert found[("videobridge_webhook_reactivations_total", (("outcome", "ok"),))] == 0
            assert daily.run(lambda: record.state) == "FAILED"
        finally:
            assert second.stop() == 0
        assert '"webhook_not_active"' in second.stdout() and "VIDEOBRIDGE_WEBHOOK_AUTOHEAL" in second.stdout()
        assert "webhook_reactivated" not in second.stdout()

        third = serve("third")
        try:
            wait_until(lambda: daily.run(lambda: record.state) == "ACTIVE", "the bridge reactivates its webhook")
            wait_until(lambda: scrape(base)[("videobridge_webhook_state", (("state", "ACTIVE"),))] == 1,
                       "the state metric follows")
            found = scrape(base)
            assert found[("videobridge_webhook_reactivations_total", (("outcome", "ok"),))] == 1
            assert found[("videobridge_webhook_state", (("state", "FAILED"),))] == 0
            # Events reach the bridge again.
            daily.run(lambda: emu.join("lobby", None))
            wait_until(lambda: scrape(base)[("videobridge_webhook_events_total", (("verdict", "accepted"),))] >= 1,
                       "an event delivered after the heal")
            assert daily.run(lambda: emu.dispatcher.delivered) > delivered
        finally:
            assert third.stop() == 0
        log = third.stdout()
        assert '"event": "webhook_reactivated"' in log and '"was": "FAILED"' in log
        assert SECRET not in log and SECRET not in second.stdout()
