"""The `chainrisk` command: the root app, its callback and where each command is registered.

Commands live in chainrisk/commands/ and reach the settings and the database through chainrisk.context;
nothing imports this module but the entry point and tests. Heavy imports (torch, pandas, web3) happen
inside the commands that use them.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from chainrisk.commands import alerts as alerts_cmd
from chainrisk.commands import bench as bench_cmd
from chainrisk.commands import contagion as contagion_cmd
from chainrisk.commands import db as db_cmd
from chainrisk.commands import demo as demo_cmd
from chainrisk.commands import devnet as devnet_cmd
from chainrisk.commands import forecast as forecast_cmd
from chainrisk.commands import graph as graph_cmd
from chainrisk.commands import index as index_cmd
from chainrisk.commands import labels as labels_cmd
from chainrisk.commands import onchain as onchain_cmd
from chainrisk.commands import reconcile as reconcile_cmd
from chainrisk.commands import report as report_cmd
from chainrisk.commands import rpc as rpc_cmd
from chainrisk.commands import serve as serve_cmd
from chainrisk.context import AppContext, fail
from chainrisk.exits import new_app
from chainrisk.settings import load_settings

# Errors leave through chainrisk.exits: one `error:` line and the exit code of the error's package root.
app = new_app(
    help="chainrisk: index Ethereum lending, flows and governance into PostgreSQL and analyse their risk.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_cmd.app, name="db")
app.add_typer(rpc_cmd.app, name="rpc", help="JSON-RPC tools: replay recorded chain data.")
app.add_typer(devnet_cmd.app, name="devnet", help="The local chain with published contracts.")
app.add_typer(forecast_cmd.app, name="forecast", help="Volatility and regime forecasts.")
app.add_typer(bench_cmd.app, name="bench", help="Benchmarks with a baseline measured in the same run.")
app.add_typer(labels_cmd.app, name="labels")
app.add_typer(graph_cmd.app, name="graph")
app.add_typer(contagion_cmd.app, name="contagion")
app.add_typer(alerts_cmd.app, name="alerts")
app.add_typer(report_cmd.app, name="report")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic and httpx narrate every step at INFO; users care about their own progress.
    for noisy in ("alembic", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def main_callback(
    ctx: typer.Context,
    log_level: Annotated[
        str | None, typer.Option(envvar="CHAINRISK_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR.")
    ] = None,
) -> None:
    """Settings come from CHAINRISK_* env vars and ./chainrisk.toml (or CHAINRISK_CONFIG)."""
    settings = load_settings()
    level = log_level or settings.log_level
    if level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise fail(f"--log-level {level!r}: expected DEBUG, INFO, WARNING or ERROR")
    configure_logging(level)
    ctx.obj = AppContext(settings=settings)


app.command("migrate")(db_cmd.migrate)
app.command("index")(index_cmd.index)
app.command("reconcile")(reconcile_cmd.reconcile)
bench_cmd.app.command("forecast")(forecast_cmd.bench)
forecast_cmd.app.command("onchain")(onchain_cmd.onchain)
app.command("demo")(demo_cmd.demo)
app.command("serve")(serve_cmd.serve)


def main() -> None:
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    app()
