"""Settings: environment, an optional .env file and systemd credentials, validated once.

Precedence (first wins): explicit overrides (CLI flags) > process environment >
$CREDENTIALS_DIRECTORY/<lowercase-name> > .env file > defaults.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from videobridge.errors import ConfigError

DEFAULT_DAILY_API_URL = "https://api.daily.co/v1"
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
    store_url: str | None = field(default=None, repr=False)  # VIDEOBRIDGE_STORE (may hold a password)
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
    for var in VARIABLES:
        if raw.get(var.name):
            kw[var.attr] = var.parse(var.name, raw[var.name])
    if "state_path" not in kw and environ.get("STATE_DIRECTORY"):
        # systemd may pass several colon-separated directories; the first is ours
        kw["state_path"] = Path(environ["STATE_DIRECTORY"].split(":")[0]) / "state.json"
    return Settings(**kw)


def _redis_url(name: str, value: str) -> str:
    if not value.startswith(("redis://", "rediss://")):
        raise ConfigError(f"{name} must be a redis:// or rediss:// URL (the state file is VIDEOBRIDGE_STATE)")
    return value


def _text(name: str, value: str) -> str:
    return value


def _http_url(name: str, value: str) -> str:
    return _url(name, value).rstrip("/")


def _pem_identity(name: str, value: str) -> str:
    pem = _unescape_pem(value)
    if "-----BEGIN" not in pem:
        raise ConfigError(f"{name}: not a PEM private key")
    return pem


def _port(name: str, value: str) -> int:
    return _int(name, value, 0, 65535)


def _path(name: str, value: str) -> Path:
    return Path(value)


def _interval(name: str, value: str) -> float:
    return _float(name, value, 0.01)


def _seconds(name: str, value: str) -> float:
    return _float(name, value, 0.0)


def _admin_token(name: str, value: str) -> str:
    if len(value) < 16:
        raise ConfigError(f"{name}: must be at least 16 characters")
    return value


def _origins(name: str, value: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://", "tauri://")):
            raise ConfigError(f"{name}: {origin!r} is not '*' or an origin like https://oc.app")
    return origins or ("*",)


def _log_format(name: str, value: str) -> str:
    fmt = value.lower()
    if fmt not in ("json", "console", "auto"):
        raise ConfigError(f"{name}: must be json or console")
    return fmt


def _log_level(name: str, value: str) -> str:
    level = value.lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{name}: must be one of {', '.join(LOG_LEVELS)}")
    return level


def _check_interval(name: str, value: str) -> float:
    interval = _float(name, value, 0.0)
    if 0 < interval < 1:
        raise ConfigError(f"{name}: must be 0 (off) or at least 1 second")
    return interval


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


@dataclass(frozen=True, slots=True)
class Variable:
    """One setting: it drives parsing, `videobridge config check` and the README's table."""

    name: str
    attr: str  # the Settings attribute it sets
    parse: Callable[[str, str], object]  # (name, stripped value) -> value; raises ConfigError
    default: str  # what holds when unset, as the README says it
    meaning: str
    secret: bool = False  # never shown, never logged
    # what `config check` says when it is unset: ok (the default serves), warn or fail
    unset: tuple[str, str] = ("ok", "default")


