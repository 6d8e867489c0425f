"""Rebuilding a pool from its events: Swap checkpoints hold for exact-in, limited and exact-out swaps, and
a reported state the events cannot explain is flagged."""

from __future__ import annotations

import pytest

from graph.univ3 import Q96, sqrt_ratio_at_tick
from graph.univ3_pool import Pool
from graph.univ3_state import PoolEvent, PoolStateError, rebuild, rebuild_at

E18 = 10**18
POSITIONS = [(-887_220, 887_220, 2 * E18), (-600, 600, 5 * E18), (-3_000, -1_200, 3 * E18)]


def _history(swaps: list[tuple[bool, int, int]]) -> list[PoolEvent]:
    """Initialize, the positions' Mints, then each swap (direction, amount, limit) with what the pool
    reports after it, computed on a reference pool."""
    reference = Pool(3_000, 60, Q96, 0)
    events = [PoolEvent("initialize", 1, 0, (Q96, 0))]
    for i, (lower, upper, amount) in enumerate(POSITIONS):
        reference.update_position(lower, upper, amount)
        events.append(PoolEvent("mint", 2, i, (lower, upper, amount)))
    for i, (zero_for_one, amount, limit) in enumerate(swaps):
        out = reference.quote(zero_for_one, amount, limit)
        reference.apply(out)
        reported = (out.amount0, out.amount1, out.sqrt_price, out.tick, out.liquidity)
        events.append(PoolEvent("swap", 3 + i, 0, reported))
    return events


SWAPS = [
    (True, 3 * E18, 0),  # exact in, crosses -600 and into the [-3000, -1200) range
    (False, 2 * E18, sqrt_ratio_at_tick(-700)),  # exact in, stopped by its price limit
    (True, -E18, 0),  # exact out
    (False, -4 * E18, sqrt_ratio_at_tick(900)),  # exact out with a limit
    (False, 1, 0),  # one wei: all fee, the price barely moves
]


def test_every_kind_of_swap_is_a_checkpoint_met() -> None:
    rebuilt = rebuild("0xpool", 10, 3_000, 60, _history(SWAPS))
    assert rebuilt.swaps == len(SWAPS) and rebuilt.mismatches == []
    assert set(rebuilt.pool.ticks) == {-887_220, 887_220, -600, 600, -3_000, -1_200}


def test_a_state_the_events_cannot_explain_is_flagged() -> None:
    events = _history(SWAPS[:2])
    amount0, amount1, sqrt_price, tick, liquidity = events[-1].values
    events[-1] = events[-1]._replace(values=(amount0, amount1, sqrt_price, tick, liquidity + 1))
    rebuilt = rebuild("0xpool", 10, 3_000, 60, events)
    assert [(m.block_number, m.reported[4] - (m.replayed or (0,) * 5)[4]) for m in rebuilt.mismatches] == [
        (4, 1)
    ]
    assert rebuilt.pool.liquidity == liquidity + 1  # the state goes on from what the pool reported


def test_burn_and_missing_initialize() -> None:
    events = [*_history([]), PoolEvent("burn", 9, 0, (-600, 600, 5 * E18))]
    rebuilt = rebuild("0xpool", 10, 3_000, 60, events)
    assert rebuilt.pool.liquidity == 2 * E18 and -600 not in rebuilt.pool.ticks
    with pytest.raises(PoolStateError, match="before its Initialize"):
        rebuild("0xpool", 10, 3_000, 60, events[1:])
    with pytest.raises(PoolStateError, match="no Initialize"):
        rebuild("0xpool", 10, 3_000, 60, [])


def test_states_at_many_blocks_in_one_pass() -> None:
    events = _history(SWAPS)  # Initialize at block 1, Mints at 2, swaps at 3..7
    states = rebuild_at("0xpool", [7, 2, 4, 100], 3_000, 60, events)
    assert sorted(states) == [2, 4, 7, 100]
    for block, state in states.items():
        alone = rebuild("0xpool", block, 3_000, 60, [e for e in events if e.block_number <= block])
        assert (state.block, state.swaps, state.pool) == (block, alone.swaps, alone.pool)
    assert states[2].swaps == 0 and states[4].swaps == 2 and states[100].swaps == len(SWAPS)
    with pytest.raises(PoolStateError, match="no Initialize"):
        rebuild_at("0xpool", [0, 5], 3_000, 60, events)
