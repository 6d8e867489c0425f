"""A Uniswap v3 pool's swap state and its swap loop, stepping as UniswapV3Pool.swap steps.

    pool = Pool(fee=3_000, tick_spacing=60, sqrt_price=price, tick=tick_at_sqrt_ratio(price))
    pool.update_position(-600, 600, 10**18)          # a Mint (negative: a Burn)
    outcome = pool.quote(True, 10**18)               # exact in, token0 for token1, no price limit
    pool.apply(outcome)

The next tick comes from the tick bitmap one 256-tick word at a time, as in TickBitmap: a step may end on an
uninitialised word boundary, and since every step rounds, stepping otherwise would change the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from graph.univ3 import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    UINT128,
    UINT256,
    UniswapMathError,
    compute_swap_step,
    sqrt_ratio_at_tick,
    tick_at_sqrt_ratio,
)


class SwapOutcome(NamedTuple):
    """A swap's pool deltas (positive: paid in) and the state it leaves, with the Quoter's tick count."""

    amount0: int
    amount1: int
    sqrt_price: int
    tick: int
    liquidity: int
    ticks_crossed: int


@dataclass
class TickInfo:
    """Liquidity referencing a tick (gross: initialised while non-zero) and added when crossed upwards."""

    gross: int = 0
    net: int = 0


@dataclass
class Pool:
    """The state a swap reads: price, tick, in-range liquidity, initialised ticks and their bitmap."""

    fee: int
    tick_spacing: int
    sqrt_price: int
    tick: int
    liquidity: int = 0
    ticks: dict[int, TickInfo] = field(default_factory=dict)
    bitmap: dict[int, int] = field(default_factory=dict)

    def update_position(self, lower: int, upper: int, delta: int) -> None:
        """A Mint (``delta`` > 0) or Burn (< 0) of liquidity on [lower, upper): ticks, bitmap, liquidity."""
        if (
            not (MIN_TICK <= lower < upper <= MAX_TICK)
            or lower % self.tick_spacing
            or upper % self.tick_spacing
        ):
            raise UniswapMathError(f"bad position range [{lower}, {upper})")
        if delta == 0:
            return  # a poke: fees only
        # Every check first, as the contract reverts the whole call: a failed update changes nothing.
        for tick in (lower, upper):
            gross = add_delta(self.ticks.get(tick, TickInfo()).gross, delta)
            if gross > max_liquidity_per_tick(self.tick_spacing):
                raise UniswapMathError(f"liquidity on tick {tick} over the per-tick maximum (LO)")
        active = lower <= self.tick < upper
        liquidity = add_delta(self.liquidity, delta) if active else self.liquidity
        self._update_tick(lower, delta, upper=False)
        self._update_tick(upper, delta, upper=True)
        self.liquidity = liquidity

    def _update_tick(self, tick: int, delta: int, upper: bool) -> None:
        info = self.ticks.setdefault(tick, TickInfo())
        before = info.gross
        info.gross += delta
        info.net += -delta if upper else delta
        if (before == 0) != (info.gross == 0):
            self._flip(tick)
        if info.gross == 0:
            del self.ticks[tick]  # Tick.clear

    def _flip(self, tick: int) -> None:
        word, bit = divmod(tick // self.tick_spacing, 256)
        self.bitmap[word] = self.bitmap.get(word, 0) ^ (1 << bit)
        if not self.bitmap[word]:
            del self.bitmap[word]

    def next_initialized_tick(self, tick: int, lte: bool) -> tuple[int, bool]:
        """TickBitmap.nextInitializedTickWithinOneWord: the next initialised tick at or left of ``tick``
        (``lte``) or right of it, looking in one bitmap word only; else that word's last tick."""
        compressed = tick // self.tick_spacing  # floors, as the contract's rounding towards -infinity
        if lte:
            word, bit = divmod(compressed, 256)
            masked = self.bitmap.get(word, 0) & ((1 << (bit + 1)) - 1)
            if masked:
                return (compressed - (bit - (masked.bit_length() - 1))) * self.tick_spacing, True
            return (compressed - bit) * self.tick_spacing, False
        word, bit = divmod(compressed + 1, 256)
        masked = self.bitmap.get(word, 0) & ~((1 << bit) - 1) & UINT256
        if masked:
            lowest = (masked & -masked).bit_length() - 1
            return (compressed + 1 + (lowest - bit)) * self.tick_spacing, True
        return (compressed + 1 + (255 - bit)) * self.tick_spacing, False

    def is_initialized(self, tick: int) -> bool:
        word, bit = divmod(tick // self.tick_spacing, 256)
        return bool(self.bitmap.get(word, 0) >> bit & 1)

    def quote(self, zero_for_one: bool, amount_specified: int, sqrt_price_limit: int = 0) -> SwapOutcome:
        """UniswapV3Pool.swap without moving the pool: ``amount_specified`` > 0 exact in, < 0 exact out.

        A zero limit means none, as the Quoter and router take it (one past the extreme price).
        """
        if amount_specified == 0:
            raise UniswapMathError("swap amount must not be zero")
        limit = sqrt_price_limit or (MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1)
        if zero_for_one and not MIN_SQRT_RATIO < limit < self.sqrt_price:
            raise UniswapMathError("price limit must lie below the price (SPL)")
        if not zero_for_one and not self.sqrt_price < limit < MAX_SQRT_RATIO:
            raise UniswapMathError("price limit must lie above the price (SPL)")
        return self._swap_loop(zero_for_one, amount_specified, limit)

    def _swap_loop(self, zero_for_one: bool, specified: int, limit: int) -> SwapOutcome:
        exact_in, remaining = specified > 0, specified
        sqrt_price, tick, liquidity, calculated = self.sqrt_price, self.tick, self.liquidity, 0
        while remaining != 0 and sqrt_price != limit:
            start = sqrt_price
            tick_next, initialized = self.next_initialized_tick(tick, zero_for_one)
            tick_next = min(max(tick_next, MIN_TICK), MAX_TICK)
            sqrt_next = sqrt_ratio_at_tick(tick_next)
            beyond = sqrt_next < limit if zero_for_one else sqrt_next > limit
            step = compute_swap_step(
                sqrt_price, limit if beyond else sqrt_next, liquidity, remaining, self.fee
            )
            sqrt_price = step.sqrt_price
            if exact_in:
                remaining -= step.amount_in + step.fee_amount
                calculated -= step.amount_out
            else:
                remaining += step.amount_out
                calculated += step.amount_in + step.fee_amount
            if sqrt_price == sqrt_next:
                if initialized:
                    net = self.ticks[tick_next].net
                    liquidity = add_delta(liquidity, -net if zero_for_one else net)
                tick = tick_next - 1 if zero_for_one else tick_next
            elif sqrt_price != start:
                tick = tick_at_sqrt_ratio(sqrt_price)
        used = specified - remaining
        amount0, amount1 = (used, calculated) if zero_for_one == exact_in else (calculated, used)
        crossed = self.count_initialized_ticks_crossed(self.tick, tick)
        return SwapOutcome(amount0, amount1, sqrt_price, tick, liquidity, crossed)

    def apply(self, outcome: SwapOutcome) -> None:
        """Move the pool to the state a swap left."""
        self.sqrt_price, self.tick, self.liquidity = outcome.sqrt_price, outcome.tick, outcome.liquidity

    def count_initialized_ticks_crossed(self, before: int, after: int) -> int:
        """PoolTicksCounter.countInitializedTicksCrossed, which QuoterV2 reports as initializedTicksCrossed:
        initialised ticks between the two, the start not counted going up, the end not going down."""
        spacing = self.tick_spacing
        word, bit = _position(before, spacing)
        word_after, bit_after = _position(after, spacing)
        after_initialized = (
            self.bitmap.get(word_after, 0) >> bit_after & 1 and _rem(after, spacing) == 0 and before > after
        )
        before_initialized = (
            self.bitmap.get(word, 0) >> bit & 1 and _rem(before, spacing) == 0 and before < after
        )
        low, high = sorted(((word, bit), (word_after, bit_after)))
        count = 0
        mask = (UINT256 << low[1]) & UINT256
        for position in range(low[0], high[0] + 1):
            if position == high[0]:
                mask &= UINT256 >> (255 - high[1])
            count += (self.bitmap.get(position, 0) & mask).bit_count()
            mask = UINT256
        return count - bool(after_initialized) - bool(before_initialized)


def _rem(a: int, b: int) -> int:
    """Solidity's signed remainder: the sign of the dividend."""
    return a - b * _quot(a, b)


def _quot(a: int, b: int) -> int:
    """Solidity's signed division: truncates towards zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _position(tick: int, spacing: int) -> tuple[int, int]:
    """PoolTicksCounter's word and bit of a tick: a truncating division (not the pool's flooring one)
    shifted arithmetically, the bit as uint8 of the signed remainder."""
    compressed = _quot(tick, spacing)
    return compressed >> 8, _rem(compressed, 256) & 0xFF


def max_liquidity_per_tick(spacing: int) -> int:
    """Tick.tickSpacingToMaxLiquidityPerTick: uint128 max over the usable ticks (truncating divisions)."""
    lowest, highest = -_quot(-MIN_TICK, spacing) * spacing, _quot(MAX_TICK, spacing) * spacing
    return UINT128 // ((highest - lowest) // spacing + 1)


def add_delta(liquidity: int, delta: int) -> int:
    """LiquidityMath.addDelta: reverts below zero (LS) or past uint128 (LA)."""
    result = liquidity + delta
    if result < 0:
        raise UniswapMathError("liquidity would go below zero (LS)")
    if result > UINT128:
        raise UniswapMathError("liquidity would overflow uint128 (LA)")
    return result