VARIABLES: tuple[Variable, ...] = (
    Variable("DAILY_API_KEY", "daily_api_key", _text, "required for `serve`",
             "Daily API key (bearer auth; also the HS256 secret of meeting tokens)", secret=True,
             unset=("fail", "not set: serve needs it")),
    Variable("DAILY_API_URL", "daily_api_url", _http_url, f"`{DEFAULT_DAILY_API_URL}`", "Daily REST base URL"),
    Variable("DAILY_DOMAIN_ID", "daily_domain_id", _text, "fetched once from `GET {DAILY_API_URL}/`",
             "Daily domain id for self-signed tokens",
             unset=("ok", "not set: fetched from Daily at start-up")),
    Variable("DAILY_HOOK_HMAC", "daily_hook_hmac", _base64, "webhooks refused with 503 (the poller still ends calls)",
             "base64 webhook secret", secret=True,
             unset=("warn", "not set: webhooks refused (503); presence polling alone ends calls")),
    Variable("OC_PUBLIC", "oc_public", _public_key, "required for `serve`",
             "OpenChat JWT public key, SPKI PEM (P-256)", secret=True,
             unset=("fail", "not set: serve needs it to verify OpenChat JWTs")),
    Variable("OC_IDENTITY", "oc_identity", _pem_identity, "notifications off (one warning at start-up)",
             "secp256k1 private key PEM (SEC1 or PKCS#8) of OpenChat's video-call operator", secret=True,
             unset=("warn", "not set: OpenChat is not told about calls")),
    Variable("IC_URL", "ic_url", _http_url, "notifications off", "IC boundary node, e.g. `https://icp-api.io`",
             unset=("warn", "not set: OpenChat is not told about calls")),
    Variable("PORT", "port", _port, "`5050`", "listen port (ignored when systemd passes a socket)"),
    Variable("HOST", "host", _text, "`127.0.0.1`", "listen address (ignored when systemd passes a socket)"),
    Variable("VIDEOBRIDGE_STATE", "state_path", _path,
             "`./videobridge.json`; `$STATE_DIRECTORY/state.json` under systemd",
             "TinyDB state file (its journal, `<file>.journal`, sits beside it)"),
    Variable("VIDEOBRIDGE_STORE", "store_url", _redis_url, "the state file (`VIDEOBRIDGE_STATE`)",
             "`redis://` or `rediss://` URL of a Redis 7+ (AOF, `appendfsync always`) to keep state in instead, "
             "shared by every instance",
             secret=True),
    Variable("VIDEOBRIDGE_PRESENCE_INTERVAL", "presence_interval", _interval, "`15`",
             "seconds between presence polls"),
    Variable("VIDEOBRIDGE_START_GRACE", "start_grace", _seconds, "`300`",
             "seconds a started call may stay unseen in Daily before it is ended"),
    Variable("VIDEOBRIDGE_ADMIN_TOKEN", "admin_token", _admin_token, "admin endpoints answer 404",
             "bearer token for the admin endpoints (16+ characters)", secret=True,
             unset=("ok", "not set: admin API off (calls end works on the file when serve is down)")),
    Variable("VIDEOBRIDGE_CORS_ORIGINS", "cors_origins", _origins, "`*`", "comma-separated allowed origins"),
    Variable("VIDEOBRIDGE_LOG_FORMAT", "log_format", _log_format, "`json`, `console` on a terminal",
             "`json` or `console`"),
    Variable("VIDEOBRIDGE_LOG_LEVEL", "log_level", _log_level, "`info`", "`debug`, `info`, `warning`, `error`"),
    Variable("VIDEOBRIDGE_LEGACY_USER_END", "legacy_user_end", _bool,
             "`false`: `{user_id: owner, them: other user, message_id}`",
             "`true`/`false`: user-canister ends in the shape from before OpenChat #9401"),
    Variable("VIDEOBRIDGE_IC_ROOT_KEY", "ic_root_key", _root_key, "the IC mainnet's root key",
             "IC root key that replies' certificates must verify under (hex; local replicas and test networks)"),
    Variable("VIDEOBRIDGE_WEBHOOK_CHECK_INTERVAL", "webhook_check_interval", _check_interval, "`300`",
             "seconds between checks of the Daily webhook's state (`0`: never check)"),
    Variable("VIDEOBRIDGE_WEBHOOK_AUTOHEAL", "webhook_autoheal", _bool, "`true`",
             "`true`/`false`: reactivate our webhook when Daily's circuit breaker stopped it (`FAILED`)"),
)
KNOWN = tuple(var.name for var in VARIABLES)
SECRETS = tuple(var.name for var in VARIABLES if var.secret)
