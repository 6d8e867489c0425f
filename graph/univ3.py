"""Uniswap v3 swap maths, integer for integer as v3-core 1.0.1 computes it.

    sqrt_ratio_at_tick(-887_272)                    # 4295128739, TickMath.MIN_SQRT_RATIO
    compute_swap_step(price, target, liquidity, remaining, 3_000)

Ports of FullMath, TickMath, SqrtPriceMath and SwapMath on Python ints. Every overflow check and rounding
direction of the Solidity is kept, because off-chain quotes must equal the pool's to the wei: where the
contract would revert, :class:`UniswapMathError` is raised. The pool's swap loop is in
:mod:`graph.univ3_pool`.
"""

from __future__ import annotations

from typing import NamedTuple

from graph.errors import GraphError

MIN_TICK, MAX_TICK = -887_272, 887_272
MIN_SQRT_RATIO = 4_295_128_739
MAX_SQRT_RATIO = 1_461_446_703_485_210_103_287_273_052_203_988_822_378_723_970_342
Q96 = 1 << 96
UINT128 = (1 << 128) - 1
UINT160 = (1 << 160) - 1
UINT256 = (1 << 256) - 1
PIPS = 1_000_000  # fees are in hundredths of a basis point

# getSqrtRatioAtTick: 1/sqrt(1.0001)^(2^i) as Q128.128, applied for each set bit i of |tick|.
_TICK_FACTORS = (
    0xFFF97272373D413259A46990580E213A,
    0xFFF2E50F5F656932EF12357CF3C7FDCC,
    0xFFE5CACA7E10E4E61C3624EAA0941CD0,
    0xFFCB9843D60F6159C9DB58835C926644,
    0xFF973B41FA98C081472E6896DFB254C0,
    0xFF2EA16466C96A3843EC78B326B52861,
    0xFE5DEE046A99A2A811C461F1969C3053,
    0xFCBE86C7900A88AEDCFFC83B479AA3A4,
    0xF987A7253AC413176F2B074CF7815E54,
    0xF3392B0822B70005940C7A398E4B70F3,
    0xE7159475A2C29B7443B29C7FA6E889D9,
    0xD097F3BDFD2022B8845AD8F792AA5825,
    0xA9F746462D870FDF8A65DC1F90E061E5,
    0x70D869A156D2A1B890BB3DF62BAF32F7,
    0x31BE135F97D08FD981231505542FCFA6,
    0x9AA508B5B7A84E1C677DE54F3E99BC9,
    0x5D6AF8DEDB81196699C329225EE604,
    0x2216E584F5FA1EA926041BEDFE98,
    0x48A170391F7DC42444E8FA2,
)
_TICK_BIT0 = 0xFFFCB933BD6FAD37AA2D162D1A594001


class UniswapMathError(GraphError, ArithmeticError):
    """The pool would revert here (overflow, price out of range, bad limit); the message says which check."""


class SwapStep(NamedTuple):
    """One SwapMath.computeSwapStep: the price reached and the step's input, output and fee."""

    sqrt_price: int
    amount_in: int
    amount_out: int
    fee_amount: int


def mul_div(a: int, b: int, denominator: int) -> int:
    """FullMath.mulDiv: floor(a*b/denominator) with a 512-bit product; reverts if the result overflows."""
    if denominator <= 0:
        raise UniswapMathError("mulDiv by zero")
    result = a * b // denominator
    if result > UINT256:
        raise UniswapMathError("mulDiv result overflows uint256")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """FullMath.mulDivRoundingUp: ceil(a*b/denominator); reverts where the rounded result overflows."""
    result = mul_div(a, b, denominator)
    if a * b % denominator:
        if result == UINT256:
            raise UniswapMathError("mulDivRoundingUp result overflows uint256")
        result += 1
    return result


def div_rounding_up(x: int, y: int) -> int:
    """UnsafeMath.divRoundingUp: ceil(x/y); the EVM answers 0 for a division by zero."""
    if y == 0:
        return 0
    return x // y + (1 if x % y else 0)


def sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001^tick) as Q64.96, rounded up."""
    magnitude = abs(tick)
    if magnitude > MAX_TICK:
        raise UniswapMathError(f"tick {tick} outside [{MIN_TICK}, {MAX_TICK}]")
    ratio = _TICK_BIT0 if magnitude & 1 else 1 << 128
    for bit, factor in enumerate(_TICK_FACTORS, start=1):
        if magnitude >> bit & 1:
            ratio = ratio * factor >> 128
    if tick > 0:
        ratio = UINT256 // ratio
    # Q128.128 to Q64.96, rounding up so that the tick of the result is the tick itself.
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def tick_at_sqrt_ratio(sqrt_price: int) -> int:
    """TickMath.getTickAtSqrtRatio: the greatest tick whose sqrt ratio is at most ``sqrt_price``.

    The contract gets there through a fixed-point log2; its result is defined as this tick, which a
    bisection over the exact :func:`sqrt_ratio_at_tick` finds without approximation.
    """
    if not MIN_SQRT_RATIO <= sqrt_price < MAX_SQRT_RATIO:
        raise UniswapMathError(f"sqrt price {sqrt_price} outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)")
    low, high = MIN_TICK, MAX_TICK  # invariant: ratio(low) <= sqrt_price < ratio(high)
    while high - low > 1:
        middle = (low + high) // 2
        if sqrt_ratio_at_tick(middle) <= sqrt_price:
            low = middle
        else:
            high = middle
    return low


def _to_uint160(value: int) -> int:
    if value > UINT160:
        raise UniswapMathError("sqrt price overflows uint160")
    return value


def next_sqrt_price_from_amount0_rounding_up(sqrt_price: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp, overflow branches included."""
    if amount == 0:
        return sqrt_price
    numerator1 = liquidity << 96
    product = amount * sqrt_price
    if add:
        # The contract takes the precise formula only while amount * price and the denominator fit in
        # 256 bits; otherwise the cheaper, differently rounded form below.
        if product <= UINT256 and numerator1 + product <= UINT256:
            return mul_div_rounding_up(numerator1, sqrt_price, numerator1 + product)
        divisor = numerator1 // sqrt_price + amount
        if divisor > UINT256:
            raise UniswapMathError("amount0 overflows the price divisor")
        return div_rounding_up(numerator1, divisor)
    if product > UINT256 or numerator1 <= product:
        raise UniswapMathError("amount0 out exceeds the virtual reserve")
    return _to_uint160(mul_div_rounding_up(numerator1, sqrt_price, numerator1 - product))


def next_sqrt_price_from_amount1_rounding_down(
    sqrt_price: int, liquidity: int, amount: int, add: bool
) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown."""
    if add:
        quotient = (amount << 96) // liquidity if amount <= UINT160 else mul_div(amount, Q96, liquidity)
        if sqrt_price + quotient > UINT256:
            raise UniswapMathError("price overflows uint256")
        return _to_uint160(sqrt_price + quotient)
    if amount <= UINT160:
        quotient = div_rounding_up(amount << 96, liquidity)
    else:
        quotient = mul_div_rounding_up(amount, Q96, liquidity)
    if sqrt_price <= quotient:
        raise UniswapMathError("amount1 out exceeds the virtual reserve")
    return sqrt_price - quotient


def next_sqrt_price_from_input(sqrt_price: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromInput: rounded so the target price is never passed."""
    _require_price_and_liquidity(sqrt_price, liquidity)
    if zero_for_one:
        return next_sqrt_price_from_amount0_rounding_up(sqrt_price, liquidity, amount_in, True)
    return next_sqrt_price_from_amount1_rounding_down(sqrt_price, liquidity, amount_in, True)


