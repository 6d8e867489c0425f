"""`governance` and `governance_impact`: proposals on every indexed governor, and what a queued risk
change does to today's positions while there is still time to act.

    [[alerts]]
    name = "dao-proposals"
    kind = "governance"
    events = ["created", "queued", "executed", "canceled"]   # default: all four
    governors = []               # governor addresses; empty: every indexed governor
    window = "1d"                # events whose block is at most this old

    [[alerts]]
    name = "risk-change-impact"
    kind = "governance_impact"
    severity = "high"
    min_newly_liquidatable = 1   # fire when at least this many wallets become liquidatable (0: always)
    min_debt_at_risk_usd = 0     # ... and debt at risk grows by at least this much
    fork_rpc_env = "MAINNET_RPC" # optional: node to fork for payloads whose values are not in calldata

A `governance` alert fires once per proposal and event (its period is the event's block). A
`governance_impact` alert fires once per queued proposal that changes a health-factor parameter (LT, LTV,
eMode): the change is applied to every borrower of each affected market at the proposal's ETA
(:mod:`chainrisk.governance_impact`). A proposal already alerted is not recomputed, so a newly queued one
is evaluated on the job's next run (every 30 s).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chainrisk.alerts.model import Alert
from chainrisk.alerts.rules import Conn, chain_ids, register, short, usd
from chainrisk.governance_impact import (
    HF_PARAMETERS,
    ForkCall,
    MarketImpact,
    ParamChange,
    aave_execute_payload,
    aave_v2_execute,
    decoded_changes,
    fork_changes_by_pool,
    governor_timelock,
    payload_eta,
    proposal_impact,
    timelock_calls,
)

if TYPE_CHECKING:
    from chainrisk.alerts.rules_config import AlertRuleConfig

Event = Literal["created", "queued", "executed", "canceled"]
EVENTS: tuple[Event, ...] = ("created", "queued", "executed", "canceled")
MAX_LISTED = 10
GOVERNORS = {
    "governor": "Governor",
    "aave_v2": "Aave Governance v2",
    "aave_v3": "Aave Governance v3",
    "timelock": "TimelockController",
    "aave_v3_payload": "Aave PayloadsController",
}
# What a row of `proposals` is, by kind, in a message.
NOUNS = {"timelock": "Timelock operation", "aave_v3_payload": "Payload"}


def _window_s(text: str) -> int:
    from chainrisk.serve.config import interval_seconds

    return interval_seconds(text)


def _addresses(values: list[str]) -> list[str]:
    for value in values:
        if len(value) != 42 or not value.startswith("0x"):
            raise ValueError(f"{value!r} is not an address; expected 0x and 40 hex digits")
        int(value[2:], 16)
    return [v.lower() for v in values]


class GovernanceParams(BaseModel):
    """Which proposal events, on which governors, over which window."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(default_factory=lambda: list(EVENTS), min_length=1)
    governors: list[str] = Field(default_factory=list)
    window: str = "1d"

    @field_validator("governors")
    @classmethod
    def _governors(cls, values: list[str]) -> list[str]:
        return _addresses(values)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        _window_s(value)
        return value


class GovernanceImpactParams(BaseModel):
    """Queued proposals (within `window`) whose risk changes put at least `min_newly_liquidatable`
    wallets under HF 1 and grow debt at risk by at least `min_debt_at_risk_usd`."""

    model_config = ConfigDict(extra="forbid")

    governors: list[str] = Field(default_factory=list)
    window: str = "7d"
    min_newly_liquidatable: int = Field(default=0, ge=0)
    min_debt_at_risk_usd: float = Field(default=0, ge=0)
    aave_version: Literal["3.0", "3.5"] = "3.0"
    fork_rpc_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("governors")
    @classmethod
    def _governors(cls, values: list[str]) -> list[str]:
        return _addresses(values)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        _window_s(value)
        return value


# Each event of each proposal with its block's time (from the logs, else the stored header).
EVENTS_SQL = """
SELECT p.chain_id, p.governor, p.proposal_id, p.kind, p.title, e.event, e.block_number, p.eta, p.proposer,
       p.voters, p.votes_for, p.votes_against, p.votes_abstain, to_timestamp(t.ts) AS block_time
FROM proposals p
CROSS JOIN LATERAL (VALUES ('created', p.created_block), ('queued', p.queued_block),
                           ('executed', p.executed_block), ('canceled', p.canceled_block))
    AS e(event, block_number)
LEFT JOIN LATERAL (
    SELECT coalesce(
        (SELECT l.block_timestamp FROM logs l
          WHERE l.chain_id = p.chain_id AND l.block_number = e.block_number AND l.block_timestamp IS NOT NULL
          LIMIT 1),
        (SELECT b.timestamp FROM blocks b WHERE b.chain_id = p.chain_id AND b.number = e.block_number)) AS ts
) t ON true
WHERE p.chain_id = %(chain)s AND e.block_number IS NOT NULL AND e.event = ANY(%(events)s)
  AND (cardinality(%(governors)s::text[]) = 0 OR p.governor = ANY(%(governors)s))
  AND to_timestamp(t.ts) > %(since)s
ORDER BY e.block_number, p.governor, p.proposal_id
"""


