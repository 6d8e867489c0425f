"""`chainrisk rpc` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="rpc commands.", no_args_is_help=True)
