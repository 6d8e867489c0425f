"""`liquidations`: liquidations per market over a window, above a count or a USD amount.

[[alerts]]
name = "liquidation-wave"
kind = "liquidations"
window = "1h"              # liquidations whose block is at most this old
min_count = 5              # fires when both limits are reached
min_usd = 1_000_000        # debt repaid, USD at the oracle prices just before each liquidation
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chainrisk.alerts.rules import Conn, alert, chain_ids, check_window, register, short, usd, window_s

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig


class LiquidationsParams(BaseModel):
    """Fires per market when, over `window`, at least `min_count` liquidations repaid at least `min_usd`."""

    model_config = ConfigDict(extra="forbid")

    window: str = "1h"
    min_count: int = Field(default=1, ge=1)
    min_usd: float = Field(default=0, ge=0)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return check_window(value)


PER_MARKET = """
SELECT pool, count(*), coalesce(sum(debt_repaid_usd), 0), coalesce(sum(collateral_seized_usd), 0),
       count(DISTINCT borrower), min(block_number), max(block_number),
       array_agg(borrower ORDER BY debt_repaid_usd DESC NULLS LAST)
FROM liquidations
WHERE chain_id = %s AND block_time > %s AND block_time <= %s
  AND (cardinality(%s::text[]) = 0 OR pool = ANY(%s))
GROUP BY pool
ORDER BY pool
"""


def evaluate(conn: Conn, rule: AlertRuleConfig, params: LiquidationsParams, now: datetime) -> list[Alert]:
    """One alert per market over both limits."""
    since = now - timedelta(seconds=window_s(params.window))
    alerts = []
    for chain_id in chain_ids(conn, rule):
        rows = conn.execute(PER_MARKET, (chain_id, since, now, rule.markets, rule.markets)).fetchall()
        for pool, count, repaid, seized, borrowers, first, last, ordered in rows:
            top = list(dict.fromkeys(ordered))[:3]  # the borrowers of the largest liquidations
            if int(count) < params.min_count or float(repaid) < params.min_usd:
                continue
            facts = {
                "pool": pool,
                "window": params.window,
                "since": since.isoformat(),
                "liquidations": int(count),
                "borrowers": int(borrowers),
                "debt_repaid_usd": float(repaid),
                "collateral_seized_usd": float(seized),
                "first_block": int(first),
                "last_block": int(last),
                "largest_borrowers": top,
            }
            body = (
                f"{count} liquidations of {borrowers} borrowers on pool {pool} (chain {chain_id}) in the last"
                f" {params.window} (blocks {first}–{last}): {usd(repaid)} of debt repaid,"
                f" {usd(seized)} of collateral seized. Largest: {', '.join(short(b) for b in top)}.\n"
                f"Look at the `liquidations` view (pool = '{pool}') and `positions_at_risk` for who is next."
            )
            alerts.append(
                alert(
                    rule,
                    now,
                    subject=f"{chain_id}:{pool}",
                    title=f"{count} liquidations ({usd(repaid)}) on {short(str(pool))}",
                    body=body,
                    facts=facts,
                    chain_id=chain_id,
                )
            )
    return alerts


register("liquidations", LiquidationsParams, evaluate)