def _new_alert(
    rule: AlertRuleConfig,
    now: datetime,
    subject: str,
    period: str,
    title: str,
    body: str,
    facts: dict[str, Any],
) -> Alert:
    chain = int(subject.split(":", 1)[0])
    return Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=rule.severity,
        subject=subject,
        period=period,
        title=title,
        body=body,
        facts=facts,
        chain_id=chain,
        observed_at=now,
    )


def _when(timestamp: Any) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d %H:%M UTC")


def _proposal_name(proposal_id: Any) -> str:
    text = str(int(proposal_id))
    return text if len(text) <= 12 else f"{text[:6]}…{text[-4:]}"


def _symbols(conn: Conn, chain_id: int) -> dict[str, str]:
    rows = conn.execute("SELECT token, symbol FROM tracked_tokens WHERE chain_id = %s", (chain_id,))
    return {str(t): str(s) for t, s in rows.fetchall() if s}


def _describe(change: ParamChange, symbols: dict[str, str]) -> str:
    """The change with its asset's symbol when the token is tracked."""
    if change.asset is not None and change.asset in symbols:
        return replace(change, asset=symbols[change.asset]).describe()
    return change.describe()


def _listing(changes: list[ParamChange], symbols: dict[str, str]) -> str:
    """The changes that change something (a call may set a parameter to its current value)."""
    moving = [c for c in changes if c.old_value != c.new_value] or changes
    return "; ".join(_describe(c, symbols) for c in moving)


# ---------------------------------------------------------------------------------------- governance


def evaluate_governance(
    conn: Conn, rule: AlertRuleConfig, params: GovernanceParams, now: datetime
) -> list[Alert]:
    """One alert per proposal event in the window."""
    since = now - timedelta(seconds=_window_s(params.window))
    alerts = []
    for chain_id in chain_ids(conn, rule):
        query = {
            "chain": chain_id,
            "events": list(params.events),
            "governors": params.governors,
            "since": since,
        }
        symbols = _symbols(conn, chain_id)
        for row in conn.execute(EVENTS_SQL, query).fetchall():
            alerts.append(_event_alert(conn, rule, now, chain_id, row, symbols))
    return alerts


def _event_alert(
    conn: Conn,
    rule: AlertRuleConfig,
    now: datetime,
    chain_id: int,
    row: tuple[Any, ...],
    symbols: dict[str, str],
) -> Alert:
    _, governor, pid, kind, title, event, block, eta, proposer, voters, v_for, v_against, v_abstain, at = row
    changes = decoded_changes(conn, chain_id, governor, int(pid))
    name = _proposal_name(pid)
    lines = [
        f"{NOUNS.get(kind, 'Proposal')} {name} {event} on {GOVERNORS.get(kind, kind)} {governor}"
        f" (chain {chain_id})"
        f" at block {block}{f' ({at:%Y-%m-%d %H:%M} UTC)' if at else ''}.",
        f"Title: {title}" if title else "Title: (not on chain)",
        f"Votes: {voters} voter{'' if voters == 1 else 's'}; for {float(v_for) / 1e18:,.0f},"
        f" against {float(v_against) / 1e18:,.0f}, abstain {float(v_abstain) / 1e18:,.0f}.",
    ]
    if event == "queued" and eta is not None:
        lines.append(f"Executable from {_when(eta)} (ETA).")
    if changes:
        lines.append(f"Risk parameters it sets: {_listing(changes, symbols)}.")
    facts = {
        "governor": governor,
        "kind": kind,
        "proposal_id": str(int(pid)),
        "event": event,
        "block": int(block),
        "eta": None if eta is None else int(eta),
        "proposer": proposer,
        "voters": int(voters),
        "votes_for": str(int(v_for)),
        "votes_against": str(int(v_against)),
        "votes_abstain": str(int(v_abstain)),
        "changes": [c.to_dict() for c in changes],
    }
    return _new_alert(
        rule,
        now,
        f"{chain_id}:{governor}:{int(pid)}:{event}",
        f"block {block}",
        f"{NOUNS.get(kind, 'Proposal')} {name} {event}{f': {title}' if title else ''}"[:200],
        "\n".join(lines),
        facts,
    )


