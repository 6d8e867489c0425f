"""`bad_debt`: bad debt per market, realised over a window or unrealised now, above a USD limit.

    [[alerts]]
    name = "bad-debt"
    kind = "bad_debt"
    window = "1h"             # realised bad debt (Aave v3.2+ `DeficitCreated`) at most this old
    min_usd = 10_000          # per market, for each of realised and unrealised
    unrealised = true         # also: accounts whose debt is above their collateral now

Both come from the `bad_debt` view: realised rows valued at the debt asset's oracle price just before
the deficit, unrealised ones as debt minus collateral of each account.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chainrisk.alerts.rules import Conn, alert, chain_ids, check_window, register, short, usd, window_s

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig


class BadDebtParams(BaseModel):
    """Fires per market when the bad debt realised over `window` (and, with `unrealised`, the bad debt
    carried now) reaches `min_usd`."""

    model_config = ConfigDict(extra="forbid")

    window: str = "1h"
    min_usd: float = Field(default=0, ge=0)
    unrealised: bool = True

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return check_window(value)


PER_MARKET = """
SELECT d.pool, d.kind, count(*), coalesce(sum(d.usd), 0), max(d.block_number),
       array_agg(d.user_address ORDER BY d.usd DESC NULLS LAST)
FROM bad_debt d
LEFT JOIN blocks b ON b.chain_id = d.chain_id AND b.number = d.block_number
WHERE d.chain_id = %s AND (cardinality(%s::text[]) = 0 OR d.pool = ANY(%s))
  AND ((d.kind = 'realised' AND to_timestamp(coalesce(b.timestamp, (
            SELECT l.block_timestamp FROM logs l
            WHERE l.chain_id = d.chain_id AND l.block_number = d.block_number LIMIT 1))) BETWEEN %s AND %s)
       OR (d.kind = 'unrealised' AND %s))
GROUP BY d.pool, d.kind
ORDER BY d.pool, d.kind
"""


def evaluate(conn: Conn, rule: AlertRuleConfig, params: BadDebtParams, now: datetime) -> list[Alert]:
    """One alert per market and kind of bad debt over the limit."""
    since = now - timedelta(seconds=window_s(params.window))
    alerts = []
    for chain_id in chain_ids(conn, rule):
        args = (chain_id, rule.markets, rule.markets, since, now, params.unrealised)
        for pool, kind, accounts, total, block, ordered in conn.execute(PER_MARKET, args).fetchall():
            top = list(dict.fromkeys(ordered))[:3]
            if float(total) < params.min_usd or float(total) <= 0:
                continue
            facts = {
                "pool": pool,
                "bad_debt": kind,
                "usd": float(total),
                "accounts": int(accounts),
                "last_block": int(block),
                "largest_accounts": top,
                "window": params.window if kind == "realised" else None,
            }
            when = f"created in the last {params.window}" if kind == "realised" else "carried now"
            body = (
                f"{usd(total)} of {kind} bad debt {when} on pool {pool} (chain {chain_id}), {accounts}"
                f" account(s); largest: {', '.join(short(a) for a in top)}.\n"
                f"Look at the `bad_debt` view (pool = '{pool}', kind = '{kind}'); the reserve's treasury or"
                " the umbrella covers realised deficits."
            )
            alerts.append(
                alert(
                    rule,
                    now,
                    subject=f"{chain_id}:{pool}:{kind}",
                    title=f"{usd(total)} {kind} bad debt on {short(str(pool))}",
                    body=body,
                    facts=facts,
                    chain_id=chain_id,
                )
            )
    return alerts


register("bad_debt", BadDebtParams, evaluate)
