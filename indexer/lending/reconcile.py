"""Reconcile account data rebuilt from indexed events with the chain's own ``Pool.getUserAccountData``.

    plan = plan_sample(conn, chain_id, pools, block, timestamp, sample=50, seed=0, version="3.0")
    chain = chain_account_data(client, plan.wallets, block)
    report = compare(plan, chain, tolerance_wei=0)

Our side is :mod:`indexer.lending.positions` at ``block``; the chain side is ``eth_call`` of
``getUserAccountData(address)`` at the same block, sent as JSON-RPC batches. Wallets are sampled
deterministically (by ``seed``) from every user with a position in the pools at that block.

Morpho Blue positions (protocol ``morpho_blue``, pool = market id) are compared on six values too
(`MorphoData`): ``position(id, user)``'s supply shares, borrow shares and collateral, what the borrow shares
owe (``toAssetsUp`` over ``market(id)``'s stored totals), the oracle's ``price()``, and the health factor
``maxBorrow · 1e18 // borrowed``, computed on the chain side from those same chain views: below 1e18
exactly when ``liquidate`` would pass its health check on the stored state.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from eth_utils.crypto import keccak

from indexer.chain import ChainClient, HttpChainClient, RpcResponseError, RpcTransportError
from indexer.config import normalise_address
from indexer.errors import InputError
from indexer.lending.morpho import PROTOCOL as MORPHO
from indexer.lending.morpho import MorphoMarketState, morpho_markets
from indexer.lending.positions import market_state
from indexer.protocols import morpho_blue as mb
from indexer.protocols.aave_math import AccountData, Version
from indexer.types import BlockHeader

# getUserAccountData(address): six uint256 words back.
GET_USER_ACCOUNT_DATA = "0xbf92857c"
FIELDS: tuple[str, ...] = AccountData._fields
AAVE = "aave_v3"
_POSITION = "0x" + keccak(text="position(bytes32,address)")[:4].hex()
_MARKET = "0x" + keccak(text="market(bytes32)")[:4].hex()
_PRICE = "0x" + keccak(text="price()")[:4].hex()
# Calls per JSON-RPC batch: within what common providers accept in one request.
BATCH_SIZE = 100
# Provider answers meaning "no state for that block": pruned nodes, anvil without history.
_NO_STATE = re.compile(
    r"header not found|missing trie node|block ?out ?of ?range|historical state|state .*not available"
    r"|pruned|unknown block|distance to target block",
    re.IGNORECASE,
)

Conn = psycopg.Connection[Any]


class ReconcileError(InputError):
    """The comparison cannot run as asked; the message says what is wrong and how to fix it."""


class MorphoData(NamedTuple):
    """A Morpho Blue position's six compared values (see the module docstring)."""

    supply_shares: int
    borrow_shares: int
    collateral: int
    borrowed: int
    oracle_price: int
    health_factor: int


Values = AccountData | MorphoData


@dataclass(frozen=True, slots=True)
class Wallet:
    pool: str
    user: str
    protocol: str = AAVE


@dataclass(frozen=True, slots=True)
class MorphoTarget:
    """Where a Morpho market's chain values are read: the Morpho contract, the oracle, and the lltv."""

    morpho: str
    oracle: str
    lltv: int


@dataclass(frozen=True, slots=True)
class Plan:
    """The sampled wallets and our values for each, at one block."""

    block: int
    version: Version
    population: int
    wallets: list[Wallet]
    ours: list[Values]
    morpho: dict[str, MorphoTarget] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One wallet's six values, ours and the chain's."""

    wallet: Wallet
    ours: Values
    chain: Values

    @property
    def drift(self) -> Values:
        """Absolute difference of each value."""
        return type(self.ours)(*(abs(a - b) for a, b in zip(self.ours, self.chain, strict=True)))

    @property
    def hf_relative_drift(self) -> float | None:
        """|ours − chain| / chain of the health factor; None when the chain's is 0 and ours is not."""
        ours, chain = self.ours.health_factor, self.chain.health_factor
        if chain == 0:
            return 0.0 if ours == 0 else None
        return abs(ours - chain) / chain

    @property
    def equal(self) -> bool:
        return self.ours == self.chain

    def within(self, tolerance_wei: int) -> bool:
        return max(self.drift) <= tolerance_wei


