"""`exchange_netflow`: a token's net inflow into exchanges in one UTC hour above a limit.

    [[alerts]]
    name = "exchange-inflow"
    kind = "exchange_netflow"
    above_usd = 10_000_000      # net inflow (into exchanges minus out of them) per hour, USD
    window = "3h"               # hours that started at most this long ago
    assets = ["WETH"]           # optional

Reads `exchange_netflows` (transfers between a labelled exchange and a non-exchange address, per token
and UTC hour). Each (token, hour) fires once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chainrisk.alerts.rules import Conn, alert, chain_ids, check_window, register, token_filter, usd, window_s

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig


class ExchangeNetflowParams(BaseModel):
    """Fires for each (token, hour) in the last `window` whose net inflow exceeds `above_usd`."""

    model_config = ConfigDict(extra="forbid")

    above_usd: float = Field(ge=0)
    window: str = "3h"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return check_window(value)


HOURS = """
SELECT token, symbol, hour, transfers, inflow, outflow, netflow, inflow_usd, outflow_usd, netflow_usd
FROM exchange_netflows
WHERE chain_id = %s AND hour > %s AND hour <= %s AND netflow_usd > %s
  AND (%s::text[] IS NULL OR token = ANY(%s))
ORDER BY hour, token
"""


def evaluate(conn: Conn, rule: AlertRuleConfig, params: ExchangeNetflowParams, now: datetime) -> list[Alert]:
    """One alert per token and hour over the limit."""
    since = now - timedelta(seconds=window_s(params.window)) - timedelta(hours=1)
    alerts = []
    for chain_id in chain_ids(conn, rule):
        tokens = token_filter(conn, chain_id, rule.assets)
        rows = conn.execute(HOURS, (chain_id, since, now, params.above_usd, tokens, tokens)).fetchall()
        for token, symbol, hour, transfers, inflow, outflow, net, in_usd, out_usd, net_usd in rows:
            facts = {
                "token": token,
                "symbol": symbol,
                "hour": hour.isoformat(),
                "transfers": int(transfers),
                "inflow": float(inflow),
                "outflow": float(outflow),
                "netflow": float(net),
                "inflow_usd": float(in_usd),
                "outflow_usd": float(out_usd),
                "netflow_usd": float(net_usd),
                "above_usd": params.above_usd,
            }
            body = (
                f"Net {float(net):,.2f} {symbol} ({usd(net_usd)}) flowed into exchanges on chain {chain_id}"
                f" in the hour from {hour:%Y-%m-%d %H:00} UTC: {usd(in_usd)} in, {usd(out_usd)} out over"
                f" {transfers} transfer(s) (limit {usd(params.above_usd)}).\nSelling pressure may follow:"
                f" check `whale_flows` for the transfers and `positions_by_asset` for {symbol} collateral."
            )
            alerts.append(
                alert(
                    rule,
                    now,
                    subject=f"{chain_id}:{token}",
                    title=f"{usd(net_usd)} net {symbol} into exchanges ({hour:%Y-%m-%d %H:00} UTC)",
                    body=body,
                    facts=facts,
                    chain_id=chain_id,
                    period=hour.strftime("%Y-%m-%dT%H:00Z"),
                )
            )
    return alerts


register("exchange_netflow", ExchangeNetflowParams, evaluate)
