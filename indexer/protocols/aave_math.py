"""Aave v3 account maths in exact integers, as ``Pool.getUserAccountData`` computes it on chain.

Two versions, because the rounding changed and a health factor must equal the deployed contract's:

- ``"3.0"``: the ``@aave/core-v3`` 1.19 logic. WadRayMath and PercentageMath round half up; the
  compounded interest is ``RAY + r·n/Y + n(n−1)·b2/2 + n(n−1)(n−2)·b3/6`` with ``b2 = (r rayMul r)/Y²`` and
  ``b3 = (b2 rayMul r)/Y``; ``HF = (totalCollateral percentMul avgLT) wadDiv totalDebt``; an eMode category
  may carry its own price source.
- ``"3.5"``: aToken balances round down (``rayMulFloor``), debt rounds up (``rayMulCeil``, ``mulDivCeil``);
  ``HF = wadDiv(Σ collateral_i·LT_i, totalDebt) / 10000``; available borrows use ``percentMulFloor``; the
  compounded interest is ``RAY + x + x rayMul (x/2 + x rayMul x/6)`` with ``x = r·n/Y``; eMode has no
  price source.

Every operation raises ``OverflowError`` where the contract would revert on a uint256 overflow and
``ZeroDivisionError`` where it would revert on a division by zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple, get_args

Version = Literal["3.0", "3.5"]
VERSIONS: tuple[Version, ...] = get_args(Version)

UINT256_MAX = 2**256 - 1
WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2
SECONDS_PER_YEAR = 365 * 24 * 3600
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = WAD


def _u256(value: int) -> int:
    # Solidity 0.8 reverts here; a value the chain could never hold must not pass silently.
    if value > UINT256_MAX:
        raise OverflowError("uint256 overflow")
    return value


def _div_ceil(a: int, b: int) -> int:
    return -(-a // b)


def wad_mul(a: int, b: int) -> int:
    """``WadRayMath.wadMul``: a·b / WAD, half up."""
    return _u256(a * b + HALF_WAD) // WAD


def wad_div(a: int, b: int) -> int:
    """``WadRayMath.wadDiv``: a·WAD / b, half up (the same in every v3 version)."""
    if b == 0:
        raise ZeroDivisionError("wadDiv by zero")
    return _u256(a * WAD + b // 2) // b


def ray_mul(a: int, b: int) -> int:
    """``WadRayMath.rayMul``: a·b / RAY, half up."""
    return _u256(a * b + HALF_RAY) // RAY


def ray_mul_floor(a: int, b: int) -> int:
    """``WadRayMath.rayMulFloor`` (v3.5+): a·b / RAY, rounded down."""
    return _u256(a * b) // RAY


def ray_mul_ceil(a: int, b: int) -> int:
    """``WadRayMath.rayMulCeil`` (v3.5+): a·b / RAY, rounded up."""
    return _div_ceil(_u256(a * b), RAY)


def ray_div(a: int, b: int) -> int:
    """``WadRayMath.rayDiv``: a·RAY / b, half up."""
    if b == 0:
        raise ZeroDivisionError("rayDiv by zero")
    return _u256(a * RAY + b // 2) // b


def ray_div_floor(a: int, b: int) -> int:
    """``WadRayMath.rayDivFloor`` (v3.5+): a·RAY / b, rounded down."""
    if b == 0:
        raise ZeroDivisionError("rayDiv by zero")
    return _u256(a * RAY) // b


def ray_div_ceil(a: int, b: int) -> int:
    """``WadRayMath.rayDivCeil`` (v3.5+): a·RAY / b, rounded up."""
    if b == 0:
        raise ZeroDivisionError("rayDiv by zero")
    return _div_ceil(_u256(a * RAY), b)


def percent_mul(value: int, percentage: int) -> int:
    """``PercentageMath.percentMul``: value·percentage / 10000, half up."""
    return _u256(value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def percent_mul_floor(value: int, percentage: int) -> int:
    """``PercentageMath.percentMulFloor`` (v3.5+): value·percentage / 10000, rounded down."""
    return _u256(value * percentage) // PERCENTAGE_FACTOR


def percent_mul_ceil(value: int, percentage: int) -> int:
    """``PercentageMath.percentMulCeil`` (v3.5+): value·percentage / 10000, rounded up."""
    return _div_ceil(_u256(value * percentage), PERCENTAGE_FACTOR)


def percent_div(value: int, percentage: int) -> int:
    """``PercentageMath.percentDiv``: value·10000 / percentage, half up."""
    if percentage == 0:
        raise ZeroDivisionError("percentDiv by zero")
    return _u256(value * PERCENTAGE_FACTOR + percentage // 2) // percentage


def percent_div_ceil(value: int, percentage: int) -> int:
    """``PercentageMath.percentDivCeil`` (v3.5+): value·10000 / percentage, rounded up."""
    if percentage == 0:
        raise ZeroDivisionError("percentDiv by zero")
    return _div_ceil(_u256(value * PERCENTAGE_FACTOR), percentage)


def mul_div_ceil(a: int, b: int, c: int) -> int:
    """``MathUtils.mulDivCeil`` (v3.5+): a·b / c, rounded up."""
    if c == 0:
        raise ZeroDivisionError("mulDivCeil by zero")
    return _div_ceil(_u256(a * b), c)


def linear_interest(rate: int, elapsed: int) -> int:
    """``MathUtils.calculateLinearInterest``: RAY + rate·elapsed / year (ray), identical in every version."""
    return RAY + _u256(rate * elapsed) // SECONDS_PER_YEAR


def compounded_interest(rate: int, elapsed: int, version: Version = "3.0") -> int:
    """``MathUtils.calculateCompoundedInterest`` for ``version``: the 3-term binomial approximation (ray)."""
    _check_version(version)
    if elapsed == 0:
        return RAY
    if version == "3.0":
        return _compounded_v30(rate, elapsed)
    x = rate * elapsed // SECONDS_PER_YEAR
    return RAY + x + ray_mul(x, x // 2 + ray_mul(x, x // 6))


def _compounded_v30(rate: int, n: int) -> int:
    # The b2/b3 bases are divided before they are multiplied by n: this truncation is what the chain does.
    base_power_two = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate) // SECONDS_PER_YEAR
    n_minus_two = n - 2 if n > 2 else 0
    second = _u256(n * (n - 1) * base_power_two) // 2
    third = _u256(n * (n - 1) * n_minus_two * base_power_three) // 6
    return _u256(RAY + _u256(rate * n) // SECONDS_PER_YEAR + second + third)


def normalized_income(liquidity_index: int, liquidity_rate: int, last_update: int, now: int) -> int:
    """``ReserveLogic.getNormalizedIncome``: the stored index within its own block, else linear accrual.

    The same in v3.0 and v3.5: index accrual kept the half-up ``rayMul``.
    """
    if now == last_update:
        return liquidity_index
    return ray_mul(linear_interest(liquidity_rate, _elapsed(last_update, now)), liquidity_index)


def normalized_debt(
    variable_borrow_index: int,
    variable_borrow_rate: int,
    last_update: int,
    now: int,
    version: Version = "3.0",
) -> int:
    """``ReserveLogic.getNormalizedDebt``: the stored index within its own block, else compounded accrual."""
    if now == last_update:
        return variable_borrow_index
    growth = compounded_interest(variable_borrow_rate, _elapsed(last_update, now), version)
    return ray_mul(growth, variable_borrow_index)


def _elapsed(last_update: int, now: int) -> int:
    if now < last_update:
        raise ValueError(f"now: expected >= last update {last_update}, got {now}")
    return now - last_update


# Bit widths as the contracts store them; decimals stop at 77 because 10**78 no longer fits a uint256.
_FIELD_MAX = {
    "decimals": 77,
    "price": UINT256_MAX,
    "scaled_atoken_balance": UINT256_MAX,
    "scaled_vdebt_balance": UINT256_MAX,
    "liquidity_index": 2**128 - 1,
    "variable_borrow_index": 2**128 - 1,
    "liquidity_rate": 2**128 - 1,
    "variable_borrow_rate": 2**128 - 1,
    "last_update_timestamp": 2**40 - 1,
    "now_timestamp": 2**40 - 1,
    "ltv_bps": 2**16 - 1,
    "liquidation_threshold_bps": 2**16 - 1,
    "emode_category": 2**8 - 1,
    "category_id": 2**8 - 1,
}


def _check_uint(name: str, value: object, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{name}: expected an integer in [0, {maximum}], got {value!r}")


@dataclass(frozen=True, slots=True)
class UserReserve:
    """One reserve of one user: reserve state, oracle price (base currency, 8 decimals) and scaled balances.

    ``emode_category`` is the eMode category the reserve counts in for this user: the reserve's own
    category in v3.0, the user's category when its collateral bitmap holds the reserve in v3.2+, else 0.
    A non-zero scaled debt balance means the borrowing flag is set; stable debt is taken as zero.
    """

    asset: str
    decimals: int
    price: int
    scaled_atoken_balance: int
    scaled_vdebt_balance: int
    liquidity_index: int
    variable_borrow_index: int
    liquidity_rate: int
    variable_borrow_rate: int
    last_update_timestamp: int
    now_timestamp: int
    ltv_bps: int
    liquidation_threshold_bps: int
    usage_as_collateral_enabled: bool
    emode_category: int = 0

    def __post_init__(self) -> None:
        for field in fields(self):
            if field.name in _FIELD_MAX:
                _check_uint(field.name, getattr(self, field.name), _FIELD_MAX[field.name])
        if not isinstance(self.usage_as_collateral_enabled, bool):
            raise ValueError(
                f"usage_as_collateral_enabled: expected a bool, got {self.usage_as_collateral_enabled!r}"
            )
        if self.now_timestamp < self.last_update_timestamp:
            raise ValueError(
                f"now_timestamp: expected >= last_update_timestamp {self.last_update_timestamp},"
                f" got {self.now_timestamp}"
            )


@dataclass(frozen=True, slots=True)
class EModeCategory:
    """The user's eMode category; ``price`` is the v3.0 category price source's price, 0 when it has none."""

    category_id: int
    ltv_bps: int
    liquidation_threshold_bps: int
    price: int = 0

    def __post_init__(self) -> None:
        _check_uint("ltv_bps", self.ltv_bps, _FIELD_MAX["ltv_bps"])
        _check_uint("liquidation_threshold_bps", self.liquidation_threshold_bps, _FIELD_MAX["ltv_bps"])
        _check_uint("price", self.price, UINT256_MAX)
        if isinstance(self.category_id, bool) or not isinstance(self.category_id, int):
            raise ValueError(f"category_id: expected an integer in [1, 255], got {self.category_id!r}")
        if not 1 <= self.category_id <= 255:
            raise ValueError(f"category_id: expected an integer in [1, 255], got {self.category_id!r}")


class AccountData(NamedTuple):
    """``Pool.getUserAccountData`` outputs, in its order: base values (8 decimals), bps, and HF in wad."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int


