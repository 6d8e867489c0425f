"""The integer port of the v3-core swap maths against v3-core's own published test vectors.

Swap vectors: test/__snapshots__/UniswapV3Pool.swaps.spec.ts.snap in Uniswap/v3-core (pool setups as its
swaps spec builds them: 1:1 price, 2e18 liquidity per position; amounts are the pool's deltas).
"""

from __future__ import annotations

import pytest

from graph.univ3 import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    Q96,
    UniswapMathError,
    compute_swap_step,
    mul_div,
    mul_div_rounding_up,
    sqrt_ratio_at_tick,
    tick_at_sqrt_ratio,
)
from graph.univ3_pool import Pool, max_liquidity_per_tick

E18 = 10**18
STABLE_IN, STABLE_OUT = 1_000_700_370_186_095, 999_700_069_986_002  # all of the [-10, 10) position
SPACING = {500: 10, 3_000: 60, 10_000: 200}


def test_sqrt_ratio_at_the_extreme_and_known_ticks() -> None:
    assert sqrt_ratio_at_tick(MIN_TICK) == MIN_SQRT_RATIO
    assert sqrt_ratio_at_tick(MAX_TICK) == MAX_SQRT_RATIO
    assert sqrt_ratio_at_tick(0) == Q96
    assert sqrt_ratio_at_tick(MIN_TICK + 1) == 4_295_343_490
    assert (
        sqrt_ratio_at_tick(MAX_TICK - 1) == 1_461_373_636_630_004_318_706_518_188_784_493_106_690_254_656_249
    )
    with pytest.raises(UniswapMathError):
        sqrt_ratio_at_tick(MAX_TICK + 1)
    with pytest.raises(UniswapMathError):
        sqrt_ratio_at_tick(MIN_TICK - 1)


def test_sqrt_ratio_follows_one_basis_point_per_tick() -> None:
    # Within 1e-12 of sqrt(1.0001)^tick: exact rational arithmetic, no floats.
    for tick in (-60_000, -1_000, -50, 50, 1_000, 20_000, 60_000):
        got = sqrt_ratio_at_tick(tick)
        # got^2 / 2^192 against 1.0001^tick, compared as integers scaled by 10^12.
        lhs, rhs = got * got * 10_000 ** max(tick, 0), 2**192 * 10_001 ** max(tick, 0)
        if tick < 0:
            lhs, rhs = got * got * 10_001**-tick, 2**192 * 10_000**-tick
        assert abs(lhs - rhs) * 10**12 < rhs


def test_tick_at_sqrt_ratio_is_the_greatest_tick_at_or_below() -> None:
    assert tick_at_sqrt_ratio(MIN_SQRT_RATIO) == MIN_TICK
    assert tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1) == MAX_TICK - 1
    assert tick_at_sqrt_ratio(Q96) == 0
    for tick in (-887_000, -23_028, -1, 1, 9_163, 400_000):
        ratio = sqrt_ratio_at_tick(tick)
        assert tick_at_sqrt_ratio(ratio) == tick
        assert tick_at_sqrt_ratio(ratio - 1) == tick - 1
    with pytest.raises(UniswapMathError):
        tick_at_sqrt_ratio(MAX_SQRT_RATIO)
    with pytest.raises(UniswapMathError):
        tick_at_sqrt_ratio(MIN_SQRT_RATIO - 1)


