"""The `videobridge` command line. Heavy modules are imported inside commands so --help is fast."""

from __future__ import annotations

import typer

from videobridge.cli import calls, config_cmd, rooms, state_cmd, tokens, webhook
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
app.add_typer(state_cmd.app, name="state")


def main() -> None:
    app(prog_name="videobridge")  # every command converts its errors with @handle_errors