class _Sums(NamedTuple):
    collateral: int
    debt: int
    ltv_weighted: int
    lt_weighted: int


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"version: expected one of {', '.join(VERSIONS)}, got {version!r}")


def _asset_unit(reserve: UserReserve) -> int:
    unit: int = 10**reserve.decimals
    return unit


def collateral_base(reserve: UserReserve, price: int, version: Version = "3.0") -> int:
    """``_getUserBalanceInBaseCurrency``: aToken balance × price / 10^decimals, rounded down."""
    income = normalized_income(
        reserve.liquidity_index, reserve.liquidity_rate, reserve.last_update_timestamp, reserve.now_timestamp
    )
    mul = ray_mul if version == "3.0" else ray_mul_floor
    return _u256(mul(reserve.scaled_atoken_balance, income) * price) // _asset_unit(reserve)


def debt_base(reserve: UserReserve, price: int, version: Version = "3.0") -> int:
    """``_getUserDebtInBaseCurrency``: variable debt × price / 10^decimals (rounded up from v3.5)."""
    index = normalized_debt(
        reserve.variable_borrow_index,
        reserve.variable_borrow_rate,
        reserve.last_update_timestamp,
        reserve.now_timestamp,
        version,
    )
    unit = _asset_unit(reserve)
    if version == "3.0":
        return _u256(ray_mul(reserve.scaled_vdebt_balance, index) * price) // unit
    return mul_div_ceil(ray_mul_ceil(reserve.scaled_vdebt_balance, index), price, unit)


