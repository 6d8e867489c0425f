"""Aave v3 account maths: hand-computed values for both roundings, and properties over random books."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.protocols.aave_math import (
    HALF_RAY,
    PERCENTAGE_FACTOR,
    RAY,
    SECONDS_PER_YEAR,
    UINT256_MAX,
    WAD,
    AccountData,
    EModeCategory,
    UserReserve,
    collateral_base,
    compounded_interest,
    debt_base,
    linear_interest,
    mul_div_ceil,
    normalized_debt,
    normalized_income,
    percent_div,
    percent_div_ceil,
    percent_mul,
    percent_mul_ceil,
    percent_mul_floor,
    ray_div,
    ray_div_ceil,
    ray_div_floor,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
    user_account_data,
    wad_div,
    wad_mul,
)

Y = SECONDS_PER_YEAR
PRICE = 10**8  # one unit of the base currency (USD, 8 decimals)


def reserve(**overrides: object) -> UserReserve:
    fields: dict[str, object] = {
        "asset": "0xweth",
        "decimals": 18,
        "price": 2000 * PRICE,
        "scaled_atoken_balance": 0,
        "scaled_vdebt_balance": 0,
        "liquidity_index": RAY,
        "variable_borrow_index": RAY,
        "liquidity_rate": 0,
        "variable_borrow_rate": 0,
        "last_update_timestamp": 1_700_000_000,
        "now_timestamp": 1_700_000_000,
        "ltv_bps": 8000,
        "liquidation_threshold_bps": 8250,
        "usage_as_collateral_enabled": True,
        "emode_category": 0,
    }
    fields.update(overrides)
    return UserReserve(**fields)  # type: ignore[arg-type]


def weth_usdc() -> list[UserReserve]:
    """10 WETH at $2000 as collateral, 12,000 scaled USDC debt at a 1.1 borrow index (13,200 USDC)."""
    weth = reserve(scaled_atoken_balance=10 * 10**18, emode_category=1)
    usdc = reserve(
        asset="0xusdc",
        decimals=6,
        price=PRICE,
        scaled_vdebt_balance=12_000 * 10**6,
        variable_borrow_index=11 * RAY // 10,
        ltv_bps=7500,
        liquidation_threshold_bps=7800,
        usage_as_collateral_enabled=False,
    )
    return [weth, usdc]


# ------------------------------------------------------------------------------------------ primitives


def test_half_up_against_floor_and_ceil():
    assert ray_mul(3, HALF_RAY) == 2  # 1.5 rounds half up
    assert ray_mul_floor(3, HALF_RAY) == 1
    assert ray_mul_ceil(3, HALF_RAY) == 2
    assert ray_mul(1, HALF_RAY - 1) == 0 and ray_mul_ceil(1, 1) == 1 and ray_mul_ceil(2, RAY) == 2
    assert ray_div(1, 3 * RAY) == 0 and ray_div(2, 3 * RAY) == 1  # 0.333… down, 0.666… up
    assert ray_div_floor(2, 3 * RAY) == 0 and ray_div_ceil(1, 3 * RAY) == 1 and ray_div_ceil(3, 3 * RAY) == 1
    assert wad_mul(3, WAD // 2) == 2 and wad_div(1, 3) == 333_333_333_333_333_333
    assert wad_div(2, 3) == 666_666_666_666_666_667


def test_percentage_math():
    assert percent_mul(12_345, 5000) == 6173  # 6172.5 rounds half up
    assert percent_mul_floor(12_345, 5000) == 6172
    assert percent_mul_ceil(12_345, 5000) == 6173 and percent_mul_ceil(10_000, 5000) == 5000
    assert percent_div(1, 3) == 3333 and percent_div(2, 3) == 6667
    assert percent_div_ceil(1, 3) == 3334
    assert mul_div_ceil(7, 3, 2) == 11 and mul_div_ceil(6, 3, 2) == 9


def test_overflow_and_division_by_zero_revert_like_the_contract():
    with pytest.raises(OverflowError):
        ray_mul(UINT256_MAX, 2)
    with pytest.raises(OverflowError):
        wad_div(UINT256_MAX, 1)
    with pytest.raises(ZeroDivisionError):
        wad_div(1, 0)
    with pytest.raises(ZeroDivisionError):
        ray_div_ceil(1, 0)
    with pytest.raises(ZeroDivisionError):
        percent_div(1, 0)
    assert ray_mul((UINT256_MAX - HALF_RAY) // 7, 7) == ((UINT256_MAX - HALF_RAY) // 7 * 7 + HALF_RAY) // RAY


def test_linear_interest_and_normalized_income():
    # 5% a year for one day: 5e25 · 86400 / 31536000 = 5e25 / 365, rounded down.
    assert linear_interest(5 * 10**25, 86_400) == RAY + 136_986_301_369_863_013_698_630
    # Then rayMul with a 1.02 index: 1.000136986…e27 · 1.02e27 / 1e27 = 1.0201397260…e27, half up.
    assert normalized_income(102 * 10**25, 5 * 10**25, 0, 86_400) == 1_020_139_726_027_397_260_273_972_603
    assert normalized_income(102 * 10**25, 5 * 10**25, 86_400, 86_400) == 102 * 10**25  # same block


def test_compounded_interest_v30_three_terms():
    rate = 10**26  # 10% a year, for one whole year: n = Y
    b2 = ray_mul(rate, rate) // (Y * Y)
    b3 = ray_mul(b2, rate) // Y
    assert (b2, b3) == (10_055_109_076, 31)  # 1e25 / Y² and (b2 rayMul r) / Y, truncated
    expected = RAY + rate + Y * (Y - 1) * b2 // 2 + Y * (Y - 1) * (Y - 2) * b3 // 6
    assert compounded_interest(rate, Y, "3.0") == expected == 1_105_162_042_821_782_412_575_504_000
    assert compounded_interest(rate, 0, "3.0") == RAY
    # n = 1 and n = 2: the third term vanishes (n − 2 is clamped at 0), the second only from n = 2.
    assert compounded_interest(rate, 1, "3.0") == RAY + rate // Y
    assert compounded_interest(rate, 2, "3.0") == RAY + 2 * rate // Y + b2


def test_compounded_interest_v35_newer_form():
    # x = 1e26; x/6 = 16666…6 (26 digits); x rayMul x/6 = 1.666…67e24; x rayMul (5e25 + that) = 5.1666…67e24.
    assert compounded_interest(10**26, Y, "3.5") == 1_105_166_666_666_666_666_666_666_667
    assert compounded_interest(10**26, 2, "3.5") == 1_000_000_006_341_958_416_863_135_496


def test_normalized_debt_uses_the_stored_index_within_its_block():
    assert normalized_debt(11 * RAY // 10, 10**26, 100, 100, "3.0") == 11 * RAY // 10
    growth = compounded_interest(10**26, 50, "3.5")
    assert normalized_debt(11 * RAY // 10, 10**26, 100, 150, "3.5") == ray_mul(growth, 11 * RAY // 10)
    with pytest.raises(ValueError, match=r"^now: expected >= last update 150, got 100$"):
        normalized_debt(RAY, 0, 150, 100)


# --------------------------------------------------------------------------------------- account data


def test_account_data_hand_computed_v30():
    # Collateral 10 · 2000e8 = 20,000e8; debt 12,000e6 rayMul 1.1 = 13,200e6 → 13,200e8;
    # HF = (20,000e8 percentMul 8250) wadDiv 13,200e8 = 16,500 / 13,200 = 1.25; borrows 16,000e8 − 13,200e8.
    data = user_account_data(weth_usdc(), "3.0")
    assert data == AccountData(20_000 * PRICE, 13_200 * PRICE, 2_800 * PRICE, 8250, 8000, 125 * WAD // 100)
    assert user_account_data(weth_usdc(), "3.5") == data  # nothing to round in this one


def test_rounding_differs_between_versions():
    # One wei of a 0-decimal asset at price 1: the aToken balance 1 rayMul 1.5 is 2 half up, 1 floored;
    # the debt 1 rayMul 1.2 is 1 half up, 2 ceiled.
    tiny = reserve(
        decimals=0,
        price=1,
        scaled_atoken_balance=1,
        scaled_vdebt_balance=1,
        liquidity_index=15 * RAY // 10,
        variable_borrow_index=12 * RAY // 10,
        ltv_bps=7000,
        liquidation_threshold_bps=8000,
    )
    # v3.0: HF = (2 percentMul 8000 = 2) wadDiv 1; borrows: 2 percentMul 7000 = 1 (1.4), not above the debt.
    assert user_account_data([tiny], "3.0") == AccountData(2, 1, 0, 8000, 7000, 2 * WAD)
    # v3.5: HF = wadDiv(1 · 8000, 2) / 10000 = 0.4.
    assert user_account_data([tiny], "3.5") == AccountData(1, 2, 0, 8000, 7000, 4 * WAD // 10)


def test_debt_in_base_rounds_up_from_v35():
    usdc = reserve(decimals=6, price=99_990_001, scaled_vdebt_balance=3)  # 3 · 0.99990001 / 1e6 units
    assert debt_base(usdc, usdc.price, "3.0") == 299  # 299.97… rounded down
    assert debt_base(usdc, usdc.price, "3.5") == 300
    assert collateral_base(replace(usdc, scaled_atoken_balance=3), usdc.price, "3.5") == 299


def test_emode_v30_price_source_and_thresholds():
    # In category 1 the WETH collateral takes the category price (2100e8) and LT 9300: 21,000e8 · 0.93 =
    # 19,530e8 against 13,200e8 → 1.4795454545…, half up at the 18th decimal. USDC is not in the category.
    emode = EModeCategory(category_id=1, ltv_bps=9000, liquidation_threshold_bps=9300, price=2100 * PRICE)
    data = user_account_data(weth_usdc(), "3.0", emode)
    assert data.total_collateral_base == 21_000 * PRICE
    assert data.current_liquidation_threshold == 9300 and data.ltv == 9000
    assert data.health_factor == 1_479_545_454_545_454_545
    assert data.available_borrows_base == 18_900 * PRICE - 13_200 * PRICE


def test_emode_v35_thresholds_without_price_source():
    emode = EModeCategory(category_id=1, ltv_bps=9000, liquidation_threshold_bps=9300)
    data = user_account_data(weth_usdc(), "3.5", emode)
    # wadDiv(20,000e8 · 9300, 13,200e8) / 10000 = 18,600 / 13,200 = 1.409090…, floored at the last step.
    assert data.health_factor == 1_409_090_909_090_909_090
    with pytest.raises(ValueError, match=r"^emode.price: eMode price sources do not exist in v3.5"):
        user_account_data(weth_usdc(), "3.5", replace(emode, price=1))


def test_collateral_without_lt_or_flag_and_zero_ltv_collateral():
    weth, usdc = weth_usdc()
    no_lt = replace(weth, liquidation_threshold_bps=0, ltv_bps=0)
    assert user_account_data([no_lt, usdc]).total_collateral_base == 0
    assert user_account_data([replace(weth, usage_as_collateral_enabled=False), usdc]).health_factor == 0
    # LTV 0 keeps the collateral and its LT but out of the average LTV (and so of borrowing power).
    zero_ltv = user_account_data([replace(weth, ltv_bps=0), usdc])
    assert (zero_ltv.ltv, zero_ltv.current_liquidation_threshold, zero_ltv.available_borrows_base) == (
        0,
        8250,
        0,
    )


def test_no_debt_and_empty_account():
    weth, _ = weth_usdc()
    data = user_account_data([weth])
    assert data.health_factor == UINT256_MAX
    assert data.available_borrows_base == 16_000 * PRICE
    assert user_account_data([]) == AccountData(0, 0, 0, 0, 0, UINT256_MAX)


def test_interest_accrues_from_the_last_update():
    later = [
        replace(
            r,
            liquidity_rate=3 * 10**25,
            variable_borrow_rate=6 * 10**25,
            now_timestamp=r.now_timestamp + 30 * 86_400,
        )
        for r in weth_usdc()
    ]
    income = normalized_income(RAY, 3 * 10**25, 0, 30 * 86_400)
    collateral = ray_mul(10 * 10**18, income) * 2000 * PRICE // 10**18
    old_index = normalized_debt(11 * RAY // 10, 6 * 10**25, 0, 30 * 86_400, "3.0")
    new_index = normalized_debt(11 * RAY // 10, 6 * 10**25, 0, 30 * 86_400, "3.5")
    old, new = user_account_data(later, "3.0"), user_account_data(later, "3.5")
    assert old.total_collateral_base == collateral
    assert new.total_collateral_base == ray_mul_floor(10 * 10**18, income) * 2000 * PRICE // 10**18
    assert old.total_debt_base == ray_mul(12_000 * 10**6, old_index) * PRICE // 10**6
    assert new.total_debt_base == mul_div_ceil(ray_mul_ceil(12_000 * 10**6, new_index), PRICE, 10**6)
    assert new.total_debt_base > old.total_debt_base > 13_200 * PRICE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"decimals": 78}, r"^decimals: expected an integer in \[0, 77\], got 78$"),
        ({"price": -1}, r"^price: expected an integer in \[0, "),
        ({"ltv_bps": 70_000}, r"^ltv_bps: expected an integer in \[0, 65535\], got 70000$"),
        ({"scaled_atoken_balance": 1.5}, r"^scaled_atoken_balance: expected an integer"),
        ({"usage_as_collateral_enabled": 1}, r"^usage_as_collateral_enabled: expected a bool, got 1$"),
        ({"now_timestamp": 1}, r"^now_timestamp: expected >= last_update_timestamp 1700000000, got 1$"),
    ],
)
def test_bad_reserve_input_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        reserve(**overrides)


def test_bad_version_and_emode():
    with pytest.raises(ValueError, match=r"^version: expected one of 3.0, 3.5, got '3.1'$"):
        user_account_data([], "3.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^category_id: expected an integer in \[1, 255\], got 0$"):
        EModeCategory(category_id=0, ltv_bps=1, liquidation_threshold_bps=1)


# ----------------------------------------------------------------------------------------- properties

DECIMALS = st.sampled_from([0, 6, 8, 18])


@st.composite
def reserves(draw: st.DrawFn, same_lt: bool = False, elapsed: bool = True) -> list[UserReserve]:
    count = draw(st.integers(1, 4))
    last = 1_700_000_000
    books = []
    for i in range(count):
        lt = 8000 if same_lt else draw(st.integers(1, 9500))
        decimals = draw(DECIMALS)
        books.append(
            reserve(
                asset=f"0x{i}",
                decimals=decimals,
                price=draw(st.integers(1, 1000 * PRICE)),
                scaled_atoken_balance=draw(st.integers(0, 10 ** (decimals + 5))),
                scaled_vdebt_balance=draw(st.integers(0, 10 ** (decimals + 5))),
                liquidity_index=draw(st.integers(RAY, 3 * RAY)),
                variable_borrow_index=draw(st.integers(RAY, 3 * RAY)),
                liquidity_rate=draw(st.integers(0, RAY)),
                variable_borrow_rate=draw(st.integers(0, RAY)),
                last_update_timestamp=last,
                now_timestamp=last + (draw(st.integers(0, 3 * Y)) if elapsed else 0),
                ltv_bps=draw(st.integers(0, lt)),
                liquidation_threshold_bps=lt,
                usage_as_collateral_enabled=draw(st.booleans()),
            )
        )
    return books


VERSION = st.sampled_from(["3.0", "3.5"])


def _reprice(books: list[UserReserve], index: int, factor: int) -> list[UserReserve]:
    return [replace(r, price=r.price * factor) if i == index else r for i, r in enumerate(books)]


@settings(max_examples=100, deadline=None)
@given(reserves(), VERSION, st.data())
def test_totals_never_fall_when_a_price_rises(books, version, data):
    index = data.draw(st.integers(0, len(books) - 1))
    before = user_account_data(books, version)
    after = user_account_data(_reprice(books, index, data.draw(st.integers(2, 1000))), version)
    assert after.total_collateral_base >= before.total_collateral_base
    assert after.total_debt_base >= before.total_debt_base


@settings(max_examples=100, deadline=None)
@given(reserves(same_lt=True), VERSION, st.data())
def test_health_factor_monotone_in_price(books, version, data):
    # With one LT the average is exact, so HF moves with collateral prices and against debt prices.
    index = data.draw(st.integers(0, len(books) - 1))
    books[index] = replace(books[index], scaled_vdebt_balance=0)  # a collateral-only reserve
    debt_only = replace(books[0], asset="0xdebt", scaled_atoken_balance=0, scaled_vdebt_balance=10**20)
    books = [*books, debt_only]
    factor = data.draw(st.integers(2, 1000))
    base = user_account_data(books, version).health_factor
    assert user_account_data(_reprice(books, index, factor), version).health_factor >= base
    assert user_account_data(_reprice(books, len(books) - 1, factor), version).health_factor <= base


def _collateral_bound(books: list[UserReserve]) -> int:
    # One wei of balance is worth at most ceil(price / 10^decimals) base units.
    return sum(-(-r.price // 10**r.decimals) for r in books)


@settings(max_examples=100, deadline=None)
@given(reserves(), st.booleans())
def test_v35_collateral_below_v30_by_rounding_only(books, same_block):
    if same_block:
        books = [replace(r, now_timestamp=r.last_update_timestamp) for r in books]
    old, new = user_account_data(books, "3.0"), user_account_data(books, "3.5")
    assert 0 <= old.total_collateral_base - new.total_collateral_base <= _collateral_bound(books)
    if same_block:
        assert new.total_debt_base >= old.total_debt_base  # same index: only the rounding differs


@settings(max_examples=100, deadline=None)
@given(reserves(), VERSION)
def test_not_liquidatable_iff_threshold_covers_debt(books, version):
    data = user_account_data(books, version)
    if data.total_debt_base == 0:
        assert data.health_factor == UINT256_MAX
        return
    # Books stay under $1e10 (2e18 base units), where wadDiv's half-up is less than one unit of debt.
    assert data.total_debt_base < 2 * WAD
    if version == "3.0":
        covered = percent_mul(data.total_collateral_base, data.current_liquidation_threshold)
        assert (data.health_factor >= WAD) == (covered >= data.total_debt_base)
    else:
        weighted = sum(
            collateral_base(r, r.price, "3.5") * r.liquidation_threshold_bps
            for r in books
            if r.usage_as_collateral_enabled
        )
        assert (data.health_factor >= WAD) == (weighted >= PERCENTAGE_FACTOR * data.total_debt_base)


# ------------------------------------------------------------------- the published v3.0 Solidity itself

# Array-in, array-out wrappers around the real @aave/core-v3 1.19.3 libraries, so that one eth_call
# checks a whole batch against the contracts the devnet deploys.
HARNESS = """
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.10;
import {WadRayMath} from '@aave/core-v3/contracts/protocol/libraries/math/WadRayMath.sol';
import {PercentageMath} from '@aave/core-v3/contracts/protocol/libraries/math/PercentageMath.sol';
import {MathUtils} from '@aave/core-v3/contracts/protocol/libraries/math/MathUtils.sol';

