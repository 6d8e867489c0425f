"""`chainrisk serve`: the long-running service (indexer, scheduled jobs, /healthz and /metrics)."""

from __future__ import annotations

from typing import Annotated

import typer

from chainrisk.context import app_context

Once = Annotated[
    bool,
    typer.Option(
        "--once",
        help="Index every chain to its head, run each job's current period unless it ran already, print"
        " what happened and exit (1 if a job failed). For cron and tests; no status port.",
    ),
]


def serve(ctx: typer.Context, once: Once = False) -> None:
    """Follow every configured chain and run the scheduled jobs: the way chainrisk is meant to be run.

    Chains and contracts come from chainrisk.toml; positions and their history are kept current as blocks
    are indexed. Jobs: heartbeat (each chain's indexed block and node head, every 60s) and forecast
    (volatility and regimes of each serve.assets entry, daily at 00:10 UTC); set interval = "30s" or
    cron = "10 0 * * *" (UTC) or enabled = false under serve.jobs.NAME.

    One process per database leads (a PostgreSQL advisory lock); others stand by and take over within
    seconds when it dies. Each job runs once per period, recorded in the service_runs table; a period
    missed while no leader ran runs once at start. SIGTERM finishes the indexer's batch and the running
    jobs, then exits 0.

    GET /healthz (JSON: leader or standby, lag per chain, each job's last run) and GET /metrics answer
    on serve_port (CHAINRISK_SERVE_PORT, default 9108; 0: off). More in docs/SERVICE.md.
    """
    from chainrisk.serve.service import run_service

    app = app_context(ctx)
    run_service(app.settings, app.database_url, once=once, echo=typer.echo)