def _price(reserve: UserReserve, emode: EModeCategory | None, in_category: bool) -> int:
    # Only v3.0 categories carry a price source; it prices debt and collateral of the category alike.
    if emode is not None and emode.price != 0 and in_category:
        return emode.price
    return reserve.price


def _risk_params(reserve: UserReserve, emode: EModeCategory | None) -> tuple[int, int]:
    if emode is None:
        return reserve.ltv_bps, reserve.liquidation_threshold_bps
    return emode.ltv_bps, emode.liquidation_threshold_bps


def liquidation_threshold(reserve: UserReserve, emode: EModeCategory | None) -> int:
    """The LT (bps) the reserve's collateral counts with for a user in ``emode`` (None: no eMode): the
    category's when the reserve is in it, else the reserve's own; 0 when it is no collateral at all."""
    if reserve.liquidation_threshold_bps == 0 or not reserve.usage_as_collateral_enabled:
        return 0
    in_category = emode is not None and reserve.emode_category == emode.category_id
    return _risk_params(reserve, emode if in_category else None)[1]


def _sums(reserves: Sequence[UserReserve], version: Version, emode: EModeCategory | None) -> _Sums:
    collateral = debt = ltv_weighted = lt_weighted = 0
    for reserve in reserves:
        in_category = emode is not None and reserve.emode_category == emode.category_id
        price = _price(reserve, emode, in_category)
        # The reserve's own LT gates collateral even when the eMode LT then replaces it.
        if reserve.liquidation_threshold_bps != 0 and reserve.usage_as_collateral_enabled:
            value = collateral_base(reserve, price, version)
            collateral = _u256(collateral + value)
            ltv, lt = _risk_params(reserve, emode if in_category else None)
            if reserve.ltv_bps != 0:
                ltv_weighted = _u256(ltv_weighted + value * ltv)
            lt_weighted = _u256(lt_weighted + value * lt)
        if reserve.scaled_vdebt_balance != 0:
            debt = _u256(debt + debt_base(reserve, price, version))
    return _Sums(collateral, debt, ltv_weighted, lt_weighted)


