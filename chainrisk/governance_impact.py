"""What a pending governance change does to today's positions, before it executes.

    changes = decoded_changes(conn, chain_id, governor, proposal_id)      # from calldata
    impacts = proposal_impact(conn, chain_id, changes, at_timestamp=eta)  # one per affected market

A queued proposal that changes risk parameters (liquidation thresholds, LTVs, eMode categories) is applied
to the indexed positions exactly: each market is rebuilt at the indexed head
(:func:`indexer.lending.positions.market_state`) with its time moved to the proposal's ETA, when the
change can take effect, and every account's ``getUserAccountData`` is computed with the current and with
the changed parameters (:mod:`indexer.protocols.aave_math`). The difference is the impact: wallets that
become liquidatable (HF < 1), wallets entering the 100 % close-factor zone (HF ≤ 0.95), collateral and
debt at risk before and after, the health-factor distribution before and after, and the debt at risk
when every non-dollar price falls 10, 20 and 30 %.

When the new values are not in the calldata (an Aave Governance v3 payload runs by delegatecall from the
executor; any call the `risk_param_changes` view does not decode), :func:`fork_changes` executes the calls
on an anvil fork of the indexed node, impersonating the executor, reads every reserve's configuration
and eMode category through the Pool's getters before and after, and returns the difference as the same
:class:`ParamChange` records, applied the same way. An Aave Governance v3 payload runs on the fork as it will
on chain: ``executePayload(id)`` on its PayloadsController once the fork's time is past the payload's ETA.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

from indexer.config import normalise_address
from indexer.lending.health import indexed_head, pools
from indexer.lending.positions import EModeConfig, MarketState, ReserveConfig, market_state, reserve_tokens
from indexer.protocols.aave_math import AccountData, Version

Conn = psycopg.Connection[tuple[Any, ...]]

HF_ONE = 10**18
FULL_CLOSE_HF = 95 * 10**16  # at or below it a liquidator may repay all the debt (close factor 100 %)
BASE_UNIT = 10**8  # the oracles' base currency: USD with 8 decimals
SHOCKS = (10, 20, 30)
RECEIPT_TIMEOUT_S = 30.0
ANY_SENDER = "0x000000000000000000000000000000000000dead"  # for calls anyone may make
# Buckets of the hf_distribution view, by lower bound.
BUCKETS: tuple[tuple[str, int], ...] = (
    ("< 1.00", 0),
    ("1.00-1.05", HF_ONE),
    ("1.05-1.10", 105 * 10**16),
    ("1.10-1.25", 110 * 10**16),
    ("1.25-1.50", 125 * 10**16),
    ("1.50-2.00", 150 * 10**16),
    (">= 2.00", 2 * HF_ONE),
)
# Reserve fields a parameter sets, and eMode category fields.
_RESERVE_FIELDS = {
    "ltv": "ltv_bps",
    "liquidation_threshold": "liquidation_threshold_bps",
    "liquidation_bonus": "liquidation_bonus_bps",
    "emode_category": "emode_category",
}
_EMODE_FIELDS = {
    "emode_ltv": "ltv_bps",
    "emode_liquidation_threshold": "liquidation_threshold_bps",
    "emode_liquidation_bonus": "liquidation_bonus_bps",
}
# Parameters that move a health factor; the others (caps, factors, fees) are reported, not applied.
HF_PARAMETERS = frozenset(
    {"ltv", "liquidation_threshold", "emode_category", "emode_ltv", "emode_liquidation_threshold"}
)


class ImpactError(RuntimeError):
    """The impact cannot be computed (a fork call reverted, a getter is missing)."""


@dataclass(frozen=True)
class ParamChange:
    """One parameter a proposal sets: of a reserve (``asset``) or of an eMode category."""

    parameter: str
    new_value: int
    asset: str | None = None
    emode_category: int | None = None
    old_value: int | None = None
    configurator: str | None = None  # None: found on a fork, it applies to the forked pool

    def describe(self) -> str:
        """`liquidation_threshold of 0xc02a…: 8250 → 7000` for a message."""
        subject = f"{self.asset}" if self.asset else f"eMode category {self.emode_category}"
        old = "?" if self.old_value is None else str(self.old_value)
        return f"{self.parameter} of {subject}: {old} → {self.new_value}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameter": self.parameter,
            "asset": self.asset,
            "emode_category": self.emode_category,
            "old_value": self.old_value,
            "new_value": self.new_value,
        }


# ----------------------------------------------------------------------------------- the calldata path


def decoded_changes(conn: Conn, chain_id: int, governor: str, proposal_id: int) -> list[ParamChange]:
    """The changes `risk_param_changes` decodes from a proposal's calls (calls whose arguments are cut
    short set nothing known and are left out)."""
    rows = conn.execute(
        "SELECT configurator, asset, emode_category, parameter, old_value, new_value"
        " FROM risk_param_changes WHERE chain_id = %s AND governor = %s AND proposal_id = %s"
        " AND new_value IS NOT NULL ORDER BY configurator, asset, emode_category, parameter",
        (chain_id, normalise_address(governor), proposal_id),
    ).fetchall()
    return [
        ParamChange(
            parameter=str(parameter),
            new_value=int(new),
            asset=None if asset is None else str(asset),
            emode_category=None if category is None else int(category),
            old_value=None if old is None else int(old),
            configurator=str(configurator),
        )
        for configurator, asset, category, parameter, old, new in rows
    ]


def apply_changes(state: MarketState, changes: Iterable[ParamChange]) -> MarketState:
    """The market with the changed reserve and eMode parameters (a copy; positions and prices as is)."""
    configs = dict(state.configs)
    categories = dict(state.emode_categories)
    for change in changes:
        if change.parameter in _RESERVE_FIELDS and change.asset is not None:
            asset = normalise_address(change.asset)
            current = configs.get(asset, ReserveConfig())
            fields: dict[str, Any] = {_RESERVE_FIELDS[change.parameter]: change.new_value}
            configs[asset] = replace(current, **fields)
        elif change.parameter in _EMODE_FIELDS and change.emode_category is not None:
            category = change.emode_category
            current_category = categories.get(category, EModeConfig(category, 0, 0, 0))
            values: dict[str, Any] = {_EMODE_FIELDS[change.parameter]: change.new_value}
            categories[category] = replace(current_category, **values)
    return replace(state, configs=configs, emode_categories=categories)


# ---------------------------------------------------------------------------------------- the impact


@dataclass(frozen=True)
class WalletImpact:
    """One wallet whose health factor the change moves across 1 or 0.95 (HF in wad, values in base)."""

    user: str
    hf_before: int
    hf_after: int
    collateral_base: int
    debt_base: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "hf_before": self.hf_before / HF_ONE,
            "hf_after": self.hf_after / HF_ONE,
            "collateral_usd": self.collateral_base / BASE_UNIT,
            "debt_usd": self.debt_base / BASE_UNIT,
        }


@dataclass
class MarketImpact:
    """What the changes do to one market's borrowers (USD at the oracle prices of the indexed head)."""

    chain_id: int
    pool: str
    block: int
    timestamp: int
    changes: list[ParamChange]
    borrowers: int
    newly_liquidatable: list[WalletImpact]
    entering_full_close: list[WalletImpact]
    liquidatable: tuple[int, int]
    collateral_at_risk_usd: tuple[float, float]
    debt_at_risk_usd: tuple[float, float]
    hf_distribution: tuple[dict[str, int], dict[str, int]]
    lar_usd: dict[int, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-able facts (before/after pairs as {"before", "after"})."""

        def pair(values: tuple[Any, Any]) -> dict[str, Any]:
            return {"before": values[0], "after": values[1]}

        return {
            "chain_id": self.chain_id,
            "pool": self.pool,
            "block": self.block,
            "at_timestamp": self.timestamp,
            "changes": [c.to_dict() for c in self.changes],
            "borrowers": self.borrowers,
            "newly_liquidatable": [w.to_dict() for w in self.newly_liquidatable],
            "entering_full_close": [w.to_dict() for w in self.entering_full_close],
            "liquidatable": pair(self.liquidatable),
            "collateral_at_risk_usd": pair(self.collateral_at_risk_usd),
            "debt_at_risk_usd": pair(self.debt_at_risk_usd),
            "hf_distribution": pair(self.hf_distribution),
            "debt_at_risk_after_drop_usd": {f"-{k}%": pair(v) for k, v in self.lar_usd.items()},
        }


def _accounts(state: MarketState, version: Version) -> dict[str, AccountData]:
    return {user: state.account_data(user, version) for user in state.users}


def _bucket(hf: int) -> str:
    return [name for name, low in BUCKETS if hf >= low][-1]


def _distribution(accounts: Mapping[str, AccountData]) -> dict[str, int]:
    counts = {name: 0 for name, _ in BUCKETS}
    for data in accounts.values():
        if data.total_debt_base:
            counts[_bucket(data.health_factor)] += 1
    return counts


def _at_risk(accounts: Mapping[str, AccountData]) -> tuple[int, float, float]:
    risky = [a for a in accounts.values() if a.total_debt_base and a.health_factor < HF_ONE]
    collateral = sum(a.total_collateral_base for a in risky) / BASE_UNIT
    return len(risky), collateral, sum(a.total_debt_base for a in risky) / BASE_UNIT


def _shocked(state: MarketState, drop: int) -> MarketState:
    # Every price not within 2 % of one dollar falls; dollars hold.
    prices = {
        asset: price if abs(price - BASE_UNIT) <= BASE_UNIT // 50 else price * (100 - drop) // 100
        for asset, price in state.prices.items()
    }
    return replace(state, prices=prices)


def _crossing(
    before: Mapping[str, AccountData], after: Mapping[str, AccountData], line: int, strict: bool
) -> list[WalletImpact]:
    def below(hf: int) -> bool:
        return hf < line if strict else hf <= line

    out = [
        WalletImpact(user, b.health_factor, a.health_factor, a.total_collateral_base, a.total_debt_base)
        for user, b in before.items()
        if (a := after[user]).total_debt_base and not below(b.health_factor) and below(a.health_factor)
    ]
    return sorted(out, key=lambda w: (-w.debt_base, w.user))


def market_impact(
    state: MarketState,
    changes: Sequence[ParamChange],
    version: Version = "3.0",
    shocks: Sequence[int] = SHOCKS,
) -> MarketImpact:
    """Every borrower of ``state`` with the current and with the changed parameters."""
    changed = apply_changes(state, changes)
    before, after = _accounts(state, version), _accounts(changed, version)
    risk_before, risk_after = _at_risk(before), _at_risk(after)
    lar = {
        drop: (
            _at_risk(_accounts(_shocked(state, drop), version))[2],
            _at_risk(_accounts(_shocked(changed, drop), version))[2],
        )
        for drop in shocks
    }
    return MarketImpact(
        chain_id=state.chain_id,
        pool=state.pool,
        block=state.block,
        timestamp=state.timestamp,
        changes=list(changes),
        borrowers=sum(1 for a in before.values() if a.total_debt_base),
        newly_liquidatable=_crossing(before, after, HF_ONE, strict=True),
        entering_full_close=_crossing(before, after, FULL_CLOSE_HF, strict=False),
        liquidatable=(risk_before[0], risk_after[0]),
        collateral_at_risk_usd=(risk_before[1], risk_after[1]),
        debt_at_risk_usd=(risk_before[2], risk_after[2]),
        hf_distribution=(_distribution(before), _distribution(after)),
        lar_usd=lar,
    )


def head_block(conn: Conn, chain_id: int) -> int | None:
    """The block positions are read at: the indexed head of the chain."""
    return indexed_head(conn, chain_id)


def proposal_impact(
    conn: Conn,
    chain_id: int,
    changes: Sequence[ParamChange],
    *,
    at_timestamp: int | None = None,
    version: Version = "3.0",
    markets: Sequence[str] = (),
    pool: str | None = None,
    shocks: Sequence[int] = SHOCKS,
) -> list[MarketImpact]:
    """The impact on every indexed market whose configurator the changes target (``pool`` for changes
    found on a fork), at the indexed head with time moved to ``at_timestamp`` (the ETA) when later."""
    block = head_block(conn, chain_id)
    if block is None or not changes:
        return []
    wanted = {normalise_address(m) for m in markets}
    out = []
    for market in pools(conn, chain_id):
        if (wanted and market not in wanted) or (pool is not None and market != normalise_address(pool)):
            continue
        _, configurators = reserve_tokens(conn, chain_id, market, block)
        mine = [c for c in changes if c.configurator is None or c.configurator in configurators]
        if not mine:
            continue
        state = market_state(conn, chain_id, market, block)
        if at_timestamp is not None and at_timestamp > state.timestamp:
            state = replace(state, timestamp=at_timestamp)
        out.append(market_impact(state, mine, version, shocks))
    return out


# -------------------------------------------------------------------------------------- the fork path


@dataclass(frozen=True)
class ForkCall:
    """A transaction to run on the fork as ``sender`` (impersonated): the timelock or executor."""

    sender: str
    target: str
    data: bytes
    value: int = 0


def timelock_calls(
    timelock: str, targets: Sequence[str], calldatas: Sequence[bytes], signatures: Sequence[str] = ()
) -> list[ForkCall]:
    """What a TimelockController (OpenZeppelin Governor) or a Bravo/Alpha timelock runs: each call from
    it. A call with a signature (Bravo, Alpha) carries only the arguments: the selector goes first."""
    named = list(signatures) or [""] * len(targets)
    return [
        ForkCall(timelock, t, (_selector(s) if s else b"") + bytes(d))
        for t, d, s in zip(targets, calldatas, named, strict=True)
    ]


def aave_v2_execute(governance: str, proposal_id: int) -> ForkCall:
    """``AaveGovernanceV2.execute(id)``: anyone may call it once the execution time has come (move the
    fork's time to the ETA); the executor then runs each action, delegatecalls included."""
    data = _selector("execute(uint256)") + encode(["uint256"], [proposal_id])
    return ForkCall(ANY_SENDER, governance, data)


def aave_execute_payload(controller: str, payload_id: int) -> ForkCall:
    """``PayloadsController.executePayload(id)``: anyone may call it once the payload's delay has passed
    (move the fork's time past the ETA); its executors then run each action, delegatecalls included."""
    data = _selector("executePayload(uint40)") + encode(["uint40"], [payload_id])
    return ForkCall(ANY_SENDER, controller, data)


# IPayloadsControllerCore.Payload: creator, maximumAccessLevelRequired, state, createdAt, queuedAt,
# executedAt, cancelledAt, expirationTime, delay, gracePeriod, actions.
_PAYLOAD = (
    "(address,uint8,uint8,uint40,uint40,uint40,uint40,uint40,uint40,uint40,"
    "(address,bool,uint8,uint256,string,bytes)[])"
)


def payload_eta(rpc_url: str, controller: str, payload_id: int) -> int | None:
    """When a queued payload can first execute (queuedAt + delay, from ``getPayloadById``); None when it
    is not queued or the node cannot say."""
    import httpx

    data = _selector("getPayloadById(uint40)") + encode(["uint40"], [payload_id])
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_call",
        "params": [{"to": controller, "data": "0x" + data.hex()}, "latest"],
    }
    result = str(httpx.post(rpc_url, json=body, timeout=10).json().get("result") or "")
    try:
        ((_, _, _, _, queued_at, _, _, _, delay, _, _),) = decode([_PAYLOAD], bytes.fromhex(result[2:]))
    except Exception:  # not a PayloadsController, or the node answered with an error
        return None
    return int(queued_at) + int(delay) if queued_at else None


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _bits(word: int, start: int, width: int) -> int:
    return (word >> start) & ((1 << width) - 1)


# Aave v3 ReserveConfigurationMap: (parameter, first bit, width).
_CONFIG_BITS = (
    ("ltv", 0, 16),
    ("liquidation_threshold", 16, 16),
    ("liquidation_bonus", 32, 16),
    ("frozen", 57, 1),
    ("paused", 60, 1),
    ("reserve_factor", 64, 16),
    ("borrow_cap", 80, 36),
    ("supply_cap", 116, 36),
    ("liquidation_protocol_fee", 152, 16),
    ("emode_category", 168, 8),
    ("debt_ceiling", 212, 40),
)


class _Node:
    """Calls and transactions on the fork (an object with ``rpc(method, params)``)."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def call(self, to: str, data: bytes) -> bytes:
        result = self.node.rpc("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
        return bytes.fromhex(str(result).removeprefix("0x"))

    def send(self, call: ForkCall) -> None:
        sender = normalise_address(call.sender)
        self.node.rpc("anvil_impersonateAccount", [sender])
        self.node.rpc("anvil_setBalance", [sender, hex(10**21)])
        tx = {"from": sender, "to": call.target, "data": "0x" + call.data.hex(), "value": hex(call.value)}
        tx["gas"] = hex(15_000_000)
        try:
            tx_hash = self.node.rpc("eth_sendTransaction", [tx])
            receipt = self._receipt(str(tx_hash))
            if receipt is None or int(receipt["status"], 16) != 1:
                raise ImpactError(
                    f"the call to {call.target} from {sender} reverted on the fork{self._why(tx)}"
                )
        finally:
            self.node.rpc("anvil_stopImpersonatingAccount", [sender])

    def _receipt(self, tx_hash: str) -> Any:
        # Anvil mines a sent transaction at once, but its receipt may show up a moment later.
        deadline = time.monotonic() + RECEIPT_TIMEOUT_S
        while True:
            receipt = self.node.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None or time.monotonic() > deadline:
                return receipt
            time.sleep(0.05)

    def _why(self, tx: dict[str, str]) -> str:
        # A reverted transaction replayed as a call gives its revert data.
        try:
            self.node.rpc("eth_call", [tx, "latest"])
        except Exception as exc:  # the node's error carries the revert data
            return f": {getattr(exc, 'data', None) or exc}"
        return ""


def reserve_configuration(
    node: Any, pool: str
) -> tuple[dict[str, dict[str, int]], dict[int, dict[str, int]]]:
    """Every reserve's parameters and the eMode categories they use, read from the Pool's getters."""
    rpc = _Node(node)
    (assets,) = decode(["address[]"], rpc.call(pool, _selector("getReservesList()")))
    reserves: dict[str, dict[str, int]] = {}
    for asset in assets:
        raw = rpc.call(pool, _selector("getConfiguration(address)") + encode(["address"], [asset]))
        (word,) = decode(["uint256"], raw)
        reserves[normalise_address(asset)] = {name: _bits(word, s, w) for name, s, w in _CONFIG_BITS}
    categories: dict[int, dict[str, int]] = {}
    for category in sorted({r["emode_category"] for r in reserves.values()} - {0}):
        categories[category] = _emode_category(rpc, pool, category)
    return reserves, categories


def _emode_category(rpc: _Node, pool: str, category: int) -> dict[str, int]:
    # v3.0/3.1: getEModeCategoryData(uint8) -> (ltv, lt, bonus, priceSource, label); v3.2+ split getters.
    arg = encode(["uint8"], [category])
    try:
        raw = rpc.call(pool, _selector("getEModeCategoryData(uint8)") + arg)
        ((ltv, lt, bonus, _, _),) = decode(["(uint16,uint16,uint16,address,string)"], raw)
    except Exception:  # a node reports a missing function as an error: try the newer getter
        raw = rpc.call(pool, _selector("getEModeCategoryCollateralConfig(uint8)") + arg)
        ltv, lt, bonus = decode(["uint16", "uint16", "uint16"], raw)
    return {
        "emode_ltv": int(ltv),
        "emode_liquidation_threshold": int(lt),
        "emode_liquidation_bonus": int(bonus),
    }


def config_diff(
    before: tuple[dict[str, dict[str, int]], dict[int, dict[str, int]]],
    after: tuple[dict[str, dict[str, int]], dict[int, dict[str, int]]],
) -> list[ParamChange]:
    """The parameters that differ, as changes (old and new values)."""
    changes = []
    for asset, values in sorted(after[0].items()):
        old = before[0].get(asset, {})
        for name, value in values.items():
            if old.get(name) != value:
                changes.append(ParamChange(name, value, asset=asset, old_value=old.get(name)))
    for category, values in sorted(after[1].items()):
        old = before[1].get(category, {})
        for name, value in values.items():
            if old.get(name) != value:
                changes.append(ParamChange(name, value, emode_category=category, old_value=old.get(name)))
    return changes


def fork_changes(
    rpc_url: str,
    chain_id: int,
    pool: str,
    calls: Sequence[ForkCall],
    home: Path,
    *,
    block: int | None = None,
    at_timestamp: int | None = None,
) -> list[ParamChange]:
    """Run ``calls`` on an anvil fork of ``rpc_url`` (at ``block``, default its head) and diff the
    Pool's reserve configuration; ``at_timestamp`` moves the fork's time first (payloads that check it)."""
    found = fork_changes_by_pool(
        rpc_url, chain_id, [pool], calls, home, block=block, at_timestamp=at_timestamp
    )
    return found[normalise_address(pool)]


def fork_changes_by_pool(
    rpc_url: str,
    chain_id: int,
    pools: Sequence[str],
    calls: Sequence[ForkCall],
    home: Path,
    *,
    block: int | None = None,
    at_timestamp: int | None = None,
) -> dict[str, list[ParamChange]]:
    """:func:`fork_changes` for several Pools with one fork: ``{pool: changes}``."""
    from devnet.anvil import Anvil

    fork_args = ["--fork-url", rpc_url, *(["--fork-block-number", str(block)] if block is not None else [])]
    wanted = [normalise_address(p) for p in pools]
    with Anvil(home, chain_id=chain_id, extra_args=fork_args) as node:
        before = {pool: reserve_configuration(node, pool) for pool in wanted}
        if at_timestamp is not None:
            latest = int(node.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
            if at_timestamp > latest:
                node.rpc("evm_setNextBlockTimestamp", [hex(at_timestamp)])
        rpc = _Node(node)
        for call in calls:
            rpc.send(call)
        return {pool: config_diff(before[pool], reserve_configuration(node, pool)) for pool in wanted}


def governor_timelock(rpc_url: str, governor: str) -> str:
    """The timelock that runs a Governor's (OpenZeppelin or Bravo) calls: ``timelock()``, else the
    governor itself (a Governor without a timelock executes its calls directly)."""
    import httpx

    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_call",
        "params": [{"to": governor, "data": "0x" + _selector("timelock()").hex()}, "latest"],
    }
    answer = httpx.post(rpc_url, json=body, timeout=10).json()
    result = str(answer.get("result") or "")
    if len(result) != 66:
        return normalise_address(governor)
    return normalise_address("0x" + result[-40:])
