"""`collateral_at_risk`: collateral that becomes liquidatable under a configured price shock.

    [[alerts]]
    name = "eth-minus-20"
    kind = "collateral_at_risk"
    assets = ["WETH", "wstETH"]   # the shocked assets (symbols or addresses), falling together
    move = -0.2                   # their price change
    min_usd = 5_000_000           # fires when the collateral at risk reaches this

The shock is applied to today's indexed positions by the vectorised health-factor engine
(graph/at_risk.py): every reserve keeps its own liquidation threshold, debt in a shocked asset moves
too, and the collateral at risk is that of the accounts the shock makes liquidatable.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from chainrisk.alerts.rules import Conn, alert, chain_ids, register, token_filter, usd

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig


class CollateralAtRiskParams(BaseModel):
    """Fires when the rule's `assets` moving by `move` puts at least `min_usd` of collateral at risk."""

    model_config = ConfigDict(extra="forbid")

    move: float = Field(gt=-1, lt=0)
    min_usd: float = Field(ge=0)

    @staticmethod
    def check_rule(rule: AlertRuleConfig) -> None:
        """The shocked assets are the rule's scope: they must be named."""
        if not rule.assets:
            raise ValueError(
                f"rule {rule.name!r}: kind 'collateral_at_risk' needs assets = [...], the shocked assets"
            )


def evaluate(conn: Conn, rule: AlertRuleConfig, params: CollateralAtRiskParams, now: datetime) -> list[Alert]:
    """One alert per chain over the limit."""
    from graph.at_risk import at_risk

    alerts = []
    for chain_id in chain_ids(conn, rule):
        tokens = token_filter(conn, chain_id, rule.assets) or []
        if not tokens:
            continue
        result = at_risk(conn, chain_id, tokens, [params.move])[0]
        if result.collateral_at_risk_usd < params.min_usd or result.liquidatable_accounts == 0:
            continue
        names = "+".join(rule.assets)
        amount = usd(result.collateral_at_risk_usd)
        title = f"{amount} collateral at risk after a {-params.move:.0%} fall of {names}"
        facts = {
            "assets": rule.assets,
            "tokens": tokens,
            "move": params.move,
            "liquidatable_accounts": result.liquidatable_accounts,
            "collateral_at_risk_usd": result.collateral_at_risk_usd,
            "debt_at_risk_usd": result.debt_at_risk_usd,
            "min_usd": params.min_usd,
        }
        body = (
            f"After a {-params.move:.0%} fall of {names}, {result.liquidatable_accounts} account(s) on chain"
            f" {chain_id} would be liquidatable: {usd(result.collateral_at_risk_usd)} of collateral and"
            f" {usd(result.debt_at_risk_usd)} of debt at risk (limit {usd(params.min_usd)}).\n"
            f"See `chainrisk contagion curve` or the cookbook query liquidatable_if_eth_falls_20"
            " (docs/SQL.md); `positions_at_risk` lists the closest accounts."
        )
        alerts.append(
            alert(
                rule,
                now,
                subject=f"{chain_id}:{names}:{params.move}",
                title=title,
                body=body,
                facts=facts,
                chain_id=chain_id,
            )
        )
    return alerts


register("collateral_at_risk", CollateralAtRiskParams, evaluate)
