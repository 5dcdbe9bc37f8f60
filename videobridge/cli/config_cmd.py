"""`videobridge config check`: every setting, where it came from, whether it works.

Exit status: 0 all well (warnings allowed unless --strict), 1 a check failed (Daily, the webhook,
the IC, the state file), 2 a setting is missing or does not parse (`serve` would refuse to start).
Secret values are never shown: only "set", their source and what they yield (the IC principal).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from videobridge.cli.common import EnvFile
from videobridge.cli.errors import FAILED, USAGE, OperatorError, handle_errors, run
from videobridge.cli.output import Json, note, print_json, print_table, status_text

if TYPE_CHECKING:
    from videobridge.config import Settings

app = typer.Typer(name="config", help="Check the configuration before a deploy.", no_args_is_help=True)

PREFIXES = ("DAILY_", "OC_", "IC_", "VIDEOBRIDGE_")


@dataclass(slots=True)
class Row:
    name: str
    status: str  # ok | warn | fail
    detail: str
    source: str = ""
    value: str = ""


@app.command("check", epilog="Examples:  videobridge config check --env-file /etc/videobridge/env  |  "
             "videobridge config check --json | jq .problems")
@handle_errors
def check(
    env_file: EnvFile = None,
    offline: Annotated[bool, typer.Option("--offline", help="Skip the network checks (Daily, IC).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as failures.")] = False,
    json: Json = False,
) -> None:
    """Every setting with its source and whether it parses; Daily, its webhook, the IC and the state file."""
    settings_rows, settings = inspect_settings(env_file)
    checks = [state_check(settings)]
    if not offline:
        checks += run(network_checks(settings))
    problems = [r for r in settings_rows + checks if r.status == "fail" or (strict and r.status == "warn")]
    if json:
        print_json({"ok": not problems, "settings": [asdict(r) for r in settings_rows],
                    "checks": [asdict(r) for r in checks], "problems": [asdict(r) for r in problems]})
    else:
        print_table("settings", ("setting", "source", "value", "status", "detail"),
                    [(r.name, r.source, r.value, status_text(r.status), r.detail) for r in settings_rows])
        print_table("checks", ("check", "status", "detail"),
                    [(r.name, status_text(r.status), r.detail) for r in checks])
        if problems:
            print_table("what is wrong", ("", "problem"), [(r.name, r.detail) for r in problems])
    if not problems:
        if not json:
            note("configuration OK")
        return
    # the report is out (stdout): in JSON the exit status alone says it, else one line on stderr
    code = USAGE if any(r.status == "fail" for r in settings_rows) else FAILED
    raise OperatorError("" if json else f"{len(problems)} problem(s) found", code=code)


def inspect_settings(env_file: Path | None) -> tuple[list[Row], Settings]:
    """One row per known setting; returns Settings built from the values that parse."""
    from videobridge.config import KNOWN, SECRETS, VARIABLES, Settings, collect, load_settings
    from videobridge.errors import ConfigError

    raw, sources = collect(env_file=env_file)
    rows: list[Row] = []
    good: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.env"
        empty.write_text("")
        for name in KNOWN:
            value = raw.get(name, "")
            if not value.strip():
                rows.append(_unset(name))
                continue
            row = Row(name, "ok", "", sources.get(name, ""), "set" if name in SECRETS else _short(value))
            try:
                load_settings(env_file=empty, environ={name: value})
                good[name] = value
            except ConfigError as exc:
                row.status, row.detail = "fail", str(exc)
            rows.append(row)
        environ = dict(good)
        if os.environ.get("STATE_DIRECTORY"):
            environ["STATE_DIRECTORY"] = os.environ["STATE_DIRECTORY"]
        settings = load_settings(env_file=empty, environ=environ)
    by_name = {r.name: r for r in rows}
    for var in VARIABLES:  # an unset plain setting shows the value it defaults to
        row = by_name[var.name]
        value = getattr(settings, var.attr)
        if row.source == "" and row.status == "ok" and not var.secret and value is not None:
            row.value = _short(_plain(value))
    _describe(by_name, settings)
    rows += [Row(name, "warn", "unknown setting (typo?)", source, "") for name, source in _strangers(env_file, KNOWN)]
    assert isinstance(settings, Settings)
    return rows, settings


def _unset(name: str) -> Row:
    from videobridge.config import VARIABLES

    status, detail = next((v.unset for v in VARIABLES if v.name == name), ("ok", "default"))
    return Row(name, status, detail)


def _describe(rows: dict[str, Row], settings: Settings) -> None:
    identity = rows["OC_IDENTITY"]
    if identity.status == "ok" and settings.oc_identity:
        from videobridge.notifier import identity_principal, load_identity

        try:
            identity.detail = f"principal {identity_principal(load_identity(settings.oc_identity))}"
        except ValueError as exc:
            identity.status, identity.detail = "fail", f"OC_IDENTITY: {exc}"
    if rows["OC_PUBLIC"].status == "ok" and settings.oc_public:
        rows["OC_PUBLIC"].detail = "P-256 public key"
    if rows["DAILY_HOOK_HMAC"].status == "ok" and settings.daily_hook_hmac:
        rows["DAILY_HOOK_HMAC"].detail = f"{len(settings.daily_hook_hmac)}-byte secret"
    if bool(settings.oc_identity) != bool(settings.ic_url):
        for name in ("OC_IDENTITY", "IC_URL"):
            if rows[name].status == "ok":
                rows[name].status = "warn"
                rows[name].detail = (rows[name].detail + "; " if rows[name].detail else "") + \
                    "notifications need both OC_IDENTITY and IC_URL"


def _strangers(env_file: Path | None, known: tuple[str, ...]) -> list[tuple[str, str]]:
    found = [(k, "env") for k in os.environ if k.startswith(PREFIXES) and k not in known]
    path = env_file if env_file is not None else Path(".env")
    if path.is_file():
        from dotenv import dotenv_values

        found += [(k, ".env") for k in dotenv_values(path) if k.startswith(PREFIXES) and k not in known]
    return sorted(set(found))


def _plain(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _short(value: str) -> str:
    value = value.replace("\n", "\\n")
    return value if len(value) <= 60 else value[:57] + "..."


def state_check(settings: Settings) -> Row:
    import fcntl

    from videobridge.errors import StateError
    from videobridge.state.filestore import read_state

    if settings.store_url:
        from videobridge.state.redisstore import read_redis, redacted

        try:
            calls, outbox = read_redis(settings.store_url)
        except StateError as exc:
            return Row("state store", "fail", str(exc))
        return Row("state store", "ok", f"{redacted(settings.store_url)}: {len(calls)} call(s), "
                                        f"{len(outbox)} pending notification(s)")
    path = settings.state_path
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return Row("state file", "fail", f"{folder} does not exist")
    if not os.access(folder, os.W_OK):
        return Row("state file", "fail", f"{folder} is not writable")
    if not path.exists():
        return Row("state file", "ok", f"{path} (created on first start)")
    try:
        calls, outbox = read_state(path)
    except StateError as exc:
        return Row("state file", "fail", str(exc))
    held = ""
    lock = path.with_name(path.name + ".lock")
    if lock.exists():
        with open(lock) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
            except BlockingIOError:
                held = ", held by a running serve"
    return Row("state file", "ok", f"{path}: {len(calls)} call(s), {len(outbox)} pending notification(s){held}")


async def network_checks(settings: Settings) -> list[Row]:
    rows = await daily_checks(settings)
    rows.append(await ic_check(settings))
    return rows


async def daily_checks(settings: Settings) -> list[Row]:
    from videobridge.cli.errors import daily_client
    from videobridge.cli.webhook import EVENT_TYPES, hmac_matches
    from videobridge.daily import DailyError

    if not settings.daily_api_key:
        return [Row("Daily API", "fail", "skipped: DAILY_API_KEY not set")]
    rows = []
    async with daily_client(settings, deadline=6.0) as daily:
        try:
            domain = await daily.get_domain()
            hooks = await daily.list_webhooks()
        except DailyError as exc:
            return [Row("Daily API", "fail", f"{settings.daily_api_url}: {exc}")]
    rows.append(Row("Daily API", "ok", f"{settings.daily_api_url} reachable, domain {domain.domain_name}"))
    if settings.daily_domain_id and settings.daily_domain_id != domain.domain_id:
        rows.append(Row("Daily domain id", "fail", f"DAILY_DOMAIN_ID is not this key's domain ({domain.domain_id}): "
                                                   "self-signed tokens would be refused"))
    else:
        rows.append(Row("Daily domain id", "ok", domain.domain_id))
    if not hooks:
        rows.append(Row("Daily webhook", "warn", "none registered: run `videobridge webhook register URL`"))
        return rows
    hook = hooks[0]
    detail = f"{hook.url}: {hook.state}, {hook.failed_count} failed, retry {hook.retry_type}"
    if not hook.active:
        rows.append(Row("Daily webhook", "fail",
                        f"{detail}: Daily stopped delivering; run `videobridge webhook reactivate`"))
    elif not settings.daily_hook_hmac:
        rows.append(Row("Daily webhook", "fail", f"{detail}: DAILY_HOOK_HMAC not set, the bridge refuses every event"))
    elif not hmac_matches(hook, settings):
        rows.append(Row("Daily webhook", "fail", f"{detail}: Daily signs with another secret than DAILY_HOOK_HMAC; "
                                                 "run `videobridge webhook register URL`"))
    elif missing := [e for e in EVENT_TYPES if e not in hook.event_types]:
        rows.append(Row("Daily webhook", "warn", f"{detail}: not subscribed to {', '.join(missing)}"))
    else:
        rows.append(Row("Daily webhook", "warn" if hook.failed_count else "ok", detail))
    return rows


async def ic_check(settings: Settings) -> Row:
    import aiohttp

    if not settings.ic_url:
        return Row("IC", "warn", "skipped: IC_URL not set (notifications off)")
    url = settings.ic_url + "/api/v2/status"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=6.0)) as http, http.get(url) as resp:
            status = resp.status
            body = await resp.read() if status == 200 else b""
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Row("IC", "fail", f"{url}: unreachable ({type(exc).__name__})")
    if status != 200:
        return Row("IC", "fail", f"{url}: HTTP {status}")
    return _root_key_row(url, body, settings)


def _root_key_row(url: str, body: bytes, settings: Settings) -> Row:
    """Replies verify only under the trusted root key: say so when the IC announces another one."""
    import cbor2

    from videobridge.notifier.certificate import MAINNET_ROOT_KEY

    try:
        status = cbor2.loads(body)
        status = status.value if isinstance(status, cbor2.CBORTag) else status
        announced = bytes(status["root_key"])
    except Exception:
        return Row("IC", "ok", f"{url}: reachable")
    trusted = settings.ic_root_key or MAINNET_ROOT_KEY
    which = "VIDEOBRIDGE_IC_ROOT_KEY" if settings.ic_root_key else "the mainnet root key"
    if announced == trusted:
        return Row("IC", "ok", f"{url}: reachable, root key is {which}")
    return Row("IC", "fail", f"{url}: reachable, but its root key is not {which}, so no reply would verify "
                             f"and every notification would be retried; if you trust this network, set "
                             f"VIDEOBRIDGE_IC_ROOT_KEY={announced.hex()}")
