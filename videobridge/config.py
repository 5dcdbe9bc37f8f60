"""Settings: environment, an optional .env file and systemd credentials, validated once.

Precedence (first wins): explicit overrides (CLI flags) > process environment >
$CREDENTIALS_DIRECTORY/<lowercase-name> > .env file > defaults.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from videobridge.errors import ConfigError

DEFAULT_DAILY_API_URL = "https://api.daily.co/v1"
SECRETS = ("DAILY_API_KEY", "DAILY_HOOK_HMAC", "OC_IDENTITY", "VIDEOBRIDGE_ADMIN_TOKEN", "OC_PUBLIC")
KNOWN = (
    "DAILY_API_KEY", "DAILY_API_URL", "DAILY_DOMAIN_ID", "DAILY_HOOK_HMAC", "OC_PUBLIC",
    "OC_IDENTITY", "IC_URL", "PORT", "HOST", "VIDEOBRIDGE_STATE", "VIDEOBRIDGE_PRESENCE_INTERVAL",
    "VIDEOBRIDGE_START_GRACE", "VIDEOBRIDGE_ADMIN_TOKEN", "VIDEOBRIDGE_CORS_ORIGINS",
    "VIDEOBRIDGE_LOG_FORMAT", "VIDEOBRIDGE_LOG_LEVEL", "VIDEOBRIDGE_LEGACY_USER_END",
    "VIDEOBRIDGE_IC_ROOT_KEY",
    "VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL", "VIDEOBRIDGE_WEBHOOK_AUTOHEAL",
)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    daily_api_key: str | None = field(default=None, repr=False)
    daily_api_url: str = DEFAULT_DAILY_API_URL
    daily_domain_id: str | None = None
    daily_hook_hmac: bytes | None = field(default=None, repr=False)  # decoded secret
    oc_public: str | None = field(default=None, repr=False)
    oc_identity: str | None = field(default=None, repr=False)
    ic_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 5050
    state_path: Path = Path("videobridge.json")
    presence_interval: float = 15.0
    start_grace: float = 300.0
    admin_token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ("*",)
    log_format: Literal["json", "console", "auto"] = "auto"
    log_level: str = "info"
    legacy_user_end: bool = False  # user-canister ends in the shape from before OpenChat #9401
    ic_root_key: bytes | None = field(default=None, repr=False)  # DER; None = the IC mainnet's root key
    webhook_check_interval: float = 300.0  # 0: never check the Daily webhook
    webhook_autoheal: bool = True  # reactivate our webhook when Daily's circuit breaker stopped it
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def notifications_enabled(self) -> bool:
        return bool(self.ic_url and self.oc_identity)


def _unescape_pem(value: str) -> str:
    return value.replace("\\n", "\n").strip() + "\n"


def _read_dotenv(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values  # python-dotenv: the .env dialect people already write

    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--env-file {path}: cannot read: {exc.__class__.__name__}") from exc
    return {k: v for k, v in values.items() if v is not None}


def _read_credentials(directory: str | None) -> dict[str, str]:
    if not directory:
        return {}
    found: dict[str, str] = {}
    for name in KNOWN:
        path = Path(directory) / name.lower()
        try:
            found[name] = path.read_text().strip()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read credential {path}: {exc.strerror}") from exc
    return found


def collect(*, env_file: Path | None = None, environ: Mapping[str, str] | None = None,
            overrides: Mapping[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Gather raw values and where each came from, without validating them."""
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, str]]] = []
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError(f"--env-file {env_file}: no such file")
        layers.append((".env", _read_dotenv(env_file)))
    elif Path(".env").is_file():
        layers.append((".env", _read_dotenv(Path(".env"))))
    layers.append(("credential", _read_credentials(environ.get("CREDENTIALS_DIRECTORY"))))
    layers.append(("env", {k: v for k, v in environ.items() if k in KNOWN}))
    layers.append(("flag", dict(overrides or {})))
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key, value in layer.items():
            if key in KNOWN and value is not None:
                values[key] = value
                sources[key] = source
    return values, sources