def test_full_math_rounds_and_overflows_like_the_contract() -> None:
    assert mul_div(Q96, Q96 // 2, Q96) == Q96 // 2
    assert mul_div_rounding_up(1, 1, 3) == 1 and mul_div(1, 1, 3) == 0
    assert mul_div(2**255, 2**255, 2**255) == 2**255  # a 512-bit intermediate is fine
    with pytest.raises(UniswapMathError):
        mul_div(2**256 - 1, 2, 1)
    with pytest.raises(UniswapMathError):
        mul_div_rounding_up(2**256 - 1, 2**256 - 1, 2**256 - 2)


def test_compute_swap_step_vectors() -> None:
    # SwapMath.spec.ts: exact in capped at the price target; exact in that does not reach it.
    price, target = Q96, 101 * Q96 // 100  # v3-core encodes 101:100 with a sqrt; this target is exact
    step = compute_swap_step(price, target, 2 * E18, E18, 600)
    assert step.sqrt_price == target
    assert step.amount_in + step.fee_amount < E18
    partial = compute_swap_step(price, 10 * Q96, 2 * E18, E18, 600)
    assert partial.sqrt_price < 10 * Q96
    assert partial.amount_in + partial.fee_amount == E18  # the rest of the input is fee
    # Entire input taken as fee when the price cannot move (v3-core: "entire input amount taken as fee").
    tiny = compute_swap_step(
        2413, 79_887_613_182_836_312, 1_985_041_575_832_132_834_610_021_537_970, 10, 1_872
    )
    assert tiny == (2413, 0, 0, 10)


def _pool(fee: int, positions: list[tuple[int, int]]) -> Pool:
    pool = Pool(fee=fee, tick_spacing=SPACING[fee], sqrt_price=Q96, tick=0)
    for lower, upper in positions:
        pool.update_position(lower, upper, 2 * E18)
    return pool


def _full(fee: int) -> tuple[int, int]:
    spacing = SPACING[fee]
    return -(-MIN_TICK // spacing) * spacing, MAX_TICK // spacing * spacing


def _setups() -> dict[str, Pool]:
    m = SPACING[3_000]
    low, high = _full(3_000)
    return {
        "low fee, 2e18 full range": _pool(500, [_full(500)]),
        "medium fee, 2e18 full range": _pool(3_000, [_full(3_000)]),
        "high fee, 2e18 full range": _pool(10_000, [_full(10_000)]),
        "medium fee, additional liquidity around price": _pool(3_000, [(low, high), (low, -m), (m, high)]),
        "medium fee, no liquidity at the price": _pool(3_000, [(low, -m), (m, high)]),
        "low fee, large liquidity around price": _pool(500, [(-10, 10)]),
    }


# (setup, zero_for_one, amount specified (> 0 in, < 0 out), amount0, amount1, tick after)
VECTORS = [
    ("low fee, 2e18 full range", True, E18, E18, -666_444_407_401_233_536, -8107),
    ("low fee, 2e18 full range", False, E18, -666_444_407_401_233_536, E18, 8106),
    ("low fee, 2e18 full range", True, 1000, 1000, -998, -1),
    ("low fee, 2e18 full range", True, -E18, 2_001_000_500_250_125_077, -E18, -13864),
    ("low fee, 2e18 full range", False, -E18, -E18, 2_001_000_500_250_125_079, 13863),
    ("medium fee, 2e18 full range", True, E18, E18, -665_331_998_665_331_998, -8090),
    ("medium fee, 2e18 full range", False, E18, -665_331_998_665_331_998, E18, 8089),
    ("medium fee, 2e18 full range", True, -1000, 1005, -1000, -1),
    ("medium fee, 2e18 full range", True, -E18, 2_006_018_054_162_487_463, -E18, -13864),
    ("high fee, 2e18 full range", True, E18, E18, -662_207_357_859_531_772, -8043),
    ("high fee, 2e18 full range", False, E18, -662_207_357_859_531_772, E18, 8042),
    ("high fee, 2e18 full range", True, 1000, 1000, -989, -1),
    ("high fee, 2e18 full range", True, -E18, 2_020_202_020_202_020_203, -E18, -13864),
    ("medium fee, additional liquidity around price", True, E18, E18, -795_933_705_287_758_544, -4476),
    ("medium fee, additional liquidity around price", False, E18, -795_933_705_287_758_544, E18, 4475),
    ("medium fee, additional liquidity around price", True, -E18, 1_342_022_152_495_072_924, -E18, -5794),
    ("medium fee, additional liquidity around price", False, -E18, -E18, 1_342_022_152_495_072_924, 5793),
    ("medium fee, no liquidity at the price", True, E18, E18, -662_011_820_624_678_025, -8130),
    ("medium fee, no liquidity at the price", False, E18, -662_011_820_624_678_025, E18, 8129),
    ("medium fee, no liquidity at the price", True, 1000, 1000, -991, -61),
    ("medium fee, no liquidity at the price", False, 1000, -991, 1000, 60),
    ("medium fee, no liquidity at the price", True, -E18, 2_024_171_064_311_638_316, -E18, -13984),
    ("low fee, large liquidity around price", True, E18, STABLE_IN, -STABLE_OUT, MIN_TICK),
    ("low fee, large liquidity around price", False, E18, -STABLE_OUT, STABLE_IN, MAX_TICK - 1),
    ("low fee, large liquidity around price", True, 1000, 1000, -998, -1),
]


@pytest.mark.parametrize(("setup", "zero_for_one", "specified", "amount0", "amount1", "tick"), VECTORS)
def test_swaps_equal_the_v3_core_vectors(
    setup: str, zero_for_one: bool, specified: int, amount0: int, amount1: int, tick: int
) -> None:
    outcome = _setups()[setup].quote(zero_for_one, specified)
    assert (outcome.amount0, outcome.amount1, outcome.tick) == (amount0, amount1, tick)


def test_price_limits_are_checked_and_honoured() -> None:
    pool = _setups()["medium fee, 2e18 full range"]
    with pytest.raises(UniswapMathError, match="SPL"):
        pool.quote(True, E18, 2 * Q96)
    with pytest.raises(UniswapMathError, match="SPL"):
        pool.quote(False, E18, Q96 // 2)
    limit = sqrt_ratio_at_tick(-1_000)
    stopped = pool.quote(True, 10 * E18, limit)
    assert stopped.sqrt_price == limit and stopped.tick == -1_000 and 0 < stopped.amount0 < 10 * E18


def test_mint_and_burn_keep_ticks_bitmap_and_liquidity() -> None:
    pool = Pool(fee=3_000, tick_spacing=60, sqrt_price=Q96, tick=0)
    pool.update_position(-120, 60, 5)
    pool.update_position(60, 600, 7)
    assert pool.liquidity == 5
    assert {t: (i.gross, i.net) for t, i in pool.ticks.items()} == {-120: (5, 5), 60: (12, 2), 600: (7, -7)}
    assert pool.next_initialized_tick(0, True) == (0, False)  # tick 0 starts its word: a word boundary
    assert pool.next_initialized_tick(-1, True) == (-120, True)
    assert pool.next_initialized_tick(0, False) == (60, True)
    assert pool.next_initialized_tick(-120, True) == (-120, True)
    assert pool.next_initialized_tick(600, False) == (255 * 60, False)  # end of the word
    pool.update_position(-120, 60, -5)
    assert pool.liquidity == 0 and set(pool.ticks) == {60, 600}
    assert not pool.is_initialized(-120)
    with pytest.raises(UniswapMathError, match="LS"):
        pool.update_position(60, 600, -8)
    with pytest.raises(UniswapMathError, match="range"):
        pool.update_position(61, 600, 1)


def test_per_tick_liquidity_cap_and_atomic_updates() -> None:
    # v3-core Tick.spec.ts: the cap for the fee tiers' spacings, spacing 1, 2302 and the whole range.
    assert max_liquidity_per_tick(10) == 1_917_569_901_783_203_986_719_870_431_555_990
    assert max_liquidity_per_tick(60) == 11_505_743_598_341_114_571_880_798_222_544_994
    assert max_liquidity_per_tick(200) == 38_350_317_471_085_141_830_651_933_667_504_588
    assert max_liquidity_per_tick(1) == 191_757_530_477_355_301_479_181_766_273_477
    assert max_liquidity_per_tick(2302) == 441_351_967_472_034_323_558_203_122_479_595_605
    assert max_liquidity_per_tick(MAX_TICK) == (2**128 - 1) // 3
    pool = Pool(fee=3_000, tick_spacing=60, sqrt_price=Q96, tick=0)
    pool.update_position(-60, 60, max_liquidity_per_tick(60))
    with pytest.raises(UniswapMathError, match="LO"):
        pool.update_position(60, 120, 1)  # tick 60 is full; tick 120 must stay untouched
    assert set(pool.ticks) == {-60, 60} and pool.liquidity == max_liquidity_per_tick(60)
