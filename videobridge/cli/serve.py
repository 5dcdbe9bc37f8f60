"""`videobridge serve` and `videobridge sandbox`."""

from __future__ import annotations

import asyncio
import sys

import typer

from videobridge.cli.common import EnvFile, Host, Port, State, load
from videobridge.cli.errors import handle_errors


def register(app: typer.Typer) -> None:
    @app.command(epilog="Example: videobridge serve --env-file /etc/videobridge/env --port 5050")
    @handle_errors
    def serve(host: Host = None, port: Port = None, state: State = None, env_file: EnvFile = None) -> None:
        """Run the bridge: HTTP API, presence poller, webhook receiver and notification outbox."""
        settings = load(env_file, require=("DAILY_API_KEY", "OC_PUBLIC"), host=host, port=port, state=state)
        from videobridge.daemon import serve as run
        from videobridge.logs import configure_logging

        configure_logging(fmt=settings.log_format, level=settings.log_level)
        asyncio.run(run(settings))

    @app.command(epilog="Example: videobridge sandbox --port 5050   (then paste the printed curl line)")
    @handle_errors
    def sandbox(host: Host = None, port: Port = None, state: State = None, env_file: EnvFile = None,
                check: bool = typer.Option(
                    False, "--check", help="Run one start/join/end round trip, print the result and exit.",
                )) -> None:
        """Run the bridge against a built-in Daily emulator with a dev OpenChat key: no credentials needed."""
        settings = load(env_file, host=host, port=port, state=state)
        from videobridge.logs import configure_logging
        from videobridge.sandbox import run_sandbox

        configure_logging(fmt=settings.log_format, level="warning" if check else settings.log_level,
                          stream=sys.stderr)
        asyncio.run(run_sandbox(settings, out=sys.stdout, check=check))
