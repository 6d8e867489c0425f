"""`contagion_var`: a risk measure of the latest stored contagion run above a limit.

    [[alerts]]
    name = "contagion-var"
    kind = "contagion_var"
    measure = "var99"            # var95 | var99 | es975 | es99 (bad debt, USD)
    above_usd = 2_000_000

Reads `contagion_run_results`: the latest run per chain (`chainrisk contagion var`, or the service's
contagion job). Each run fires at most once.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from chainrisk.alerts.rules import Conn, alert, chain_ids, register, usd

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig

Measure = Literal["var95", "var99", "es975", "es99"]
NAMES = {"var95": "VaR95", "var99": "VaR99", "es975": "ES97.5", "es99": "ES99"}

LATEST = """
SELECT run_id, block, created_at, scenarios, method, var95_usd, var99_usd, es975_usd, es99_usd,
       scenarios_with_bad_debt, max_bad_debt_usd
FROM contagion_run_results
WHERE chain_id = %s
ORDER BY created_at DESC, run_id DESC
LIMIT 1
"""


class ContagionVarParams(BaseModel):
    """Fires when the latest run's `measure` of bad debt is above `above_usd`."""

    model_config = ConfigDict(extra="forbid")

    measure: Measure = "var99"
    above_usd: float = Field(ge=0)


def evaluate(conn: Conn, rule: AlertRuleConfig, params: ContagionVarParams, now: datetime) -> list[Alert]:
    """One alert per chain whose latest run is over the limit."""
    alerts = []
    for chain_id in chain_ids(conn, rule):
        row = conn.execute(LATEST, (chain_id,)).fetchone()
        if row is None:
            continue
        run_id, block, created, scenarios, method, var95, var99, es975, es99, with_bad_debt, worst = row
        figures = {"var95": var95, "var99": var99, "es975": es975, "es99": es99}
        value = figures[params.measure]
        if value is None or float(value) <= params.above_usd:
            continue
        name = NAMES[params.measure]
        facts = {
            "run_id": int(run_id),
            "block": int(block),
            "created_at": created.isoformat(),
            "scenarios": int(scenarios),
            "method": method,
            **{f"{k}_usd": (float(v) if v is not None else None) for k, v in figures.items()},
            "scenarios_with_bad_debt": with_bad_debt,
            "max_bad_debt_usd": worst,
            "measure": params.measure,
            "above_usd": params.above_usd,
        }
        body = (
            f"Contagion run {run_id} (chain {chain_id}, block {block}, {scenarios} scenarios, {method}):"
            f" {name} of bad debt {usd(value)}, above the limit {usd(params.above_usd)}."
            f" VaR95 {_opt(var95)}, VaR99 {_opt(var99)}, ES99 {_opt(es99)}.\n"
            f"See `contagion_tail_contributors` (run_id = {run_id}) for the wallets and markets behind the"
            f" tail, and `chainrisk contagion var --replay` to draw the same scenarios again."
        )
        alerts.append(
            alert(
                rule,
                now,
                subject=f"{chain_id}:run:{run_id}",
                title=f"Contagion {name} {usd(value)} (run {run_id})",
                body=body,
                facts=facts,
                chain_id=chain_id,
                period=params.measure,
            )
        )
    return alerts


def _opt(value: object) -> str:
    return usd(float(value)) if isinstance(value, int | float) else "n/a"


register("contagion_var", ContagionVarParams, evaluate)
