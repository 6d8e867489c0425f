"""`chainrisk forecast onchain`: daily on-chain features from the indexed tables, as a CSV for backtests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chainrisk.context import app_context, console
from chainrisk.inputs import MAX_CHAIN_ID


def onchain(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="CSV to write (date + one column per feature).")],
    chain_id: Annotated[
        int, typer.Option("--chain-id", min=1, max=MAX_CHAIN_ID, help="Chain whose tables to read.")
    ] = 1,
    shock: Annotated[
        float, typer.Option(min=-0.99, max=0.0, help="ETH-like move for the collateral-at-risk feature.")
    ] = -0.10,
) -> None:
    """Write daily liquidation, health-factor, collateral-at-risk, exchange-flow and governance features.

    Day d uses blocks up to its close only (positions are rebuilt at that day's last indexed block), so
    the file can feed `chainrisk forecast backtest --onchain FILE` without look-ahead.
    """
    import psycopg

    from analytics.onchain import onchain_features
    from chainrisk.inputs import output_file

    output_file("--out", out)
    conninfo = app_context(ctx).conninfo(migrate=True)
    err = console(stderr=True)
    with psycopg.connect(conninfo) as conn, err.status("rebuilding positions day by day"):
        frame = onchain_features(conn, chain_id, shock=shock)
    frame.to_csv(out, index_label="date", date_format="%Y-%m-%d")
    err.print(f"wrote {len(frame)} days × {frame.shape[1]} features to {out}")