# ----------------------------------------------------------------------------------- governance impact

QUEUED_SQL = """
SELECT p.chain_id, p.governor, p.proposal_id, p.kind, p.title, p.queued_block, p.eta, p.targets, p.calldatas,
       p.signatures
FROM proposals p
LEFT JOIN LATERAL (
    SELECT coalesce(
        (SELECT l.block_timestamp FROM logs l
          WHERE l.chain_id = p.chain_id AND l.block_number = p.queued_block AND l.block_timestamp IS NOT NULL
          LIMIT 1),
        (SELECT b.timestamp FROM blocks b WHERE b.chain_id = p.chain_id AND b.number = p.queued_block)) AS ts
) t ON true
WHERE p.chain_id = %(chain)s AND p.state = 'queued'
  AND (cardinality(%(governors)s::text[]) = 0 OR p.governor = ANY(%(governors)s))
  AND to_timestamp(t.ts) > %(since)s
  -- A timelock operation a Governor queued in the same transaction is that proposal, alerted as such.
  AND NOT (p.kind = 'timelock' AND EXISTS (
      SELECT 1 FROM gov_proposal_queued g WHERE g.chain_id = p.chain_id AND g.tx_hash = p.created_tx))
ORDER BY p.queued_block, p.governor, p.proposal_id
"""


def evaluate_impact(
    conn: Conn, rule: AlertRuleConfig, params: GovernanceImpactParams, now: datetime
) -> list[Alert]:
    """One alert per queued proposal whose health-factor changes pass the rule's limits."""
    since = now - timedelta(seconds=_window_s(params.window))
    alerts = []
    for chain_id in chain_ids(conn, rule):
        query = {"chain": chain_id, "governors": params.governors, "since": since}
        for row in conn.execute(QUEUED_SQL, query).fetchall():
            subject, period = f"{chain_id}:{row[1]}:{int(row[2])}", f"queued at block {row[5]}"
            if _already(conn, f"{rule.name}:{subject}:{period}"):
                continue  # computed and stored already: newly queued proposals stay fast
            found = _impact_alert(conn, rule, params, now, chain_id, row, subject, period)
            if found is not None:
                alerts.append(found)
    return alerts


def _already(conn: Conn, dedup_key: str) -> bool:
    return conn.execute("SELECT 1 FROM alerts WHERE dedup_key = %s", (dedup_key,)).fetchone() is not None


def _fork_calls(
    params: GovernanceImpactParams, kind: str, row: tuple[Any, ...]
) -> tuple[str, list[ForkCall]]:
    """The node to fork and what to run there, for calls the calldata does not explain."""
    url = os.environ.get(params.fork_rpc_env or "", "")
    if not url:
        return "", []
    if kind == "aave_v2":
        return url, [aave_v2_execute(str(row[1]), int(row[2]))]
    if kind == "aave_v3_payload":
        return url, [aave_execute_payload(str(row[1]), int(row[2]))]
    if kind not in ("governor", "timelock") or not row[7]:
        return "", []
    # A timelock operation runs its calls from the timelock itself.
    timelock = str(row[1]) if kind == "timelock" else governor_timelock(url, str(row[1]))
    calldatas = [bytes.fromhex(d[2:]) for d in row[8]]
    return url, timelock_calls(timelock, list(row[7]), calldatas, list(row[9] or ()))


def _changes_by_fork(
    conn: Conn, params: GovernanceImpactParams, chain_id: int, row: tuple[Any, ...]
) -> dict[str, list[ParamChange]]:
    url, calls = _fork_calls(params, str(row[3]), row)
    if not calls:
        return {}
    from chainrisk.settings import default_home
    from indexer.lending.health import pools

    home = Path(os.environ.get("CHAINRISK_HOME") or default_home())
    eta = None if row[6] is None else int(row[6])
    if row[3] == "aave_v3_payload":
        # executePayload wants the time strictly past queuedAt + delay, which the node knows when the
        # executor's delay was set before the indexed range.
        known = eta if eta is not None else payload_eta(url, str(row[1]), int(row[2]))
        eta = None if known is None else known + 1
    return fork_changes_by_pool(url, chain_id, pools(conn, chain_id), calls, home, at_timestamp=eta)


