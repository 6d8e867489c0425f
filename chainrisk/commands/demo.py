"""`chainrisk demo`: the main job, end to end — devnet, scenario, indexer, summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from chainrisk import demo as steps  # light: each step imports what it runs when it runs
from chainrisk.context import app_context, console

DATA_HELP = "Folder of recorded mainnet data (the repository's data/)."


def demo(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=1, help="Simulated days of the market scenario.")] = 30,
    wallets: Annotated[int, typer.Option(min=2, help="Wallets in the scenario.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the price path and the agents.")] = 1,
    data: Annotated[Path, typer.Option(help=DATA_HELP)] = steps.DEFAULT_DATA,
) -> None:
    """Devnet with real Aave v3 markets, a seeded market scenario with a crash, everything indexed.

    Starts (or reuses) the embedded PostgreSQL unless CHAINRISK_DATABASE_URL is set, starts anvil, deploys,
    simulates, indexes the chain, runs the contagion Monte Carlo and writes the contagion report, indexes
    the recorded mainnet data through the replay server, and prints what was indexed and how to query it.
    """
    steps.require_recordings(data)
    app, out = app_context(ctx), console()
    started = time.monotonic()
    conninfo = steps.database(out, app)
    manifest = steps.devnet(out, app, conninfo, days, wallets, seed)
    steps.risk_summary(out, conninfo, manifest)
    steps.contagion(out, conninfo, manifest, app.settings.home.resolve())
    steps.index_recordings(out, data, conninfo)
    steps.summary(out, conninfo)
    steps.closing(out, time.monotonic() - started)
