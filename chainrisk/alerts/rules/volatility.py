"""`volatility`: a volatility forecast above a threshold.

    [[alerts]]
    name = "eth-vol"
    kind = "volatility"
    assets = ["ETH"]           # forecast assets; empty: every asset
    above = 0.9                # the forecast volatility, annualised (sqrt(365 / horizon) scaling)
    annualised = true          # false: `above` is the horizon's own volatility (as stored)
    horizon_days = 1           # optional: 1 or 7
    models = ["garch"]         # optional: the models whose forecasts count

Reads `forecasts_latest` (each asset's most recent forecast per model and horizon). Each forecast day
fires once per model and horizon.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from chainrisk.alerts.rules import Conn, alert, register

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig


class VolatilityParams(BaseModel):
    """Fires for each latest forecast whose volatility is above `above`."""

    model_config = ConfigDict(extra="forbid")

    above: float = Field(gt=0)
    annualised: bool = True
    horizon_days: int | None = Field(default=None, ge=1)
    models: list[str] = Field(default_factory=list)


LATEST = """
SELECT asset, model, horizon_days, as_of, volatility, return_lower, return_upper, interval_level, run_id
FROM forecasts_latest
WHERE (cardinality(%s::text[]) = 0 OR lower(asset) = ANY(%s))
  AND (cardinality(%s::text[]) = 0 OR model = ANY(%s))
  AND (%s::int IS NULL OR horizon_days = %s)
ORDER BY asset, model, horizon_days
"""


def evaluate(conn: Conn, rule: AlertRuleConfig, params: VolatilityParams, now: datetime) -> list[Alert]:
    """One alert per forecast over the threshold."""
    wanted = [a.lower() for a in rule.assets]
    args = (wanted, wanted, params.models, params.models, params.horizon_days, params.horizon_days)
    alerts = []
    for asset, model, horizon, as_of, vol, lower, upper, level, run_id in conn.execute(
        LATEST, args
    ).fetchall():
        scaled = float(vol) * math.sqrt(365 / int(horizon)) if params.annualised else float(vol)
        if scaled <= params.above:
            continue
        facts = {
            "asset": asset,
            "model": model,
            "horizon_days": int(horizon),
            "as_of": str(as_of),
            "volatility": float(vol),
            "annualised_volatility": float(vol) * math.sqrt(365 / int(horizon)),
            "compared": scaled,
            "above": params.above,
            "return_interval": [float(lower), float(upper)],
            "interval_level": float(level),
            "run_id": int(run_id),
        }
        what = "annualised volatility" if params.annualised else f"{horizon}-day volatility"
        body = (
            f"{asset}: the {model} forecast after {as_of} puts the {horizon}-day {what} at {scaled:.1%},"
            f" above {params.above:.1%} (run {run_id}); {float(level):.0%} interval of the {horizon}-day"
            f" log return: [{float(lower):+.1%}, {float(upper):+.1%}].\nWider moves make shocks like this"
            " likelier: check `collateral_at_risk` rules and `positions_at_risk`."
        )
        alerts.append(
            alert(
                rule,
                now,
                subject=f"{asset}:{model}:{horizon}d",
                title=f"{asset} {model} volatility {scaled:.0%} ({horizon}d)",
                body=body,
                facts=facts,
                period=str(as_of),
            )
        )
    return alerts


register("volatility", VolatilityParams, evaluate)
