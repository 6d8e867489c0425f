"""`whale_transfer`: a transfer to or from a labelled exchange above the token's whale threshold.

    [[alerts]]
    name = "whales-to-exchanges"
    kind = "whale_transfer"
    direction = "to_exchange"    # to_exchange | from_exchange | any (also between exchanges)
    window = "1h"                # transfers at most this old
    assets = ["WETH"]            # optional: tokens (symbols or addresses)
    exchanges = ["binance"]      # optional: label prefixes ("binance" matches "binance 14")
    # min_usd = 5_000_000        # optional: above the token's whale_threshold_usd

Reads `whale_flows` (transfers worth at least the token's `whale_threshold_usd`, with both sides'
labels). Each transfer fires once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chainrisk.alerts.rules import (
    Conn,
    alert,
    chain_ids,
    check_window,
    register,
    short,
    token_filter,
    usd,
    window_s,
)

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig


class WhaleTransferParams(BaseModel):
    """Fires for each whale transfer in `direction` over the last `window`."""

    model_config = ConfigDict(extra="forbid")

    direction: Literal["to_exchange", "from_exchange", "any"] = "any"
    window: str = "1h"
    min_usd: float | None = Field(default=None, ge=0)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return check_window(value)


FLOWS = """
SELECT block_number, log_index, tx_hash, block_time, token, symbol, from_address, from_label, to_address,
       to_label, amount, usd, whale_threshold_usd, direction
FROM whale_flows
WHERE chain_id = %s AND block_time > %s AND block_time <= %s AND direction <> 'other'
  AND (%s = 'any' OR direction = %s)
  AND (%s::text[] IS NULL OR token = ANY(%s))
  AND usd >= %s
ORDER BY block_number, log_index
"""


def evaluate(conn: Conn, rule: AlertRuleConfig, params: WhaleTransferParams, now: datetime) -> list[Alert]:
    """One alert per transfer."""
    since = now - timedelta(seconds=window_s(params.window))
    wanted = [e.lower() for e in rule.exchanges]
    alerts = []
    for chain_id in chain_ids(conn, rule):
        tokens = token_filter(conn, chain_id, rule.assets)
        args = (chain_id, since, now, params.direction, params.direction, tokens, tokens, params.min_usd or 0)
        for row in conn.execute(FLOWS, args).fetchall():
            (
                block,
                index,
                tx,
                time,
                token,
                symbol,
                src,
                src_label,
                dst,
                dst_label,
                amount,
                value,
                limit,
                way,
            ) = row
            labels = [str(lb).lower() for lb in (src_label, dst_label) if lb is not None]
            if wanted and not any(lb.startswith(w) for lb in labels for w in wanted):
                continue
            facts = {
                "tx_hash": tx,
                "block": int(block),
                "log_index": int(index),
                "block_time": time.isoformat() if time is not None else None,
                "token": token,
                "symbol": symbol,
                "from": src,
                "from_label": src_label,
                "to": dst,
                "to_label": dst_label,
                "amount": float(amount),
                "usd": float(value),
                "whale_threshold_usd": float(limit),
                "direction": way,
            }
            alerts.append(_alert(rule, now, chain_id, facts))
    return alerts


def _alert(rule: AlertRuleConfig, now: datetime, chain_id: int, facts: dict[str, object]) -> Alert:
    src = facts["from_label"] or short(str(facts["from"]))
    dst = facts["to_label"] or short(str(facts["to"]))
    amount = float(str(facts["amount"]))
    value = float(str(facts["usd"]))
    meaning = {
        "to_exchange": "Coins moving onto an exchange are often sold: watch the asset's price and the"
        " accounts that hold it as collateral (positions_by_asset).",
        "from_exchange": "Coins leaving an exchange are often a purchase or a move to a protocol.",
        "between_exchanges": "A move between exchanges: liquidity being repositioned.",
    }[str(facts["direction"])]
    body = (
        f"{amount:,.2f} {facts['symbol']} ({usd(value)}) from {src} to {dst} on chain {chain_id},"
        f" block {facts['block']}, tx {facts['tx_hash']}. The token's whale threshold is"
        f" {usd(float(str(facts['whale_threshold_usd'])))}.\n{meaning} Details: the `whale_flows` view."
    )
    return alert(
        rule,
        now,
        subject=f"{chain_id}:{facts['tx_hash']}:{facts['log_index']}",
        title=f"{usd(value)} of {facts['symbol']}: {src} → {dst}",
        body=body,
        facts=facts,
        chain_id=chain_id,
        period=f"block:{facts['block']}",
    )


register("whale_transfer", WhaleTransferParams, evaluate)
