"""`regime`: an asset's regime probability crossing a threshold.

    [[alerts]]
    name = "eth-turbulent"
    kind = "regime"
    assets = ["ETH"]            # forecast assets (as in [[serve.assets]]); empty: every asset
    regime = "highest_vol"      # or the regime's number (0, 1, …)
    above = 0.8

Reads `regimes_latest` (the filtered probabilities of each asset's latest regime fit): fires when the
probability of the last day is at least `above` and the day before was under it — a crossing, not a
state, so a turbulent month fires once. The regime with the highest fitted daily volatility is the
turbulent one whatever number the fit gave it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from chainrisk.alerts.rules import Conn, alert, register

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig


class RegimeParams(BaseModel):
    """Fires when the probability of `regime` crosses `above` on the latest day."""

    model_config = ConfigDict(extra="forbid")

    regime: int | Literal["highest_vol"] = "highest_vol"
    above: float = Field(gt=0, lt=1)


LAST_TWO_DAYS = """
WITH latest AS (
    SELECT asset, run_id, day, regime, k, probability, daily_vol,
           dense_rank() OVER (PARTITION BY asset ORDER BY day DESC) AS back
    FROM regimes_latest
    WHERE cardinality(%s::text[]) = 0 OR lower(asset) = ANY(%s)
)
SELECT asset, run_id, day, regime, k, probability, daily_vol, back
FROM latest WHERE back <= 2
ORDER BY asset, back, regime
"""


def evaluate(conn: Conn, rule: AlertRuleConfig, params: RegimeParams, now: datetime) -> list[Alert]:
    """One alert per asset whose regime probability crossed the threshold on its latest day."""
    wanted = [a.lower() for a in rule.assets]
    rows = conn.execute(LAST_TWO_DAYS, (wanted, wanted)).fetchall()
    by_asset: dict[str, list[tuple[object, ...]]] = {}
    for row in rows:
        by_asset.setdefault(str(row[0]), []).append(tuple(row))
    alerts = []
    for asset, asset_rows in by_asset.items():
        found = _crossing(asset_rows, params)
        if found is not None:
            alerts.append(_alert(rule, now, asset, found))
    return alerts


def _crossing(rows: list[tuple[object, ...]], params: RegimeParams) -> dict[str, object] | None:
    """The figures of a crossing on the latest day, or None."""
    latest = [r for r in rows if r[7] == 1]
    if params.regime == "highest_vol":
        regime = max(latest, key=lambda r: float(str(r[6] if r[6] is not None else 0)))[3]
    else:
        regime = params.regime
    now = next((r for r in latest if r[3] == regime), None)
    before = next((r for r in rows if r[7] == 2 and r[3] == regime), None)
    if now is None:
        return None
    probability = float(str(now[5]))
    previous = float(str(before[5])) if before is not None else None
    if probability < params.above or (previous is not None and previous >= params.above):
        return None
    return {
        "run_id": now[1],
        "day": str(now[2]),
        "regime": regime,
        "regimes": now[4],
        "probability": probability,
        "previous_probability": previous,
        "regime_daily_vol": float(str(now[6])) if now[6] is not None else None,
        "above": params.above,
    }


def _alert(rule: AlertRuleConfig, now: datetime, asset: str, facts: dict[str, object]) -> Alert:
    vol = facts["regime_daily_vol"]
    vol_text = f" (its daily volatility {float(str(vol)):.2%})" if vol is not None else ""
    previous = facts["previous_probability"]
    was = f"from {float(str(previous)):.0%} " if previous is not None else ""
    body = (
        f"{asset}: the probability of regime {facts['regime']}{vol_text} rose {was}to"
        f" {float(str(facts['probability'])):.0%} on {facts['day']}, crossing {facts['above']:.0%}"
        f" (forecast run {facts['run_id']}).\nA turbulent regime widens every VaR: review `regimes_latest`,"
        " `forecasts_latest` and the latest contagion run."
    )
    return alert(
        rule,
        now,
        subject=f"{asset}:regime:{facts['regime']}",
        title=f"{asset} regime {facts['regime']} probability {float(str(facts['probability'])):.0%}",
        body=body,
        facts=facts,
        period=str(facts["day"]),
    )


register("regime", RegimeParams, evaluate)