def load_settings(*, env_file: Path | None = None, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, str] | None = None,
                  require: tuple[str, ...] = ()) -> Settings:
    """Read and validate every setting; raise ConfigError naming the first bad one."""
    environ = os.environ if environ is None else environ
    raw, sources = collect(env_file=env_file, environ=environ, overrides=overrides)
    raw = {k: v.strip() if k not in ("OC_PUBLIC", "OC_IDENTITY") else v for k, v in raw.items()}
    for name in require:
        if not raw.get(name):
            raise ConfigError(f"{name} is required but not set (environment, .env or credential)")
    kw: dict[str, Any] = {"sources": sources}
    if raw.get("DAILY_API_KEY"):
        kw["daily_api_key"] = raw["DAILY_API_KEY"]
    if raw.get("DAILY_API_URL"):
        kw["daily_api_url"] = _url("DAILY_API_URL", raw["DAILY_API_URL"]).rstrip("/")
    if raw.get("DAILY_DOMAIN_ID"):
        kw["daily_domain_id"] = raw["DAILY_DOMAIN_ID"]
    if raw.get("DAILY_HOOK_HMAC"):
        kw["daily_hook_hmac"] = _base64("DAILY_HOOK_HMAC", raw["DAILY_HOOK_HMAC"])
    if raw.get("OC_PUBLIC"):
        kw["oc_public"] = _public_key("OC_PUBLIC", raw["OC_PUBLIC"])
    if raw.get("OC_IDENTITY"):
        pem = _unescape_pem(raw["OC_IDENTITY"])
        if "-----BEGIN" not in pem:
            raise ConfigError("OC_IDENTITY: not a PEM private key")
        kw["oc_identity"] = pem
    if raw.get("IC_URL"):
        kw["ic_url"] = _url("IC_URL", raw["IC_URL"]).rstrip("/")
    if raw.get("HOST"):
        kw["host"] = raw["HOST"]
    if raw.get("PORT"):
        kw["port"] = _int("PORT", raw["PORT"], 0, 65535)
    state = raw.get("VIDEOBRIDGE_STATE")
    if state:
        kw["state_path"] = Path(state)
    elif environ.get("STATE_DIRECTORY"):
        # systemd may pass several colon-separated directories; the first is ours
        kw["state_path"] = Path(environ["STATE_DIRECTORY"].split(":")[0]) / "state.json"
    if raw.get("VIDEOBRIDGE_PRESENCE_INTERVAL"):
        kw["presence_interval"] = _float("VIDEOBRIDGE_PRESENCE_INTERVAL", raw["VIDEOBRIDGE_PRESENCE_INTERVAL"], 0.01)
    if raw.get("VIDEOBRIDGE_START_GRACE"):
        kw["start_grace"] = _float("VIDEOBRIDGE_START_GRACE", raw["VIDEOBRIDGE_START_GRACE"], 0.0)
    if raw.get("VIDEOBRIDGE_ADMIN_TOKEN"):
        token = raw["VIDEOBRIDGE_ADMIN_TOKEN"]
        if len(token) < 16:
            raise ConfigError("VIDEOBRIDGE_ADMIN_TOKEN: must be at least 16 characters")
        kw["admin_token"] = token
    if raw.get("VIDEOBRIDGE_CORS_ORIGINS"):
        origins = tuple(o.strip().rstrip("/") for o in raw["VIDEOBRIDGE_CORS_ORIGINS"].split(",") if o.strip())
        for origin in origins:
            if origin != "*" and not origin.startswith(("http://", "https://", "tauri://")):
                raise ConfigError(f"VIDEOBRIDGE_CORS_ORIGINS: {origin!r} is not '*' or an origin like https://oc.app")
        kw["cors_origins"] = origins or ("*",)
    if raw.get("VIDEOBRIDGE_LOG_FORMAT"):
        fmt = raw["VIDEOBRIDGE_LOG_FORMAT"].lower()
        if fmt not in ("json", "console", "auto"):
            raise ConfigError("VIDEOBRIDGE_LOG_FORMAT: must be json or console")
        kw["log_format"] = fmt
    if raw.get("VIDEOBRIDGE_LOG_LEVEL"):
        level = raw["VIDEOBRIDGE_LOG_LEVEL"].lower()
        if level not in LOG_LEVELS:
            raise ConfigError(f"VIDEOBRIDGE_LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}")
        kw["log_level"] = level
    if raw.get("VIDEOBRIDGE_LEGACY_USER_END"):
        kw["legacy_user_end"] = _bool("VIDEOBRIDGE_LEGACY_USER_END", raw["VIDEOBRIDGE_LEGACY_USER_END"])
    if raw.get("VIDEOBRIDGE_IC_ROOT_KEY"):
        kw["ic_root_key"] = _root_key("VIDEOBRIDGE_IC_ROOT_KEY", raw["VIDEOBRIDGE_IC_ROOT_KEY"])
    if raw.get("VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL"):
        interval = _float("VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL", raw["VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL"], 0.0)
        if 0 < interval < 1:
            raise ConfigError("VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL: must be 0 (off) or at least 1 second")
        kw["webhook_check_interval"] = interval
    if raw.get("VIDEOBRIDGE_WEBHOOK_AUTOHEAL"):
        kw["webhook_autoheal"] = _bool("VIDEOBRIDGE_WEBHOOK_AUTOHEAL", raw["VIDEOBRIDGE_WEBHOOK_AUTOHEAL"])
    return Settings(**kw)


def _url(name: str, value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ConfigError(f"{name}: must be an http(s) URL, got {value[:40]!r}")
    return value


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}: must be a whole number, got {value[:20]!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name}: must be between {low} and {high}, got {number}")
    return number


_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _bool(name: str, value: str) -> bool:
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        raise ConfigError(f"{name}: must be true or false, got {value[:20]!r}") from None


def _float(name: str, value: str, low: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}: must be a number of seconds, got {value[:20]!r}") from None
    if not math.isfinite(number) or number < low:
        raise ConfigError(f"{name}: must be a finite number >= {low}, got {value[:20]!r}")
    return number


def _base64(name: str, value: str) -> bytes:
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name}: must be base64 (as Daily's webhook hmac is)") from None
    if not decoded:
        raise ConfigError(f"{name}: decodes to an empty secret")
    return decoded


def _public_key(name: str, value: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    pem = _unescape_pem(value)
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ConfigError(f"{name}: not a PEM public key (SPKI, -----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{name}: must be a P-256 (ES256) public key")
    return pem


def _root_key(name: str, value: str) -> bytes:
    from videobridge.notifier.certificate import root_key_from_text

    try:
        return root_key_from_text(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
