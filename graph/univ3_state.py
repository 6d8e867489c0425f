"""A Uniswap v3 pool's swap state at any block, rebuilt from its indexed events alone.

    rebuilt = pool_state_at(conn, chain_id=1, pool=address, block=18_000_000)
    history = pool_states_at(conn, 1, address, [17_000_000, 18_000_000])  # one pass for many blocks
    rebuilt.pool.quote(True, 10**18)                  # what selling 1 token0 gave at that block
    assert rebuilt.mismatches == []                   # every Swap checkpoint agreed

The factory's PoolCreated gives the fee and tick spacing; Initialize the first price; Mint and Burn the
liquidity per tick and, when their range holds the current tick, the active liquidity. A Swap event
reports the price, tick and liquidity it left, so each one is a checkpoint: the swap is replayed with the
exact swap maths from what the event says went in (or, for an exact-output swap, came out), its price at
most as a limit (a swap with a price limit stops there), and the replay must give the event's other amount,
price, tick and liquidity. The replay is what checks the rebuilt ticks: the liquidity met along the way
decides the amounts. The state then continues from the event's own values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from typing import NamedTuple

import psycopg

from graph.errors import GraphError
from graph.univ3 import UniswapMathError
from graph.univ3_pool import Pool, SwapOutcome
from indexer.read import pool_created, pool_events


class PoolStateError(GraphError, LookupError):
    """No PoolCreated or Initialize indexed for the pool up to the block asked for."""


class PoolEvent(NamedTuple):
    """One state-changing event in chain order; ``values`` in its declaration order (ints)."""

    kind: str  # initialize, mint, burn or swap
    block_number: int
    log_index: int
    values: tuple[int, ...]


class Mismatch(NamedTuple):
    """A Swap whose replay disagreed with what the event reported."""

    block_number: int
    log_index: int
    reported: tuple[int, int, int, int, int]  # amount0, amount1, sqrtPriceX96, tick, liquidity
    replayed: tuple[int, int, int, int, int] | None  # None: every replay reverted


@dataclass
class RebuiltPool:
    """A pool's state after its events up to ``block``, and how the Swap checkpoints went."""

    address: str
    block: int
    pool: Pool
    swaps: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)


def pool_state_at(
    conn: psycopg.Connection[tuple[object, ...]], chain_id: int, pool: str, block: int
) -> RebuiltPool:
    """The pool's state after every event of ``block`` and before, from the indexed events."""
    return pool_states_at(conn, chain_id, pool, [block])[block]


def pool_states_at(
    conn: psycopg.Connection[tuple[object, ...]], chain_id: int, pool: str, blocks: Sequence[int]
) -> dict[int, RebuiltPool]:
    """The pool's state at each of ``blocks``, from one pass over its events."""
    address, last = pool.lower(), max(blocks)
    created = pool_created(conn, chain_id, address, last)
    if created is None:
        raise PoolStateError(f"no PoolCreated for pool {address} indexed on chain {chain_id} up to {last}")
    fee, spacing = created
    events = (PoolEvent(*row) for row in pool_events(conn, chain_id, address, last))
    return rebuild_at(address, blocks, fee, spacing, events)


def rebuild(address: str, block: int, fee: int, spacing: int, events: Iterable[PoolEvent]) -> RebuiltPool:
    """Apply a pool's events in chain order (those after ``block`` ignored); the first is its Initialize."""
    return rebuild_at(address, [block], fee, spacing, events)[block]


def rebuild_at(
    address: str, blocks: Sequence[int], fee: int, spacing: int, events: Iterable[PoolEvent]
) -> dict[int, RebuiltPool]:
    """The state at each of ``blocks`` (after all of that block's events), replaying ``events`` once."""
    wanted = sorted(set(blocks))
    states: dict[int, RebuiltPool] = {}
    rebuilt: RebuiltPool | None = None
    for event in events:
        while wanted and event.block_number > wanted[0]:
            block = wanted.pop(0)
            states[block] = _snapshot(rebuilt, address, block)
        if not wanted:
            break
        rebuilt = _apply(rebuilt, event, address, fee, spacing)
    for block in wanted:
        states[block] = _snapshot(rebuilt, address, block)
    return states