@dataclass(frozen=True, slots=True)
class Report:
    block: int
    version: Version
    tolerance_wei: int
    population: int
    comparisons: list[Comparison]

    @property
    def equal(self) -> int:
        return sum(1 for c in self.comparisons if c.equal)

    @property
    def within_tolerance(self) -> int:
        return sum(1 for c in self.comparisons if c.within(self.tolerance_wei))

    @property
    def ok(self) -> bool:
        return self.within_tolerance == len(self.comparisons)

    @property
    def max_drift(self) -> AccountData:
        """Largest drift of each Aave value (Aave wallets only)."""
        aave = [c for c in self.comparisons if c.wallet.protocol == AAVE]
        return AccountData(*(max((c.drift[i] for c in aave), default=0) for i in range(6)))

    @property
    def protocols(self) -> list[str]:
        """The protocols of the compared wallets, sorted."""
        return sorted({c.wallet.protocol for c in self.comparisons})

    def max_drift_of(self, protocol: str) -> Values:
        """Largest drift of each value of one protocol's wallets."""
        chosen = [c for c in self.comparisons if c.wallet.protocol == protocol]
        shape: type[Values] = MorphoData if protocol == MORPHO else AccountData
        return shape(*(max((c.drift[i] for c in chosen), default=0) for i in range(6)))

    @property
    def max_hf_relative_drift(self) -> float | None:
        drifts = [c.hf_relative_drift for c in self.comparisons]
        if any(d is None for d in drifts):
            return None  # some HF drifted off a chain value of 0: unbounded
        return max((d for d in drifts if d is not None), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; every uint256 as a decimal string (they exceed what JSON numbers hold)."""
        return {
            "block": self.block,
            "aave_version": self.version,
            "tolerance_wei": str(self.tolerance_wei),
            "population": self.population,
            "wallets": [_comparison_json(c, self.tolerance_wei) for c in self.comparisons],
            "summary": {
                "wallets_compared": len(self.comparisons),
                "wallets_equal": self.equal,
                "wallets_within_tolerance": self.within_tolerance,
                "wallets_drifting": len(self.comparisons) - self.within_tolerance,
                "max_drift": {name: str(v) for name, v in zip(FIELDS, self.max_drift, strict=True)},
                "max_drift_by_protocol": {
                    p: {name: str(v) for name, v in self.max_drift_of(p)._asdict().items()}
                    for p in self.protocols
                },
                "max_health_factor_relative_drift": self.max_hf_relative_drift,
            },
        }


def _comparison_json(c: Comparison, tolerance_wei: int) -> dict[str, Any]:
    values: dict[str, dict[str, Any]] = {
        name: {"ours": str(ours), "chain": str(chain), "drift": str(drift)}
        for name, ours, chain, drift in zip(c.ours._fields, c.ours, c.chain, c.drift, strict=True)
    }
    values["health_factor"]["relative_drift"] = c.hf_relative_drift
    return {
        "protocol": c.wallet.protocol,
        "pool": c.wallet.pool,
        "user": c.wallet.user,
        "equal": c.equal,
        "within_tolerance": c.within(tolerance_wei),
        "values": values,
    }


# --------------------------------------------------------------------------------------- calldata


def encode_call(user: str) -> str:
    """Calldata of ``getUserAccountData(user)``."""
    return GET_USER_ACCOUNT_DATA + "00" * 12 + normalise_address(user)[2:]


def decode_account_data(data: str, wallet: Wallet, block: int) -> AccountData:
    """The six words of a ``getUserAccountData`` return, or a ReconcileError naming the pool."""
    body = data[2:]
    if len(body) != 6 * 64:
        raise ReconcileError(
            f"getUserAccountData at pool {wallet.pool} returned {len(body) // 2} bytes at block {block},"
            " not 192: is it an Aave v3 Pool with code at that block?"
        )
    return AccountData(*(int(body[i * 64 : (i + 1) * 64], 16) for i in range(6)))


# --------------------------------------------------------------------------------------- our side


def sample_wallets(population: Sequence[Wallet], n: int, seed: int) -> list[Wallet]:
    """``n`` wallets (all when fewer), the same for the same population and seed, in population order."""
    if n < 1:
        raise ReconcileError(f"--sample: expected at least 1 wallet, got {n}")
    if n >= len(population):
        return list(population)
    picked = set(random.Random(seed).sample(range(len(population)), n))
    return [w for i, w in enumerate(population) if i in picked]


def plan_sample(
    conn: Conn,
    chain_id: int,
    pools: Sequence[str],
    block: int,
    timestamp: int,
    *,
    sample: int,
    seed: int,
    version: Version,
    decimals: Mapping[str, int] | None = None,
    morpho: bool = False,
) -> Plan:
    """Sample wallets with a position in ``pools`` (and, with ``morpho``, in every indexed Morpho Blue
    market) at ``block`` and rebuild their values."""
    states = {
        pool: market_state(conn, chain_id, pool, block, decimals, timestamp=timestamp) for pool in pools
    }
    markets = {m.id: m for m in morpho_markets(conn, chain_id, block)} if morpho else {}
    population = [Wallet(pool, user) for pool, state in states.items() for user in state.users]
    population += [Wallet(m.id, user, MORPHO) for m in markets.values() for user in m.users]
    if not population:
        where = ", ".join([*pools, *(["Morpho Blue"] if morpho else [])])
        raise ReconcileError(f"no wallet has a position in {where} at block {block}: nothing to reconcile")
    wallets = sample_wallets(population, sample, seed)
    ours = [
        _morpho_values(markets[w.pool], w.user)
        if w.protocol == MORPHO
        else states[w.pool].account_data(w.user, version)
        for w in wallets
    ]
    targets = {i: MorphoTarget(m.morpho, m.params.oracle, m.params.lltv) for i, m in markets.items()}
    return Plan(block, version, len(population), wallets, ours, targets)


def _morpho_values(market: MorphoMarketState, user: str) -> MorphoData:
    position = market.position(user)
    return MorphoData(
        position.supply_shares, position.borrow_shares, position.collateral, market.borrowed(user),
        market.price(), market.health_factor(user),
    )  # fmt: skip


def plan_at(
    conn: Conn,
    client: ChainClient,
    chain_id: int,
    pools: Sequence[str],
    block: int,
    *,
    sample: int,
    seed: int,
    version: Version,
    decimals: Mapping[str, int] | None = None,
    morpho: bool = False,
) -> Plan:
    """Check the node holds ``block`` on the indexed fork, then sample and rebuild our side there."""
    header = check_block(client, block, indexed_block_hash(conn, chain_id, block))
    return plan_sample(
        conn, chain_id, pools, block, header.timestamp, sample=sample, seed=seed, version=version,
        decimals=decimals, morpho=morpho,
    )  # fmt: skip


# --------------------------------------------------------------------------------------- chain side


def check_block(client: ChainClient, block: int, indexed_hash: str | None) -> BlockHeader:
    """The node's header of ``block``, refusing blocks it has not reached or holds on another fork."""
    head = client.head()
    if block > head:
        raise ReconcileError(f"block {block} is above the node's head {head}: the node is behind the index")
    header = client.header(block)
    if indexed_hash is not None and indexed_hash != header.hash:
        raise ReconcileError(
            f"block {block} is {header.hash} on the node but {indexed_hash} in the index:"
            " the node follows another fork (or the chain reorganised); re-index, or pick another --block"
        )
    return header


def chain_account_data(
    client: HttpChainClient,
    wallets: Sequence[Wallet],
    block: int,
    on_batch: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[AccountData]:
    """``getUserAccountData`` of each wallet at ``block``, in batches; ``on_batch(n)`` after each."""
    out: list[AccountData] = []
    for start in range(0, len(wallets), batch_size):
        chunk = wallets[start : start + batch_size]
        try:
            results = client.eth_calls([(w.pool, encode_call(w.user)) for w in chunk], block)
        except (RpcResponseError, RpcTransportError) as exc:
            raise _state_error(exc, block) from None
        out += [decode_account_data(data, w, block) for data, w in zip(results, chunk, strict=True)]
        if on_batch is not None:
            on_batch(len(chunk))
    return out


def chain_values(
    client: HttpChainClient, plan: Plan, on_batch: Callable[[int], None] | None = None
) -> list[Values]:
    """The chain's values of every planned wallet at the plan's block, in the plan's order."""
    aave = [w for w in plan.wallets if w.protocol == AAVE]
    morpho = [w for w in plan.wallets if w.protocol == MORPHO]
    found: dict[Wallet, Values] = {}
    found.update(zip(aave, chain_account_data(client, aave, plan.block, on_batch), strict=True))
    found.update(
        zip(morpho, chain_morpho_data(client, plan.morpho, morpho, plan.block, on_batch), strict=True)
    )
    return [found[w] for w in plan.wallets]


def chain_morpho_data(
    client: HttpChainClient,
    targets: Mapping[str, MorphoTarget],
    wallets: Sequence[Wallet],
    block: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[MorphoData]:
    """Each Morpho wallet's values from ``position``, ``market`` and the oracle's ``price`` at ``block``."""
    totals, prices = _chain_markets(client, targets, sorted({w.pool for w in wallets}), block)
    out: list[MorphoData] = []
    for start in range(0, len(wallets), BATCH_SIZE):
        chunk = wallets[start : start + BATCH_SIZE]
        results = _eth_calls(client, [(targets[w.pool].morpho, _position_call(w)) for w in chunk], block)
        for w, data in zip(chunk, results, strict=True):
            p = mb.Position(*_words(data, 3))
            t, price, lltv = totals[w.pool], prices[w.pool], targets[w.pool].lltv
            health = mb.health_factor(p, t, price, lltv)
            out.append(
                MorphoData(
                    p.supply_shares, p.borrow_shares, p.collateral, t.borrowed(p.borrow_shares), price, health
                )
            )
        if on_batch is not None:
            on_batch(len(chunk))
    return out


def _chain_markets(
    client: HttpChainClient, targets: Mapping[str, MorphoTarget], ids: Sequence[str], block: int
) -> tuple[dict[str, mb.MarketTotals], dict[str, int]]:
    """``market(id)`` and the oracle's ``price()`` of each market at ``block``."""
    calls = [(targets[i].morpho, _MARKET + i[2:]) for i in ids] + [(targets[i].oracle, _PRICE) for i in ids]
    answers = _eth_calls(client, calls, block)
    totals = {i: mb.MarketTotals(*_words(a, 6)) for i, a in zip(ids, answers[: len(ids)], strict=True)}
    prices = {i: _words(a, 1)[0] for i, a in zip(ids, answers[len(ids) :], strict=True)}
    return totals, prices


def _eth_calls(client: HttpChainClient, calls: Sequence[tuple[str, str]], block: int) -> list[str]:
    try:
        return client.eth_calls(calls, block) if calls else []
    except (RpcResponseError, RpcTransportError) as exc:
        raise _state_error(exc, block) from None


def _position_call(wallet: Wallet) -> str:
    return _POSITION + wallet.pool[2:] + "00" * 12 + normalise_address(wallet.user)[2:]


def _words(data: str, n: int) -> list[int]:
    body = data[2:]
    if len(body) != 64 * n:
        raise ReconcileError(f"a Morpho Blue view returned {len(body) // 2} bytes, not {32 * n}")
    return [int(body[i * 64 : (i + 1) * 64], 16) for i in range(n)]


def _state_error(exc: RpcResponseError | RpcTransportError, block: int) -> Exception:
    """Name the usual cause: a node without state that old. Other errors pass through unchanged."""
    hint = (
        f"the node cannot serve state at block {block} ({exc}): a pruned (non-archive) node keeps only"
        " recent state; use an archive node (--rpc-url) or a more recent --block"
    )
    if isinstance(exc, RpcResponseError) and _NO_STATE.search(exc.message):
        return ReconcileError(hint)
    if isinstance(exc, RpcTransportError) and exc.last_kind == "rpc_error":
        # Transient-looking answers ("header not found") are retried first; the warnings above show them.
        return ReconcileError(hint)
    return exc


def compare(plan: Plan, chain: Sequence[Values], tolerance_wei: int) -> Report:
    """Pair our values with the chain's, wallet by wallet."""
    if tolerance_wei < 0:
        raise ReconcileError(f"--tolerance-wei: expected 0 or more, got {tolerance_wei}")
    comparisons = [Comparison(w, o, c) for w, o, c in zip(plan.wallets, plan.ours, chain, strict=True)]
    return Report(plan.block, plan.version, tolerance_wei, plan.population, comparisons)


def indexed_block_hash(conn: Conn, chain_id: int, block: int) -> str | None:
    """The hash the index holds for ``block`` (a stored header or any log of it), None when it has none."""
    row = conn.execute(
        """
        SELECT hash FROM blocks WHERE chain_id = %(c)s AND number = %(b)s
        UNION ALL
        SELECT block_hash FROM logs WHERE chain_id = %(c)s AND block_number = %(b)s
        LIMIT 1
        """,
        {"c": chain_id, "b": block},
    ).fetchone()
    return None if row is None else str(row[0]).lower()
