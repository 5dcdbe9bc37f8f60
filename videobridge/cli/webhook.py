"""`videobridge webhook register|status|reactivate`: keep Daily's webhook pointed at the bridge.

A Daily domain has at most one webhook. `register` creates it or updates the existing one with
our DAILY_HOOK_HMAC, the four event types the bridge uses and the chosen retry type. Daily sends
a {"test":"test"} probe to the URL first, so the bridge must be reachable from Daily.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from videobridge.cli.common import EnvFile, load
from videobridge.cli.errors import USAGE, OperatorError, daily_client, handle_errors, run
from videobridge.cli.output import Json, note, print_fields, print_json, warn
from videobridge.daily.protocol import EVENT_TYPES
from videobridge.webhooks.ownership import HOOK_PATH
from videobridge.webhooks.ownership import hmac_matches as _hmac_matches

if TYPE_CHECKING:
    from videobridge.config import Settings
    from videobridge.daily import Webhook

app = typer.Typer(name="webhook", help="Register, inspect and reactivate the Daily webhook.", no_args_is_help=True)

__all__ = ["EVENT_TYPES", "HOOK_PATH", "app", "hmac_matches"]


class RetryType(StrEnum):
    exponential = "exponential"
    circuit_breaker = "circuit-breaker"


def hmac_matches(hook: Webhook, settings: Settings) -> bool | None:
    """Whether Daily signs with our DAILY_HOOK_HMAC; None when either side is unknown."""
    return _hmac_matches(hook, settings.daily_hook_hmac)


def hook_json(hook: Webhook, settings: Settings) -> dict[str, Any]:
    return {"uuid": hook.uuid, "url": hook.url, "state": hook.state, "failedCount": hook.failed_count,
            "retryType": hook.retry_type, "eventTypes": list(hook.event_types),
            "lastMomentPushed": hook.last_moment_pushed, "hmacMatches": hmac_matches(hook, settings)}


def show(hook: Webhook, settings: Settings, *, json: bool, title: str) -> None:
    if json:
        print_json(hook_json(hook, settings))
        return
    matches = {True: "yes", False: "NO: Daily signs with another secret", None: "unknown"}[hmac_matches(hook, settings)]
    print_fields(title, [
        ("uuid", hook.uuid), ("url", hook.url), ("state", hook.state), ("failed count", hook.failed_count),
        ("retry type", hook.retry_type), ("events", ", ".join(hook.event_types)),
        ("last delivery", hook.last_moment_pushed or "-"), ("DAILY_HOOK_HMAC matches", matches),
    ])


async def _current(settings: Settings) -> Webhook | None:
    async with daily_client(settings) as daily:
        hooks = await daily.list_webhooks()
    return hooks[0] if hooks else None


@app.command("register", epilog="Examples:\n\n  videobridge webhook register https://video.example.org/room/hook\n\n"
             "  videobridge webhook register https://video.example.org/room/hook --retry-type circuit-breaker")
@handle_errors
def register(
    url: Annotated[str, typer.Argument(help="The bridge's public webhook URL (ends in /room/hook).",
                                       show_default=False)],
    retry_type: Annotated[RetryType, typer.Option("--retry-type", help="exponential: per-event retries, never "
                                                  "trips; circuit-breaker: stops after 3 failures.")]
    = RetryType.exponential,
    env_file: EnvFile = None,
    json: Json = False,
) -> None:
    """Point the domain's webhook at URL with our DAILY_HOOK_HMAC and the four call events."""
    if not url.startswith(("https://", "http://")):
        raise OperatorError(f"{url[:80]!r} is not an http(s) URL", code=USAGE)
    settings = load(env_file, require=("DAILY_API_KEY", "DAILY_HOOK_HMAC"))
    if not url.rstrip("/").endswith(HOOK_PATH):
        warn(f"the bridge receives webhooks at {HOOK_PATH}; {url} does not end with it")
    hook, created = run(_register(settings, url, retry_type.value))
    show(hook, settings, json=json, title="webhook registered" if created else "webhook updated")


async def _register(settings: Settings, url: str, retry_type: str) -> tuple[Webhook, bool]:
    assert settings.daily_hook_hmac
    secret = base64.b64encode(settings.daily_hook_hmac).decode()
    async with daily_client(settings, deadline=20.0) as daily:  # Daily probes the URL before answering
        hooks = await daily.list_webhooks()
        if hooks:
            hook = await daily.update_webhook(hooks[0].uuid, url=url, hmac=secret, event_types=list(EVENT_TYPES),
                                              retry_type=retry_type)
            return hook, False
        return await daily.create_webhook(url=url, hmac=secret, event_types=EVENT_TYPES, retry_type=retry_type), True


@app.command("status", epilog="Examples:  videobridge webhook status  |  videobridge webhook status --json")
@handle_errors
def status(env_file: EnvFile = None, json: Json = False) -> None:
    """The webhook's state and failure count. Exit 1 when Daily is not delivering (not ACTIVE)."""
    settings = load(env_file, require=("DAILY_API_KEY",))
    hook = run(_current(settings))
    if hook is None:
        raise OperatorError("no webhook registered: run `videobridge webhook register URL`")
    show(hook, settings, json=json, title="Daily webhook")
    if hmac_matches(hook, settings) is False:
        warn("Daily signs events with another secret than DAILY_HOOK_HMAC: the bridge refuses them; "
             "run `videobridge webhook register URL`")
    if missing := [e for e in EVENT_TYPES if e not in hook.event_types]:
        warn(f"the webhook is not subscribed to {', '.join(missing)}")
    if not hook.active:
        raise OperatorError(f"the webhook is {hook.state}: Daily has stopped delivering events; "
                            "run `videobridge webhook reactivate`")
    if hook.failed_count:
        warn(f"{hook.failed_count} recent delivery failure(s)"
             + ("; 3 in a row stop delivery" if hook.retry_type == "circuit-breaker" else ""))


@app.command("reactivate", epilog="Example:  videobridge webhook reactivate")
@handle_errors
def reactivate(env_file: EnvFile = None, json: Json = False) -> None:
    """Re-enable a webhook Daily stopped (FAILED): Daily probes the URL again, then delivers."""
    settings = load(env_file, require=("DAILY_API_KEY",))
    hook = run(_reactivate(settings))
    show(hook, settings, json=json, title="webhook reactivated")
    if not json:
        note(f"the webhook is {hook.state}")


async def _reactivate(settings: Settings) -> Webhook:
    from videobridge.webhooks.ownership import reactivate  # the same call the daemon's self-heal makes

    async with daily_client(settings, deadline=20.0) as daily:
        hooks = await daily.list_webhooks()
        if not hooks:
            raise OperatorError("no webhook registered: run `videobridge webhook register URL`")
        return await reactivate(daily, hooks[0])
