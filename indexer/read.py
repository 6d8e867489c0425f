"""Read API over the indexer's own tables and views: what was indexed, flows per token, governance, and a
Uniswap v3 pool's state-changing events.

The lending tables have theirs in `indexer.lending.read`. Callers above (the demo, reports, the
service) read through these functions instead of writing SQL of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import psycopg

from indexer.tables import EVENT_TABLES

Conn = psycopg.Connection[tuple[object, ...]]

_FLOWS = """
    WITH w AS (
        SELECT symbol, count(*) AS whales,
               coalesce(sum(usd) FILTER (WHERE direction = 'to_exchange'), 0) AS to_exchanges
        FROM whale_flows WHERE chain_id = %(c)s GROUP BY symbol
    ), n AS (
        SELECT symbol, sum(netflow_usd) AS net, max(netflow_usd) AS peak
        FROM exchange_netflows WHERE chain_id = %(c)s GROUP BY symbol
    )
    SELECT symbol, coalesce(w.whales, 0), coalesce(w.to_exchanges, 0), coalesce(n.net, 0),
           coalesce(n.peak, 0)
    FROM w FULL JOIN n USING (symbol)
    ORDER BY symbol
"""


@dataclass(frozen=True, slots=True)
class TokenFlows:
    """A tracked token's whale transfers and exchange net flows, in USD at the prices of their blocks."""

    symbol: str
    whale_transfers: int
    whales_to_exchanges_usd: Decimal
    net_into_exchanges_usd: Decimal
    peak_hour_usd: Decimal


@dataclass(frozen=True, slots=True)
class Governance:
    """Proposals indexed on every governor, how many executed, and the votes cast on them."""

    proposals: int
    executed: int
    votes: int


def token_flows(conn: Conn, chain_id: int) -> list[TokenFlows]:
    """Whale transfers and exchange net flows per tracked token of a chain."""
    rows = conn.execute(_FLOWS, {"c": chain_id}).fetchall()
    return [TokenFlows(str(r[0]), int(str(r[1])), _dec(r[2]), _dec(r[3]), _dec(r[4])) for r in rows]


def governance(conn: Conn) -> Governance:
    """Proposals and votes over every indexed governor."""
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE state = 'executed'), coalesce(sum(voters), 0) FROM proposals"
    ).fetchone()
    return Governance(*(int(str(v)) for v in row)) if row else Governance(0, 0, 0)


def events_per_table(conn: Conn) -> dict[str, dict[int, int]]:
    """{table: {chain_id: rows}} for `logs`, every decoded event table with rows, and `quarantine`."""
    counts: dict[str, dict[int, int]] = {}
    for name in ["logs", *sorted(EVENT_TABLES), "quarantine"]:
        rows = conn.execute(f'SELECT chain_id, count(*) FROM "{name}" GROUP BY 1').fetchall()
        if rows:
            counts[name] = {int(str(chain)): int(str(n)) for chain, n in rows}
    return counts


def _dec(value: object) -> Decimal:
    return Decimal(str(value))


# A Uniswap v3 pool's state-changing events in chain order, values in each event's declaration order.
_POOL_EVENTS = """
SELECT 'initialize', block_number, log_index, ARRAY[sqrt_price_x96, tick]
  FROM uniswap_v3_initialize WHERE chain_id = %(chain)s AND address = %(pool)s AND block_number <= %(block)s
UNION ALL
SELECT 'mint', block_number, log_index, ARRAY[tick_lower, tick_upper, amount]
  FROM uniswap_v3_mint WHERE chain_id = %(chain)s AND address = %(pool)s AND block_number <= %(block)s
UNION ALL
SELECT 'burn', block_number, log_index, ARRAY[tick_lower, tick_upper, amount]
  FROM uniswap_v3_burn WHERE chain_id = %(chain)s AND address = %(pool)s AND block_number <= %(block)s
UNION ALL
SELECT 'swap', block_number, log_index, ARRAY[amount0, amount1, sqrt_price_x96, tick, liquidity]
  FROM uniswap_v3_swap WHERE chain_id = %(chain)s AND address = %(pool)s AND block_number <= %(block)s
ORDER BY 2, 3
"""

PoolEventRow = tuple[str, int, int, tuple[int, ...]]


def pool_created(conn: Conn, chain_id: int, pool: str, block: int) -> tuple[int, int] | None:
    """(fee, tick spacing) from the factory's PoolCreated for `pool`, indexed up to `block`."""
    row = conn.execute(
        "SELECT fee, tick_spacing FROM uniswap_v3_pool_created WHERE chain_id = %s AND pool = %s"
        " AND block_number <= %s ORDER BY block_number DESC LIMIT 1",
        (chain_id, pool.lower(), block),
    ).fetchone()
    return None if row is None else (int(str(row[0])), int(str(row[1])))


def pool_events(conn: Conn, chain_id: int, pool: str, block: int) -> list[PoolEventRow]:
    """(kind, block, log index, values) of the pool's Initialize, Mint, Burn and Swap up to `block`."""
    rows = conn.execute(_POOL_EVENTS, {"chain": chain_id, "pool": pool.lower(), "block": block}).fetchall()
    return [
        (str(k), int(str(b)), int(str(i)), tuple(_whole(v) for v in _list(vals))) for k, b, i, vals in rows
    ]


def _list(value: object) -> list[object]:
    assert isinstance(value, list)
    return value


def _whole(value: object) -> int:
    # NUMERIC(78,0) and BIGINT columns are whole numbers: exact through Decimal.
    return int(value) if isinstance(value, Decimal) else int(str(value))