def _available_borrows(collateral: int, debt: int, ltv: int, version: Version) -> int:
    if version == "3.0":
        limit = percent_mul(collateral, ltv)
        return 0 if limit < debt else limit - debt
    limit = percent_mul_floor(collateral, ltv)
    return 0 if limit <= debt else limit - debt


def _health_factor(sums: _Sums, avg_lt: int, version: Version) -> int:
    if sums.debt == 0:
        return UINT256_MAX
    if version == "3.0":
        return wad_div(percent_mul(sums.collateral, avg_lt), sums.debt)
    return wad_div(sums.lt_weighted, sums.debt) // PERCENTAGE_FACTOR


def user_account_data(
    reserves: Sequence[UserReserve], version: Version = "3.0", emode: EModeCategory | None = None
) -> AccountData:
    """``Pool.getUserAccountData`` of one user, exactly, from the user's reserves and the given version."""
    _check_version(version)
    if version == "3.5" and emode is not None and emode.price != 0:
        raise ValueError(
            f"emode.price: eMode price sources do not exist in v3.5, expected 0, got {emode.price}"
        )
    sums = _sums(reserves, version, emode)
    avg_ltv = sums.ltv_weighted // sums.collateral if sums.collateral else 0
    avg_lt = sums.lt_weighted // sums.collateral if sums.collateral else 0
    return AccountData(
        total_collateral_base=sums.collateral,
        total_debt_base=sums.debt,
        available_borrows_base=_available_borrows(sums.collateral, sums.debt, avg_ltv, version),
        current_liquidation_threshold=avg_lt,
        ltv=avg_ltv,
        health_factor=_health_factor(sums, avg_lt, version),
    )
