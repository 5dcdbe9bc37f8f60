"""The `videobridge` command line. Heavy modules are imported inside commands so --help is fast."""

from __future__ import annotations

import sys

import typer

from videobridge.cli import calls, config_cmd, rooms, tokens, webhook
from videobridge.cli.common import fail
from videobridge.cli.serve import register as register_serve

app = typer.Typer(
    name="videobridge",
    help="The OpenChat video bridge: OpenChat JWTs in, Daily rooms and meeting tokens out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,  # --install-completion / --show-completion
)
register_serve(app)
app.add_typer(rooms.app, name="rooms")
app.add_typer(tokens.app, name="token")
app.add_typer(calls.app, name="calls")
app.add_typer(config_cmd.app, name="config")
app.add_typer(webhook.app, name="webhook")


def main() -> None:
    from videobridge.errors import ConfigError, VideoBridgeError

    try:
        app(prog_name="videobridge")
    except ConfigError as exc:
        fail(str(exc), code=2)
    except VideoBridgeError as exc:
        fail(str(exc), code=1)
    except KeyboardInterrupt:
        sys.exit(130)
