"""`videobridge config check`: settings, their sources, Daily, the webhook, the IC, the state file."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cli_support import (
    Servers,
    daily_env,
    hook_receiver,
    invoke,
    one_line_error,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fakeic import BlsKey, FakeIC

from videobridge.devjwt import DevSigner
from videobridge.notifier import identity_principal, load_identity

HOOK_SECRET = base64.b64encode(b"config-check-webhook-secret-0123").decode()


def identity_pem() -> str:
    key = ec.generate_private_key(ec.SECP256K1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def good_env(servers: Servers, workdir: Path, ic_url: str, **values: str | None) -> dict[str, str | None]:
    return daily_env(servers, workdir / "state.json", DAILY_HOOK_HMAC=HOOK_SECRET, OC_PUBLIC=DevSigner().public_pem,
                     OC_IDENTITY=identity_pem().replace("\n", "\\n"), IC_URL=ic_url, **values)


def register_hook(servers: Servers, env: dict[str, str | None]) -> None:
    url = servers.serve(hook_receiver()) + "/room/hook"
    result = invoke(["webhook", "register", url], env)
    assert result.exit_code == 0, result.output


def rows(report: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report[key]}


def test_all_well_exits_zero_and_shows_no_secret(servers: Servers, workdir: Path) -> None:
    with FakeIC() as fake:
        env = good_env(servers, workdir, fake.url, VIDEOBRIDGE_ADMIN_TOKEN="admin-token-0123456789abcdef",
                       VIDEOBRIDGE_IC_ROOT_KEY=fake.root_key_hex)
        register_hook(servers, env)
        result = invoke(["config", "check", "--json"], env)
        human = invoke(["config", "check"], env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    settings, checks = rows(report, "settings"), rows(report, "checks")
    assert settings["DAILY_API_KEY"] == {"name": "DAILY_API_KEY", "status": "ok", "detail": "", "source": "env",
                                         "value": "set"}
    principal = identity_principal(load_identity(str(env["OC_IDENTITY"])))
    assert settings["OC_IDENTITY"]["detail"] == f"principal {principal}"
    assert settings["PORT"]["value"] == "5050" and settings["PORT"]["source"] == ""
    assert checks["Daily API"]["status"] == "ok" and "domain openchat" in checks["Daily API"]["detail"]
    assert checks["Daily domain id"]["detail"] == servers.emulator.domain_id
    assert checks["Daily webhook"]["status"] == "ok" and "ACTIVE" in checks["Daily webhook"]["detail"]
    assert checks["IC"]["status"] == "ok" and checks["state file"]["status"] == "ok"
    assert human.exit_code == 0 and "configuration OK" in human.stderr and principal in human.stdout
    for secret in (servers.api_key, HOOK_SECRET, "admin-token-0123456789abcdef", "PRIVATE KEY"):
        assert secret not in result.output and secret not in human.output


def test_sources_env_file_and_credentials(servers: Servers, workdir: Path) -> None:
    creds = workdir / "creds"
    creds.mkdir()
    (creds / "daily_api_key").write_text(servers.api_key + "\n")
    (workdir / "bridge.env").write_text(f"DAILY_API_URL={servers.url}\nPORT=6000\nVIDEOBRIDGE_PORTT=1\n")
    env = daily_env(servers, workdir / "state.json", DAILY_API_KEY=None, DAILY_API_URL=None,
                    CREDENTIALS_DIRECTORY=str(creds), OC_PUBLIC=DevSigner().public_pem)
    result = invoke(["config", "check", "--json", "--offline", "--env-file", "bridge.env"], env)
    assert result.exit_code == 0, result.output  # warnings only (no webhook secret, no IC)
    settings = rows(json.loads(result.stdout), "settings")
    assert (settings["DAILY_API_KEY"]["source"], settings["DAILY_API_KEY"]["value"]) == ("credential", "set")
    assert (settings["PORT"]["source"], settings["PORT"]["value"]) == (".env", "6000")
    assert settings["OC_PUBLIC"]["source"] == "env" and settings["IC_URL"]["status"] == "warn"
    assert settings["VIDEOBRIDGE_PORTT"]["detail"] == "unknown setting (typo?)"
    strict = invoke(["config", "check", "--offline", "--strict", "--env-file", "bridge.env"], env)
    assert strict.exit_code == 1 and "what is wrong" in strict.stdout


def test_bad_and_missing_settings_exit_two_with_a_table(servers: Servers, workdir: Path) -> None:
    env = daily_env(servers, workdir / "state.json", PORT="fifty", OC_PUBLIC=None, DAILY_HOOK_HMAC="%%%")
    result = invoke(["config", "check", "--json"], env)
    assert result.exit_code == 2, result.output
    problems = {p["name"]: p["detail"] for p in json.loads(result.stdout)["problems"]}
    assert problems["PORT"] == "PORT: must be a whole number, got 'fifty'"
    assert problems["OC_PUBLIC"].startswith("not set") and "base64" in problems["DAILY_HOOK_HMAC"]
    human = invoke(["config", "check", "--offline"], env)
    assert human.exit_code == 2 and "what is wrong" in human.stdout and "3 problem(s)" in human.stderr
    one_line_error(invoke(["config", "check", "--env-file", "missing.env"], env), 2, "no such file")


def test_daily_webhook_and_ic_trouble_exit_one(servers: Servers, workdir: Path) -> None:
    with FakeIC() as fake:
        env = good_env(servers, workdir, fake.url)
        register_hook(servers, env)
        fake.go_down()
        wrong_domain = invoke(["config", "check", "--json"], {**env, "DAILY_DOMAIN_ID": "not-our-domain"})
    assert wrong_domain.exit_code == 1, wrong_domain.output
    problems = rows(json.loads(wrong_domain.stdout), "problems")
    assert set(problems) == {"Daily domain id", "IC"}
    assert "unreachable" in problems["IC"]["detail"]

    hook = next(iter(servers.emulator.dispatcher.hooks.values()))
    hook.state = "FAILED"
    failed = json.loads(invoke(["config", "check", "--json", "--strict"], {**env, "IC_URL": None}).stdout)
    assert "webhook reactivate" in rows(failed, "problems")["Daily webhook"]["detail"]
    hook.state = "ACTIVE"
    other_secret = base64.b64encode(b"another-secret-entirely-01234567").decode()
    mismatch = invoke(["config", "check", "--json"], {**env, "DAILY_HOOK_HMAC": other_secret, "IC_URL": None})
    assert mismatch.exit_code == 1
    assert "another secret" in rows(json.loads(mismatch.stdout), "problems")["Daily webhook"]["detail"]

    bad_key = invoke(["config", "check", "--json"], {**env, "DAILY_API_KEY": "x" * 40, "IC_URL": None})
    assert bad_key.exit_code == 1
    assert "HTTP 401" in rows(json.loads(bad_key.stdout), "problems")["Daily API"]["detail"]


def test_an_ic_root_key_that_replies_would_not_verify_under_is_a_problem(servers: Servers, workdir: Path) -> None:
    with FakeIC() as fake:
        env = good_env(servers, workdir, fake.url)
        register_hook(servers, env)
        unset = invoke(["config", "check", "--json"], env)
        other = invoke(["config", "check", "--json"], {**env, "VIDEOBRIDGE_IC_ROOT_KEY": BlsKey().der.hex()})
        good = invoke(["config", "check", "--json"], {**env, "VIDEOBRIDGE_IC_ROOT_KEY": fake.root_key_hex})
    assert unset.exit_code == 1, unset.output
    detail = rows(json.loads(unset.stdout), "problems")["IC"]["detail"]
    assert "its root key is not the mainnet root key" in detail
    assert detail.endswith(f"set VIDEOBRIDGE_IC_ROOT_KEY={fake.root_key_hex}")
    assert other.exit_code == 1
    assert "not VIDEOBRIDGE_IC_ROOT_KEY" in rows(json.loads(other.stdout), "problems")["IC"]["detail"]
    assert good.exit_code == 0, good.output
    assert rows(json.loads(good.stdout), "checks")["IC"]["detail"].endswith("root key is VIDEOBRIDGE_IC_ROOT_KEY")