def _snapshot(rebuilt: RebuiltPool | None, address: str, block: int) -> RebuiltPool:
    if rebuilt is None:
        raise PoolStateError(f"pool {address} has no Initialize indexed up to block {block}")
    copy = deepcopy(rebuilt)
    copy.block = block
    return copy


def _apply(
    rebuilt: RebuiltPool | None, event: PoolEvent, address: str, fee: int, spacing: int
) -> RebuiltPool:
    if event.kind == "initialize":
        sqrt_price, tick = event.values
        return RebuiltPool(address, event.block_number, Pool(fee, spacing, sqrt_price, tick))
    if rebuilt is None:
        raise PoolStateError(f"pool {address} has a {event.kind} before its Initialize")
    if event.kind in ("mint", "burn"):
        lower, upper, amount = event.values
        rebuilt.pool.update_position(lower, upper, amount if event.kind == "mint" else -amount)
    else:
        _checkpoint(rebuilt, event)
    return rebuilt


def _checkpoint(rebuilt: RebuiltPool, event: PoolEvent) -> None:
    amount0, amount1, sqrt_price, tick, liquidity = event.values
    reported = (amount0, amount1, sqrt_price, tick, liquidity)
    replay = replay_swap(rebuilt.pool, amount0, amount1, sqrt_price)
    found = None if replay is None else _summary(replay.outcome)
    if replay is None or found is None or not _agrees(found, reported, replay.other_side):
        rebuilt.mismatches.append(Mismatch(event.block_number, event.log_index, reported, found))
    rebuilt.swaps += 1
    pool = rebuilt.pool
    pool.sqrt_price, pool.tick, pool.liquidity = sqrt_price, tick, liquidity


def _summary(outcome: SwapOutcome) -> tuple[int, int, int, int, int]:
    return outcome.amount0, outcome.amount1, outcome.sqrt_price, outcome.tick, outcome.liquidity


def _agrees(found: tuple[int, ...], reported: tuple[int, ...], other_side: int) -> bool:
    """The replay left the reported price, tick and liquidity, and computed the side it was not given
    (0: amount0, 1: amount1) as reported."""
    return found[2:] == reported[2:] and found[other_side] == reported[other_side]


class Replay(NamedTuple):
    """A replayed swap and which amount it computed (0: amount0, 1: amount1) rather than was given."""

    outcome: SwapOutcome
    other_side: int


def replay_swap(pool: Pool, amount0: int, amount1: int, sqrt_after: int) -> Replay | None:
    """The swap a Swap event reports, replayed on ``pool`` (left unchanged); None if every replay reverts.

    Tried in turn: the input as exact input, the output as exact output, then both again with the reported
    price as the limit, which a swap with a price limit stopped at. The first replay that lands on the
    reported price is returned. (Exact input stopped by its limit charges the remaining input as fee, a
    replay reaching the same price charges a rounded-up fee instead: the input given is not compared, the
    output is.)
    """
    zero_for_one = amount0 > 0
    paid, got = (amount0, amount1) if zero_for_one else (amount1, amount0)
    side_in, side_out = (0, 1) if zero_for_one else (1, 0)
    moved = sqrt_after < pool.sqrt_price if zero_for_one else sqrt_after > pool.sqrt_price
    last: Replay | None = None
    for limit in (0, sqrt_after) if moved else (0,):
        for specified, other in ((paid, side_out), (got, side_in)):
            if specified == 0:
                continue
            try:
                last = Replay(pool.quote(zero_for_one, specified, limit), other)
            except UniswapMathError:
                continue
            if last.outcome.sqrt_price == sqrt_after:
                return last
    return last
