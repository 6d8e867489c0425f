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
from chainrisk.inputs import OptionError
from chainrisk.reports import sections
from chainrisk.reports.model import Period, Report
from indexer.lending.health import indexed_head


def gather(
    conn: Conn,
    period: Period,
    block: int | None,
    now: datetime,
    period_at: datetime | None = None,
    chain_id: int | None = None,
) -> Report:
    """The report of ``period`` (the one ``period_at``, default ``now``, falls in) on ``chain_id`` (default:
    the one chain with Aave markets) at ``block`` (default: the indexed head), generated at ``now``."""
    start = period_start(period, period_at or now)
    inputs, chain_id, at, why = _load(conn, block, chain_id)
    scope = sections.Scope(
        chain_id=chain_id,
        block=at,
        at_head=block is None,
        window_days=1 if period == "daily" else 7,
        window_end=block_time(conn, chain_id, at),
        no_scenarios=why,
    )
    built = [build(conn, inputs, scope) for build in sections.BUILDERS]
    return Report(
        title=f"Contagion risk report, chain {chain_id}, {period} {start}",
        chain_id=chain_id,
        block=at,
        period=period,
        period_start=start.isoformat(),
        generated_at=now.astimezone(UTC).isoformat(timespec="seconds"),
        sections=[sections.summary(conn, built, scope), *built],
    )


def _load(conn: Conn, block: int | None, chain: int | None) -> tuple[Inputs | None, int, int, str | None]:
    """The markets for the scenario sections, with their chain and block; without them (no Uniswap v3
    pool indexed, so no cascade can sell collateral) the chain and block alone, and why."""
    try:
        inputs = load_inputs(conn, chain, block)
    except OptionError as exc:
        found = _markets_without_pools(conn, block, chain)
        if found is None:
            raise
        return None, found[0], found[1], str(exc)
    return inputs, inputs.chain_id, inputs.block, None


def _markets_without_pools(conn: Conn, block: int | None, given: int | None) -> tuple[int, int] | None:
    """(chain, block) when the chain (given, or the one chain with Aave v3 markets) has markets indexed up
    to the block but no Uniswap v3 pool."""
    chains = conn.execute("SELECT DISTINCT chain_id FROM aave_v3_reserve_data_updated").fetchall()
    found = [int(str(c[0])) for c in chains]
    if (given is None and len(found) != 1) or (given is not None and given not in found):
        return None
    chain = found[0] if given is None else given
    head = indexed_head(conn, chain)
    at = head if block is None else block
    if head is None or at is None or at > head:
        return None
    markets = "SELECT 1 FROM aave_v3_reserve_data_updated WHERE chain_id = %s AND block_number <= %s LIMIT 1"
    pools = "SELECT 1 FROM uniswap_v3_pool_created WHERE chain_id = %s AND block_number <= %s LIMIT 1"
    if conn.execute(markets, (chain, at)).fetchone() is None or conn.execute(pools, (chain, at)).fetchone():
        return None
    return chain, at


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