def _impact_alert(
    conn: Conn,
    rule: AlertRuleConfig,
    params: GovernanceImpactParams,
    now: datetime,
    chain_id: int,
    row: tuple[Any, ...],
    subject: str,
    period: str,
) -> Alert | None:
    governor, pid, eta = str(row[1]), int(row[2]), None if row[6] is None else int(row[6])
    changes = decoded_changes(conn, chain_id, governor, pid)
    impacts: list[MarketImpact] = []
    if changes:
        if not any(c.parameter in HF_PARAMETERS for c in changes):
            return None
        impacts = proposal_impact(
            conn, chain_id, changes, at_timestamp=eta, version=params.aave_version, markets=rule.markets
        )
    else:
        for pool, found in _changes_by_fork(conn, params, chain_id, row).items():
            if any(c.parameter in HF_PARAMETERS for c in found):
                impacts += proposal_impact(
                    conn, chain_id, found, at_timestamp=eta, version=params.aave_version, pool=pool
                )
    if not impacts or not _passes(params, impacts):
        return None
    return _render(conn, rule, now, chain_id, row, impacts, subject, period)


def _passes(params: GovernanceImpactParams, impacts: list[MarketImpact]) -> bool:
    newly = sum(len(i.newly_liquidatable) for i in impacts)
    grown = sum(i.debt_at_risk_usd[1] - i.debt_at_risk_usd[0] for i in impacts)
    return newly >= params.min_newly_liquidatable and grown >= params.min_debt_at_risk_usd


def _render(
    conn: Conn,
    rule: AlertRuleConfig,
    now: datetime,
    chain_id: int,
    row: tuple[Any, ...],
    impacts: list[MarketImpact],
    subject: str,
    period: str,
) -> Alert:
    governor, pid, title, eta = str(row[1]), row[2], row[4], row[6]
    symbols = _symbols(conn, chain_id)
    name = _proposal_name(pid)
    hours = 0.0 if eta is None else (int(eta) - now.timestamp()) / 3600
    left = f" (in {hours:.1f} h)" if hours >= 0 else f" ({-hours:.1f} h ago)"
    noun, kind = NOUNS.get(str(row[3]), "Proposal"), GOVERNORS.get(str(row[3]), "governor")
    lines = [
        f"{noun} {name} on {kind} {governor} (chain {chain_id}) is queued{f': {title}' if title else ''}.",
        f"It can execute from {_when(eta)}{left}."
        if eta is not None
        else "Its execution time is not on chain.",
        f"Changes: {_listing(impacts[0].changes, symbols)}.",
    ]
    for impact in impacts:
        lines += _market_lines(impact)
    newly = sum(len(i.newly_liquidatable) for i in impacts)
    debt_after = sum(i.debt_at_risk_usd[1] for i in impacts)
    return _new_alert(
        rule,
        now,
        subject,
        period,
        f"Queued {noun.lower()} {name} makes {newly} wallet{'s' if newly != 1 else ''} liquidatable"
        f" ({usd(debt_after)} debt at risk)",
        "\n".join(lines),
        {
            "governor": governor,
            "proposal_id": str(int(pid)),
            "eta": eta,
            "markets": [i.to_dict() for i in impacts],
        },
    )


def _market_lines(impact: MarketImpact) -> list[str]:
    (n0, n1), (c0, c1), (d0, d1) = impact.liquidatable, impact.collateral_at_risk_usd, impact.debt_at_risk_usd
    full = len(impact.entering_full_close)
    lines = [
        f"Market {impact.pool}: {len(impact.newly_liquidatable)} of {impact.borrowers} borrowers become"
        f" liquidatable (HF < 1; {n0} → {n1} in all), {full} {'enters' if full == 1 else 'enter'} the 100 %"
        " close-factor zone (HF ≤ 0.95).",
        f"  Collateral at risk {usd(c0)} → {usd(c1)}; debt at risk {usd(d0)} → {usd(d1)}.",
    ]
    for wallet in impact.newly_liquidatable[:MAX_LISTED]:
        lines.append(
            f"  {short(wallet.user)}: HF {wallet.hf_before / 1e18:.3f} → {wallet.hf_after / 1e18:.3f},"
            f" debt {usd(wallet.debt_base / 1e8)}, collateral {usd(wallet.collateral_base / 1e8)}"
        )
    if len(impact.newly_liquidatable) > MAX_LISTED:
        lines.append(f"  … and {len(impact.newly_liquidatable) - MAX_LISTED} more (all in the facts).")
    before, after = impact.hf_distribution
    lines.append("  HF distribution: " + ", ".join(f"{k} {before[k]} → {after[k]}" for k in before) + ".")
    if impact.lar_usd:
        drops = ", ".join(f"−{k} % {usd(b)} → {usd(a)}" for k, (b, a) in impact.lar_usd.items())
        lines.append(f"  Debt at risk if prices fall: {drops}.")
    return lines


register("governance", GovernanceParams, evaluate_governance)
register("governance_impact", GovernanceImpactParams, evaluate_impact)
