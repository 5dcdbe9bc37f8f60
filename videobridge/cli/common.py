"""Shared CLI plumbing: options, loading settings, one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from videobridge.config import Settings

EnvFile = Annotated[
    Path | None,
    typer.Option(
        "--env-file", help="Read settings from this .env file (default: ./.env if present).", show_default=False
    ),
]
Host = Annotated[
    str | None, typer.Option("--host", help="Listen address (HOST, default 127.0.0.1).", show_default=False)
]
Port = Annotated[
    int | None, typer.Option("--port", help="Listen port (PORT, default 5050).", min=0, max=65535, show_default=False)
]
State = Annotated[
    Path | None, typer.Option("--state", help="TinyDB state file (VIDEOBRIDGE_STATE).", show_default=False)
]


def fail(message: str, *, code: int = 1) -> NoReturn:
    sys.stderr.write(f"videobridge: {message}\n")
    raise SystemExit(code)


def overrides(*, host: str | None = None, port: int | None = None, state: Path | None = None) -> dict[str, str]:
    found: dict[str, str] = {}
    if host is not None:
        found["HOST"] = host
    if port is not None:
        found["PORT"] = str(port)
    if state is not None:
        found["VIDEOBRIDGE_STATE"] = str(state)
    return found


def load(env_file: Path | None, *, require: tuple[str, ...] = (), host: str | None = None,
         port: int | None = None, state: Path | None = None) -> Settings:
    from videobridge.config import load_settings

    return load_settings(env_file=env_file, overrides=overrides(host=host, port=port, state=state), require=require)
