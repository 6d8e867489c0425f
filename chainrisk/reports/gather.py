"""Gathering a contagion report from the database: every number from a reader view (with the query that
returns it) or from a command's computation (with the command line that prints it).

    report = gather(conn, period="daily", block=None, now=datetime.now(UTC))

State sections read ``positions_current`` and its views at the indexed head, or ``health_at(N)`` with
``--block N``; the scenario sections (liquidations at risk, the cascade) load the markets at the same
block. Sections whose data or capability is absent say so, with the command that provides it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from chainrisk.contagion.inputs import Conn, Inputs, load_inputs
from chainrisk.reports import sections
from chainrisk.reports.model import Period, Report


def gather(
    conn: Conn, period: Period, block: int | None, now: datetime, period_at: datetime | None = None
) -> Report:
    """The report of ``period`` (the one ``period_at``, default ``now``, falls in) at ``block`` (default:
    the indexed head), generated at ``now``."""
    start = period_start(period, period_at or now)
    inputs = load_inputs(conn, None, block)
    scope = sections.Scope(
        chain_id=inputs.chain_id,
        block=inputs.block,
        at_head=block is None,
        window_days=1 if period == "daily" else 7,
        window_end=block_time(conn, inputs.chain_id, inputs.block),
    )
    built = [build(conn, inputs, scope) for build in sections.BUILDERS]
    return Report(
        title=f"Contagion risk report, chain {inputs.chain_id}, {period} {start}",
        chain_id=inputs.chain_id,
        block=inputs.block,
        period=period,
        period_start=start.isoformat(),
        generated_at=now.astimezone(UTC).isoformat(timespec="seconds"),
        sections=[sections.summary(conn, built, scope), *built],
    )


def period_start(period: Period, at: datetime) -> date:
    """The first UTC day of the period ``at`` falls in: that day, or the Monday of its ISO week."""
    day = at.astimezone(UTC).date()
    return day if period == "daily" else day - timedelta(days=day.weekday())


def block_time(conn: Conn, chain_id: int, block: int) -> datetime | None:
    """When ``block`` (or the last indexed block before it) was made, from the indexed blocks and logs."""
    row = conn.execute(
        "SELECT greatest((SELECT max(timestamp) FROM blocks WHERE chain_id = %s AND number <= %s),"
        " (SELECT max(block_timestamp) FROM logs WHERE chain_id = %s AND block_number <= %s))",
        (chain_id, block, chain_id, block),
    ).fetchone()
    return None if row is None or row[0] is None else datetime.fromtimestamp(int(str(row[0])), UTC)


def moving_symbols(inputs: Inputs) -> list[tuple[str, str]]:
    """(asset, symbol) of every priced asset that is not a dollar, as the curve moves them."""
    from chainrisk.contagion.curve import moving_assets

    return [(a, inputs.symbols.get(a, a)) for a in moving_assets(inputs, [])]