contract AaveMathHarness {
  function binary(uint8 op, uint256[] calldata a, uint256[] calldata b)
    external pure returns (uint256[] memory c)
  {
    c = new uint256[](a.length);
    for (uint256 i = 0; i < a.length; i++) {
      if (op == 0) c[i] = WadRayMath.rayMul(a[i], b[i]);
      else if (op == 1) c[i] = WadRayMath.rayDiv(a[i], b[i]);
      else if (op == 2) c[i] = WadRayMath.wadMul(a[i], b[i]);
      else if (op == 3) c[i] = WadRayMath.wadDiv(a[i], b[i]);
      else if (op == 4) c[i] = PercentageMath.percentMul(a[i], b[i]);
      else c[i] = PercentageMath.percentDiv(a[i], b[i]);
    }
  }

  function compounded(uint256[] calldata rate, uint256[] calldata elapsed)
    external pure returns (uint256[] memory c)
  {
    c = new uint256[](rate.length);
    for (uint256 i = 0; i < rate.length; i++) {
      c[i] = MathUtils.calculateCompoundedInterest(rate[i], uint40(1e9), 1e9 + elapsed[i]);
    }
  }

  function linear(uint256[] calldata rate, uint256[] calldata elapsed)
    external view returns (uint256[] memory c)
  {
    c = new uint256[](rate.length);
    for (uint256 i = 0; i < rate.length; i++) {
      c[i] = MathUtils.calculateLinearInterest(rate[i], uint40(block.timestamp - elapsed[i]));
    }
  }
}
"""

BINARY = [ray_mul, ray_div, wad_mul, wad_div, percent_mul, percent_div]


@pytest.fixture(scope="module")
def harness(node_home) -> Iterator[Any]:
    from devnet.anvil import Anvil
    from devnet.deploy import deploy_contract, encode_call
    from devnet.solc import compile_sources

    compiled = compile_sources(node_home, {"contracts/AaveMathHarness.sol": HARNESS})["AaveMathHarness"]
    with Anvil(node_home) as node:
        address = deploy_contract(node, compiled)

        def call(function: str, *args: Any) -> list[int]:
            data = encode_call(compiled.abi, function, args)
            result = node.rpc("eth_call", [{"to": address, "data": data}, "latest"])
            return list(abi_decode(["uint256[]"], bytes.fromhex(result[2:]))[0])

        yield call


def _operands(rng: random.Random, count: int) -> tuple[list[int], list[int]]:
    # Around the scales the contracts see (wei amounts, rays, bps) plus exact halves, where rounding bites.
    scales = [1, 10**4, WAD, RAY, 3 * RAY // 2, HALF_RAY]
    a = [
        rng.randrange(0, 2**100) if i % 2 else rng.choice(scales) * rng.randrange(1, 2**20)
        for i in range(count)
    ]
    b = [
        rng.choice([rng.randrange(1, 2**100), rng.choice(scales) + rng.randrange(-2, 3)])
        for _ in range(count)
    ]
    return a, b


def test_primitives_equal_the_published_solidity(harness):
    rng = random.Random(2024)
    for op, function in enumerate(BINARY):
        a, b = _operands(rng, 300)
        b = [max(1, x) for x in b]
        assert harness("binary", op, a, b) == [function(x, y) for x, y in zip(a, b, strict=True)], (
            function.__name__
        )


def test_interest_equals_the_published_solidity(harness):
    rng = random.Random(7)
    rates = [
        rng.choice([0, 1, RAY // 100, RAY // 2, 2 * RAY, rng.randrange(0, 10 * RAY)]) for _ in range(300)
    ]
    elapsed = [rng.choice([0, 1, 2, 3, 12, 86_400, Y, rng.randrange(0, 10 * Y)]) for _ in range(300)]
    assert harness("compounded", rates, elapsed) == [
        compounded_interest(r, n, "3.0") for r, n in zip(rates, elapsed, strict=True)
    ]
    short = [min(n, 10**8) for n in elapsed]  # the node's clock is only so far from 1970
    assert harness("linear", rates, short) == [
        linear_interest(r, n) for r, n in zip(rates, short, strict=True)
    ]
