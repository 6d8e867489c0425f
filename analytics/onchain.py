"""Daily on-chain features from the indexed tables, point-in-time: day d uses blocks up to d's close only.

Groups (column prefixes, which the ablation reads): `liq_` liquidations (count and USD repaid), `hf_`
collateral of accounts with a health factor in [1, 1.1), `car_` collateral that becomes liquidatable if
ETH-like assets fall 10%, `flow_` net USD into exchanges and whale USD sent to exchanges, `gov_` executed
risk-parameter changes. Positions are rebuilt at the last indexed block of each UTC day with the exact
protocol maths (indexer.lending.read.positions_at), never read from today's `account_health`, so a
past row cannot see later events. Sizes are log1p-compressed (signed for net flows): the models regress
on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import psycopg

from analytics.errors import AnalyticsError
from graph.at_risk import positions_from_reserves, shocked_at_risk
from indexer.lending.read import BASE_UNIT, positions_at
from indexer.protocols.aave_math import WAD

NEAR = 11 * WAD // 10  # health factor 1.1

__all__ = ["COLUMNS", "ETH_LIKE", "OnchainError", "day_ends", "onchain_features"]

ETH_LIKE = ("WETH", "wstETH", "rETH", "cbETH", "weETH")
Conn = psycopg.Connection[tuple[object, ...]]


class OnchainError(AnalyticsError, ValueError):
    """The database cannot give features (nothing indexed for the chain, no timestamps)."""


def day_ends(conn: Conn, chain_id: int) -> list[tuple[date, int]]:
    """(UTC day, last indexed block of that day) for every day with indexed logs."""
    rows = conn.execute(
        """
        SELECT (to_timestamp(block_timestamp) AT TIME ZONE 'UTC')::date AS day, max(block_number)
          FROM logs WHERE chain_id = %s AND block_timestamp IS NOT NULL
         GROUP BY 1 ORDER BY 1
        """,
        (chain_id,),
    ).fetchall()
    if not rows:
        raise OnchainError(
            f"chain {chain_id}: no indexed logs with timestamps; configure the chain and its contracts in"
            " chainrisk.toml ([[chains]], [[contracts]]), then run `chainrisk index`"
        )
    return [(_as_date(day), int(str(block))) for day, block in rows]


def onchain_features(
    conn: Conn, chain_id: int, shocked_symbols: Sequence[str] = ETH_LIKE, shock: float = -0.10
) -> pd.DataFrame:
    """One row per UTC day with indexed logs; columns grouped by prefix (see the module docstring)."""
    ends = day_ends(conn, chain_id)
    index = pd.DatetimeIndex([pd.Timestamp(day, tz="UTC") for day, _ in ends], name="date")
    frame = pd.DataFrame(index=index)
    for column, series in _event_sums(conn, chain_id).items():
        frame[column] = series.reindex(index).fillna(0.0)
    shocked = _tokens(conn, chain_id, shocked_symbols)
    snapshots = [_positions_at(conn, chain_id, block, shocked, shock) for _, block in ends]
    frame["hf_near1_usd"] = [s[0] for s in snapshots]
    frame["car_10_usd"] = [s[1] for s in snapshots]
    return _compress(frame)


def _as_date(value: object) -> date:
    if not isinstance(value, date):
        raise OnchainError(f"expected a date from the database, got {value!r}")
    return value


def _day(ts: str) -> str:
    return f"timezone('UTC', {ts})::date"


_DAILY = {
    "liq_count": f"SELECT {_day('block_time')}, count(*) FROM liquidations WHERE chain_id = %s GROUP BY 1",
    "liq_usd": f"SELECT {_day('block_time')}, sum(debt_repaid_usd) FROM liquidations WHERE chain_id = %s"
    " GROUP BY 1",
    "flow_net_usd": f"SELECT {_day('hour')}, sum(netflow_usd) FROM exchange_netflows WHERE chain_id = %s"
    " GROUP BY 1",
    "flow_whale_to_exchange_usd": f"SELECT {_day('block_time')}, sum(usd) FROM whale_flows"
    " WHERE chain_id = %s AND direction = 'to_exchange' GROUP BY 1",
    # One count per executed proposal that changes risk parameters, on the day of its execution.
    "gov_changes": f"""
        SELECT {_day("to_timestamp(min(l.block_timestamp))")}, 1
          FROM (SELECT DISTINCT chain_id, governor, proposal_id, executed_block FROM risk_param_changes
                 WHERE chain_id = %s AND executed_block IS NOT NULL) r
          JOIN logs l ON l.chain_id = r.chain_id AND l.block_number = r.executed_block
         GROUP BY r.governor, r.proposal_id""",
}


# The columns `onchain_features` returns (and `chainrisk forecast onchain` writes), in order.
COLUMNS = (*_DAILY, "hf_near1_usd", "car_10_usd", "onchain_observed")


def _event_sums(conn: Conn, chain_id: int) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    for column, query in _DAILY.items():
        rows = conn.execute(query, (chain_id,)).fetchall()
        series = pd.Series(
            [0.0 if v is None else float(str(v)) for _, v in rows],
            index=pd.DatetimeIndex([pd.Timestamp(_as_date(d), tz="UTC") for d, _ in rows]),
            dtype=float,
        )
        out[column] = series.groupby(level=0).sum()
    return out


def _tokens(conn: Conn, chain_id: int, symbols: Sequence[str]) -> list[str]:
    rows = conn.execute(
        "SELECT token FROM tracked_tokens WHERE chain_id = %s AND symbol = ANY(%s)", (chain_id, list(symbols))
    ).fetchall()
    return [str(r[0]) for r in rows]


def _positions_at(
    conn: Conn, chain_id: int, block: int, shocked: Sequence[str], shock: float
) -> tuple[float, float]:
    """(collateral USD with HF in [1, 1.1), collateral USD liquidatable after the shock) at `block`."""
    health, reserves = positions_at(conn, chain_id, block)
    near = sum(a.total_collateral_base for a in health if a.total_debt_base and WAD <= a.health_factor < NEAR)
    if not reserves:
        return 0.0, 0.0
    positions, assets = positions_from_reserves(reserves)
    risk = shocked_at_risk(positions, assets, shocked, [shock])[0]
    return near / BASE_UNIT, risk.collateral_at_risk_usd


def _compress(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.astype(float)
    for column in out.columns:
        if column != "gov_changes":
            out[column] = np.sign(out[column]) * np.log1p(out[column].abs())
    out["onchain_observed"] = 1.0
    return out
