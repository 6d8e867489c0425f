"""`health_factor`: a watched wallet's (or any position over a size) health factor below a threshold.

    [[alerts]]
    name = "whale-hf"
    kind = "health_factor"
    wallets = ["0x…"]          # empty: every account with at least `min_debt_usd` of debt
    below = 1.1
    min_debt_usd = 1_000_000
    max_accounts = 50          # per chain and evaluation, the lowest health factors first

The message gives the distance to liquidation in price terms, computed exactly from the account's
positions (`positions_by_asset`, each reserve with its own liquidation threshold, eMode applied): the
fall of all its collateral assets together, and of each collateral asset alone, that brings the health
factor to 1. Debt in a falling asset falls with it (a WETH borrower against WETH is not hurt by ETH).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from chainrisk.alerts.rules import Conn, alert, chain_ids, register, short, usd

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig


class HealthFactorParams(BaseModel):
    """Fires for each account whose health factor is under `below` (and whose debt is at least
    `min_debt_usd`)."""

    model_config = ConfigDict(extra="forbid")

    below: float = Field(gt=0)
    min_debt_usd: float = Field(default=0, ge=0)
    # A market-wide fall can put thousands of accounts under the threshold at once: the lowest first.
    max_accounts: int = Field(default=50, ge=1)


@dataclass(frozen=True)
class Reserve:
    """One reserve of an account, in USD."""

    asset: str
    symbol: str
    collateral_usd: float
    debt_usd: float
    collateral_enabled: bool
    liquidation_threshold_bps: int
    price_usd: float

    @property
    def weighted(self) -> float:
        """Collateral counted by the health factor: value times liquidation threshold."""
        return self.collateral_usd * self.liquidation_threshold_bps / 1e4 if self.collateral_enabled else 0.0


def drop_to_liquidation(reserves: list[Reserve], falling: set[str]) -> float | None:
    """The fraction by which the `falling` assets' price must fall (collateral and debt in them alike)
    for the health factor to reach 1: 0 when already liquidatable, None when no fall does it.

    HF(x) = (W_o + (1-x) W_f) / (D_o + (1-x) D_f) = 1  ⇔  (1-x)(W_f - D_f) = D_o - W_o."""
    weighted_f = sum(r.weighted for r in reserves if r.asset in falling)
    debt_f = sum(r.debt_usd for r in reserves if r.asset in falling)
    weighted_o = sum(r.weighted for r in reserves if r.asset not in falling)
    debt_o = sum(r.debt_usd for r in reserves if r.asset not in falling)
    if debt_f + debt_o <= 0:
        return None
    if weighted_f + weighted_o <= debt_f + debt_o:
        return 0.0
    if weighted_f <= debt_f or debt_o <= weighted_o:
        return None  # the falling side does not carry the account, or the rest alone covers the debt
    return 1.0 - (debt_o - weighted_o) / (weighted_f - debt_f)


POSITIONS = """
SELECT p.chain_id, p.pool, p.user_address, p.health_factor, p.collateral_usd, p.debt_usd, p.block_number
FROM positions_current p
WHERE p.chain_id = %s AND p.debt_usd > 0 AND p.health_factor < %s AND p.debt_usd >= %s
  AND (cardinality(%s::text[]) = 0 OR p.user_address = ANY(%s))
  AND (cardinality(%s::text[]) = 0 OR p.pool = ANY(%s))
ORDER BY p.health_factor, p.pool, p.user_address
LIMIT %s
"""

RESERVES = """
SELECT asset, coalesce(symbol, asset), collateral_usd, debt_usd, collateral_enabled,
       liquidation_threshold_bps, price_usd
FROM positions_by_asset
WHERE chain_id = %s AND pool = %s AND user_address = %s AND (collateral_usd > 0 OR debt_usd > 0)
ORDER BY asset
"""


def reserves_of(conn: Conn, chain_id: int, pool: str, user: str) -> list[Reserve]:
    """An account's reserves, as the lending views hold them now."""
    rows = conn.execute(RESERVES, (chain_id, pool, user)).fetchall()
    return [
        Reserve(str(a), str(s), float(c), float(d), bool(e), int(t), float(p)) for a, s, c, d, e, t, p in rows
    ]


def distance(reserves: list[Reserve]) -> dict[str, Any]:
    """The falls that bring the health factor to 1: all collateral together, and each asset alone
    (with the price it would fall to)."""
    collateral = [r for r in reserves if r.weighted > 0]
    together = drop_to_liquidation(reserves, {r.asset for r in collateral})
    each = []
    for r in collateral:
        drop = drop_to_liquidation(reserves, {r.asset})
        price = r.price_usd * (1 - drop) if drop is not None else None
        each.append(
            {
                "asset": r.asset,
                "symbol": r.symbol,
                "drop": drop,
                "price_usd": r.price_usd,
                "at_price_usd": price,
            }
        )
    return {"drop_all_collateral": together, "drop_per_asset": each}


def evaluate(conn: Conn, rule: AlertRuleConfig, params: HealthFactorParams, now: datetime) -> list[Alert]:
    """One alert per account under the threshold."""
    alerts = []
    for chain_id in chain_ids(conn, rule):
        rows = conn.execute(
            POSITIONS,
            (
                chain_id,
                params.below,
                params.min_debt_usd,
                rule.wallets,
                rule.wallets,
                rule.markets,
                rule.markets,
                params.max_accounts,
            ),
        ).fetchall()
        for _, pool, user, hf, collateral, debt, block in rows:
            facts = {
                "pool": pool,
                "wallet": user,
                "health_factor": float(hf),
                "collateral_usd": float(collateral),
                "debt_usd": float(debt),
                "block": int(block),
                "threshold": params.below,
                **distance(reserves_of(conn, chain_id, str(pool), str(user))),
            }
            alerts.append(_alert(rule, now, chain_id, facts))
    return alerts


def _alert(rule: AlertRuleConfig, now: datetime, chain_id: int, facts: dict[str, Any]) -> Alert:
    hf, wallet, pool = facts["health_factor"], facts["wallet"], facts["pool"]
    together = facts["drop_all_collateral"]
    lines = [
        f"Wallet {wallet} on pool {pool} (chain {chain_id}) has health factor {hf:.4f},"
        f" under {facts['threshold']} (block {facts['block']}): collateral {usd(facts['collateral_usd'])},"
        f" debt {usd(facts['debt_usd'])}.",
        _together(together),
    ]
    for each in facts["drop_per_asset"]:
        if each["drop"] is not None:
            lines.append(
                f"- {each['symbol']} alone: a fall of {each['drop']:.1%} (from ${each['price_usd']:,.2f} to"
                f" ${each['at_price_usd']:,.2f})"
            )
    lines.append(
        "Check the position in positions_by_asset / health_history; a repay or more collateral moves it away"
        " from liquidation."
    )
    return alert(
        rule,
        now,
        subject=f"{chain_id}:{pool}:{wallet}",
        title=f"Health factor {hf:.3f} for {short(wallet)}",
        body="\n".join(lines),
        facts=facts,
        chain_id=chain_id,
    )


def _together(drop: float | None) -> str:
    if drop is None:
        return "No fall of its collateral prices alone makes it liquidatable."
    if drop == 0:
        return "It is liquidatable now (health factor under 1)."
    return f"Liquidatable if its collateral assets fall {drop:.1%} together."


register("health_factor", HealthFactorParams, evaluate)