def next_sqrt_price_from_output(sqrt_price: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromOutput: rounded so the target price is always reached."""
    _require_price_and_liquidity(sqrt_price, liquidity)
    if zero_for_one:
        return next_sqrt_price_from_amount1_rounding_down(sqrt_price, liquidity, amount_out, False)
    return next_sqrt_price_from_amount0_rounding_up(sqrt_price, liquidity, amount_out, False)


def _require_price_and_liquidity(sqrt_price: int, liquidity: int) -> None:
    if sqrt_price <= 0 or liquidity <= 0:
        raise UniswapMathError("price and liquidity must be positive")


def amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount0Delta: token0 between two prices, L * (1/sqrt_a - 1/sqrt_b)."""
    low, high = min(sqrt_a, sqrt_b), max(sqrt_a, sqrt_b)
    if low <= 0:
        raise UniswapMathError("price must be positive")
    numerator1, numerator2 = liquidity << 96, high - low
    if round_up:
        return div_rounding_up(mul_div_rounding_up(numerator1, numerator2, high), low)
    return mul_div(numerator1, numerator2, high) // low


def amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount1Delta: token1 between two prices, L * (sqrt_b - sqrt_a)."""
    low, high = min(sqrt_a, sqrt_b), max(sqrt_a, sqrt_b)
    if round_up:
        return mul_div_rounding_up(liquidity, high - low, Q96)
    return mul_div(liquidity, high - low, Q96)


def compute_swap_step(
    sqrt_current: int, sqrt_target: int, liquidity: int, amount_remaining: int, fee_pips: int
) -> SwapStep:
    """SwapMath.computeSwapStep: how far ``amount_remaining`` (> 0 exact in, < 0 exact out) moves the price
    towards ``sqrt_target`` within one liquidity range, and what that step takes, gives and charges."""
    zero_for_one = sqrt_current >= sqrt_target
    exact_in = amount_remaining >= 0
    if exact_in:
        sqrt_next, amount_in = _step_exact_in(
            sqrt_current, sqrt_target, liquidity, amount_remaining, fee_pips
        )
        amount_out = 0
    else:
        sqrt_next, amount_out = _step_exact_out(sqrt_current, sqrt_target, liquidity, -amount_remaining)
        amount_in = 0
    reached = sqrt_next == sqrt_target
    # At the target the amount computed for it stands; short of it, both are recomputed at the new price.
    if zero_for_one:
        if not (reached and exact_in):
            amount_in = amount0_delta(sqrt_next, sqrt_current, liquidity, True)
        if not (reached and not exact_in):
            amount_out = amount1_delta(sqrt_next, sqrt_current, liquidity, False)
    else:
        if not (reached and exact_in):
            amount_in = amount1_delta(sqrt_current, sqrt_next, liquidity, True)
        if not (reached and not exact_in):
            amount_out = amount0_delta(sqrt_current, sqrt_next, liquidity, False)
    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining
    if exact_in and not reached:
        fee = amount_remaining - amount_in  # the target was not reached: the rest of the input is fee
    else:
        fee = mul_div_rounding_up(amount_in, fee_pips, PIPS - fee_pips)
    return SwapStep(sqrt_next, amount_in, amount_out, fee)


def _step_exact_in(
    sqrt_current: int, sqrt_target: int, liquidity: int, remaining: int, fee_pips: int
) -> tuple[int, int]:
    zero_for_one = sqrt_current >= sqrt_target
    less_fee = mul_div(remaining, PIPS - fee_pips, PIPS)
    if zero_for_one:
        amount_in = amount0_delta(sqrt_target, sqrt_current, liquidity, True)
    else:
        amount_in = amount1_delta(sqrt_current, sqrt_target, liquidity, True)
    if less_fee >= amount_in:
        return sqrt_target, amount_in
    return next_sqrt_price_from_input(sqrt_current, liquidity, less_fee, zero_for_one), amount_in


def _step_exact_out(sqrt_current: int, sqrt_target: int, liquidity: int, wanted: int) -> tuple[int, int]:
    zero_for_one = sqrt_current >= sqrt_target
    if zero_for_one:
        amount_out = amount1_delta(sqrt_target, sqrt_current, liquidity, False)
    else:
        amount_out = amount0_delta(sqrt_current, sqrt_target, liquidity, False)
    if wanted >= amount_out:
        return sqrt_target, amount_out
    return next_sqrt_price_from_output(sqrt_current, liquidity, wanted, zero_for_one), amount_out
