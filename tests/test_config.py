"""Settings: sources, precedence, PEM escapes, one clear error per bad value."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from videobridge.config import load_settings
from videobridge.devjwt import DevSigner
from videobridge.errors import ConfigError

PEM = DevSigner().public_pem


def env(**values: str) -> dict[str, str]:
    return {"DAILY_API_KEY": "key", "OC_PUBLIC": PEM, **values}


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ=env())
    assert (s.host, s.port, s.presence_interval, s.start_grace) == ("127.0.0.1", 5050, 15.0, 300.0)
    assert s.daily_api_url == "https://api.daily.co/v1" and s.cors_origins == ("*",)
    assert s.state_path == Path("videobridge.json") and not s.notifications_enabled
    assert "key" not in repr(s), "secrets stay out of repr"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("Yes", True), ("ON", True),
                                               ("0", False), ("false", False), ("no", False), ("off", False)])
def test_legacy_user_end_switch(tmp_path, monkeypatch, value, expected):
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ=env()).legacy_user_end is False  # default: the #9401 shape
    assert load_settings(environ=env(VIDEOBRIDGE_LEGACY_USER_END=value)).legacy_user_end is expected


def test_cli_reports_a_bad_legacy_switch_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "videobridge", "serve"], capture_output=True, text=True,
                            cwd=tmp_path, env={"PATH": os.environ["PATH"], "DAILY_API_KEY": "k", "OC_PUBLIC": PEM,
                                               "VIDEOBRIDGE_LEGACY_USER_END": "2"}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "videobridge: VIDEOBRIDGE_LEGACY_USER_END: must be true or false, got '2'"


def test_precedence_flag_env_credential_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PORT=1111\nHOST=10.0.0.1\nVIDEOBRIDGE_START_GRACE=7\nDAILY_API_KEY=from-dotenv\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "daily_api_key").write_text("from-credential\n")
    (creds / "port").write_text("2222")
    s = load_settings(environ={"OC_PUBLIC": PEM, "CREDENTIALS_DIRECTORY": str(creds), "PORT": "3333"},
                      overrides={"HOST": "127.0.0.2"})
    assert s.daily_api_key == "from-credential" and s.port == 3333 and s.host == "127.0.0.2"
    assert s.start_grace == 7.0
    assert s.sources["DAILY_API_KEY"] == "credential" and s.sources["HOST"] == "flag"
    assert s.sources["VIDEOBRIDGE_START_GRACE"] == ".env" and s.sources["PORT"] == "env"


def test_pem_with_literal_newlines_and_state_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ=env(OC_PUBLIC=PEM.replace("\n", "\\n"), STATE_DIRECTORY=str(tmp_path)))
    assert s.oc_public == PEM and s.state_path == tmp_path / "state.json"


def test_hook_secret_is_decoded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ=env(DAILY_HOOK_HMAC=base64.b64encode(b"secret").decode()))
    assert s.daily_hook_hmac == b"secret"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PORT", "http", "PORT: must be a whole number"),
    ("PORT", "70000", "PORT: must be between 0 and 65535"),
    ("DAILY_API_URL", "api.daily.co", "DAILY_API_URL: must be an http(s) URL"),
    ("IC_URL", "icp-api.io", "IC_URL: must be an http(s) URL"),
    ("DAILY_HOOK_HMAC", "not base64!", "DAILY_HOOK_HMAC: must be base64"),
    ("OC_PUBLIC", "hello", "OC_PUBLIC: not a PEM public key"),
    ("OC_IDENTITY", "hello", "OC_IDENTITY: not a PEM private key"),
    ("VIDEOBRIDGE_PRESENCE_INTERVAL", "soon", "VIDEOBRIDGE_PRESENCE_INTERVAL: must be a number"),
    ("VIDEOBRIDGE_START_GRACE", "nan", "VIDEOBRIDGE_START_GRACE: must be a finite number"),
    ("VIDEOBRIDGE_ADMIN_TOKEN", "short", "VIDEOBRIDGE_ADMIN_TOKEN: must be at least 16"),
    ("VIDEOBRIDGE_CORS_ORIGINS", "oc.app", "VIDEOBRIDGE_CORS_ORIGINS: 'oc.app'"),
    ("VIDEOBRIDGE_LOG_FORMAT", "xml", "VIDEOBRIDGE_LOG_FORMAT: must be json or console"),
    ("VIDEOBRIDGE_LOG_LEVEL", "loud", "VIDEOBRIDGE_LOG_LEVEL: must be one of"),
    ("VIDEOBRIDGE_LEGACY_USER_END", "maybe", "VIDEOBRIDGE_LEGACY_USER_END: must be true or false, got 'maybe'"),
    ("VIDEOBRIDGE_IC_ROOT_KEY", "mainnet", "VIDEOBRIDGE_IC_ROOT_KEY: must be hex"),
    ("VIDEOBRIDGE_IC_ROOT_KEY", "00" * 96, "VIDEOBRIDGE_IC_ROOT_KEY: not a BLS12-381 G2 point"),
])
def test_bad_values_name_the_variable(tmp_path, monkeypatch, name, value, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env(**{name: value}))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_p384_key_is_refused(tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    monkeypatch.chdir(tmp_path)
    pem = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(ConfigError, match="P-256"):
        load_settings(environ=env(OC_PUBLIC=pem))


def test_required_and_missing_env_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="DAILY_API_KEY is required"):
        load_settings(environ={}, require=("DAILY_API_KEY",))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(environ={}, env_file=tmp_path / "missing.env")


def test_cli_reports_config_errors_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "videobridge", "serve"], capture_output=True, text=True,
                            cwd=tmp_path, env={"PATH": os.environ["PATH"], "PORT": "x", "DAILY_API_KEY": "k",
                                               "OC_PUBLIC": PEM}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "videobridge: PORT: must be a whole number, got 'x'"


def test_ic_root_key_defaults_to_mainnet_and_takes_hex(tmp_path, monkeypatch):
    from fakeic import BlsKey

    from videobridge.notifier import MAINNET_ROOT_KEY

    monkeypatch.chdir(tmp_path)
    assert load_settings(environ=env()).ic_root_key is None, "None: IcNotifier's default, the mainnet key"
    der = BlsKey().der
    assert load_settings(environ=env(VIDEOBRIDGE_IC_ROOT_KEY=der.hex())).ic_root_key == der
    assert load_settings(environ=env(VIDEOBRIDGE_IC_ROOT_KEY=der[-96:].hex())).ic_root_key == der
    assert load_settings(environ=env(VIDEOBRIDGE_IC_ROOT_KEY=MAINNET_ROOT_KEY.hex())).ic_root_key == MAINNET_ROOT_KEY


def test_a_bad_ic_root_key_stops_serve_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "videobridge", "serve"], capture_output=True, text=True,
                            cwd=tmp_path, env={"PATH": os.environ["PATH"], "DAILY_API_KEY": "k", "OC_PUBLIC": PEM,
                                               "VIDEOBRIDGE_IC_ROOT_KEY": "308182"}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == ("videobridge: VIDEOBRIDGE_IC_ROOT_KEY: must be 133 bytes (DER) "
                                     "or 96 bytes (bare key), got 3")


def test_webhook_check_and_self_heal_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ=env())
    assert (s.webhook_check_interval, s.webhook_autoheal) == (300.0, True)
    s = load_settings(environ=env(VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL="0", VIDEOBRIDGE_WEBHOOK_AUTOHEAL="off"))
    assert (s.webhook_check_interval, s.webhook_autoheal) == (0.0, False)
    assert load_settings(environ=env(VIDEOBRIDGE_WEBHOOK_AUTOHEAL="Yes")).webhook_autoheal is True
    for name, value, fragment in (("VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL", "0.5", "at least 1 second"),
                                  ("VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL", "soon", "number of seconds"),
                                  ("VIDEOBRIDGE_WEBHOOK_AUTOHEAL", "maybe", "true or false")):
        with pytest.raises(ConfigError, match=fragment) as caught:
            load_settings(environ=env(**{name: value}))
        assert str(caught.value).startswith(name)


def test_store_is_the_state_file_unless_a_redis_url_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ=env()).store_url is None
    assert load_settings(environ=env(VIDEOBRIDGE_STORE="redis://db:6379/2")).store_url == "redis://db:6379/2"
    with pytest.raises(ConfigError, match="VIDEOBRIDGE_STORE must be a redis:// or rediss:// URL"):
        load_settings(environ=env(VIDEOBRIDGE_STORE="/var/lib/videobridge/state.json"))
