"""`chainrisk report`: reports for the risk team and the DAO forum."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chainrisk.context import app_context, console
from chainrisk.exits import new_app
from chainrisk.inputs import MAX_BLOCK, MAX_CHAIN_ID, OptionError

app = new_app(help="Reports: one HTML page and a forum post in Markdown.", no_args_is_help=True)

Out = Annotated[
    Path, typer.Option(help="Folder to write report.html, post-N.md, the plots and report.json into.")
]
PeriodOption = Annotated[str, typer.Option(help="daily or weekly: the period the report covers.")]
BlockOption = Annotated[
    int | None, typer.Option(min=0, max=MAX_BLOCK, help="Block of the state (default: indexed head).")
]

ChainOption = Annotated[
    int | None,
    typer.Option("--chain-id", min=1, max=MAX_CHAIN_ID, help="Chain (default: the one with Aave markets)."),
]

_CONTAGION_HELP = "\n\n".join(
    (
        "The contagion report: summary, markets and positions, health-factor distribution, wallets at risk,"
        " liquidations at risk per asset, the cascade and the tail (latest stored `contagion var` run),"
        " exposure between markets, governance changes, whale flows, volatility forecasts and regimes,"
        " methodology. Every table carries the SQL or command that reproduces it.",
        "Example: chainrisk report contagion --period weekly --out reports/",
    )
)


@app.command("contagion", help=_CONTAGION_HELP)
def contagion_command(
    ctx: typer.Context,
    out: Out,
    period: PeriodOption = "daily",
    block: BlockOption = None,
    chain_id: ChainOption = None,
) -> None:
    from datetime import UTC, datetime

    import psycopg

    from chainrisk.reports.build import HTML_NAME, check_out, write_report
    from chainrisk.reports.gather import gather
    from chainrisk.reports.model import PERIODS

    if period not in PERIODS:  # narrows period to the Period literal
        raise OptionError(f"--period {period!r}: expected daily or weekly")
    check_out(out)
    with psycopg.connect(app_context(ctx).conninfo()) as conn:
        report = gather(conn, period, block, datetime.now(UTC), chain_id=chain_id)
    files = write_report(report, out)
    console().print(f"{out / HTML_NAME}: {len(files)} files, chain {report.chain_id}, block {report.block}")
