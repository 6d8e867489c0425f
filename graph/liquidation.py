"""Aave v3 ``liquidationCall`` in exact integers: what the Pool's LiquidationLogic computes, per rule set.

    outcome = liquidate(reserves, weth, usdc, MAX_UINT, terms, rules="3.0")
    outcome.debt_repaid, outcome.collateral_to_liquidator, outcome.protocol_fee

Two rule sets, chosen per market:

- ``"3.0"`` (``@aave/core-v3`` 1.19, the devnet): the close factor is 50 % of the user's debt in *this*
  reserve, 100 % when the health factor is at or below 0.95; no dust rule; debt left without collateral
  stays. An eMode category's price source (when set) prices the debt, and the collateral when the
  collateral reserve is in the category.
- ``"3.3"`` (aave-v3-origin 3.3 and 3.4): the close factor is 50 % of the user's *total* debt in base
  currency, 100 % at HF ≤ 0.95 or when this reserve's collateral or debt is worth less than $2,000; a
  partial liquidation must leave at least $1,000 of both (``MUST_NOT_LEAVE_DUST``); when the last
  collateral goes, every remaining debt is burned as a deficit (``DeficitCreated``). No eMode price source.
  Both round half up (``percentMul``/``percentDiv``/``rayMul``/``rayDiv``); the floor/ceil variants of
  v3.5+ can differ by one wei and are not modelled here.

The inputs are the :mod:`indexer.protocols.aave_math` types the health factor uses (reserve state at the
liquidation block's timestamp), plus per-reserve :class:`ReserveTerms` (liquidation bonus, protocol fee),
which the account maths do not need. :func:`liquidate_in_market` builds them from an indexed
:class:`~indexer.lending.positions.MarketState`.

A call the contract would revert raises :class:`LiquidationReverted` (with Aave's error code); inputs that
name no reserve of the user raise :class:`LiquidationInputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

from graph.errors import GraphError
from indexer.lending.positions import MarketState
from indexer.protocols.aave_math import (
    HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
    UINT256_MAX,
    EModeCategory,
    UserReserve,
    normalized_debt,
    normalized_income,
    percent_div,
    percent_mul,
    ray_div,
    ray_mul,
    user_account_data,
)

Rules = Literal["3.0", "3.3"]
RULES: tuple[Rules, ...] = get_args(Rules)

MAX_UINT = UINT256_MAX
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16
# Base currency is USD with 8 decimals, as on every market these rules are used for.
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2_000 * 10**8
MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD // 2

# Aave's Errors.sol codes, as the revert string carries them.
INVALID_BURN_AMOUNT = "25"
HEALTH_FACTOR_NOT_BELOW_THRESHOLD = "45"
COLLATERAL_CANNOT_BE_LIQUIDATED = "46"
SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER = "47"
MUST_NOT_LEAVE_DUST = "103"
# Not an Errors.sol code: Solidity's checked-arithmetic panic, as a burn past the balance raises it.
ARITHMETIC_UNDERFLOW = "Panic(0x11)"


class LiquidationInputError(GraphError, ValueError):
    """Inputs that describe no liquidation: unknown rule set, an asset the user has no reserve in, …"""


class LiquidationReverted(GraphError):
    """The Pool would revert this ``liquidationCall``; ``code`` is Aave's error code (e.g. ``"45"``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"liquidationCall reverts with {code}: {message}")
        self.code = code


@dataclass(frozen=True, slots=True)
class ReserveTerms:
    """What a liquidation needs of a reserve beyond the account maths: bonus and protocol fee (bps)."""

    liquidation_bonus_bps: int
    protocol_fee_bps: int = 0


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One ``liquidationCall`` as the Pool executes it.

    Amounts are in the assets' own units: ``debt_repaid`` and ``collateral_to_liquidator`` are the
    ``LiquidationCall`` event's ``debtToCover`` and ``liquidatedCollateralAmount`` (the fee excluded);
    ``protocol_fee`` is the collateral (as aTokens) the treasury receives. ``scaled_*`` are the token
    contracts' stored (scaled) balances: the user's after the call, and what the liquidator (only with
    ``receive_a_token``) and the treasury gain. ``deficits`` (3.3) is ``DeficitCreated`` per debt asset.
    """

    rules: Rules
    health_factor: int
    max_debt: int
    debt_repaid: int
    collateral_to_liquidator: int
    protocol_fee: int
    liquidation_bonus_bps: int
    collateral_price: int
    debt_price: int
    receive_a_token: bool
    scaled_collateral_after: int
    scaled_debt_after: int
    liquidator_scaled_atoken: int
    treasury_scaled_atoken: int
    collateral_disabled: bool
    debt_cleared: bool
    deficits: tuple[tuple[str, int], ...] = ()


class _Seized(NamedTuple):
    collateral: int  # to the liquidator, fee excluded
    debt: int
    fee: int
    collateral_base: int  # the collateral taken (fee included) in base currency; 3.3 only


class _Context(NamedTuple):
    coll: UserReserve
    debt: UserReserve
    coll_index: int
    debt_index: int
    coll_balance: int
    debt_balance: int
    health_factor: int
    total_collateral_base: int
    total_debt_base: int
    bonus: int
    coll_price: int
    debt_price: int


# ------------------------------------------------------------------------------------------- inputs


def _check_rules(rules: str) -> None:
    if rules not in RULES:
        raise LiquidationInputError(f"rules: expected one of {', '.join(RULES)}, got {rules!r}")


def _reserve(reserves: Sequence[UserReserve], asset: str, role: str) -> UserReserve:
    for reserve in reserves:
        if reserve.asset == asset:
            return reserve
    raise LiquidationInputError(f"{role} asset {asset}: the user has no reserve in it")


def _terms(terms: Mapping[str, ReserveTerms], asset: str) -> ReserveTerms:
    if asset not in terms:
        raise LiquidationInputError(f"no ReserveTerms (bonus, protocol fee) for the collateral {asset}")
    return terms[asset]


def _in_category(reserve: UserReserve, emode: EModeCategory | None) -> bool:
    return emode is not None and reserve.emode_category == emode.category_id


def _prices(
    coll: UserReserve, debt: UserReserve, emode: EModeCategory | None, rules: Rules
) -> tuple[int, int]:
    # v3.0 only: the category's price source replaces the debt price (a user in eMode borrows only in
    # the category) and the collateral price when the collateral is in the category.
    if rules == "3.3" or emode is None or emode.price == 0:
        return coll.price, debt.price
    return (emode.price if _in_category(coll, emode) else coll.price), emode.price


def _context(
    reserves: Sequence[UserReserve],
    collateral_asset: str,
    debt_asset: str,
    terms: Mapping[str, ReserveTerms],
    rules: Rules,
    emode: EModeCategory | None,
    emode_bonus_bps: int,
) -> _Context:
    _check_rules(rules)
    if rules == "3.3" and emode is not None and emode.price != 0:
        raise LiquidationInputError("emode.price: eMode price sources do not exist from v3.2, expected 0")
    coll = _reserve(reserves, collateral_asset, "collateral")
    debt = _reserve(reserves, debt_asset, "debt")
    # 3.3 keeps the half-up account maths of 3.0 (the rounding changed in 3.5).
    account = user_account_data(reserves, "3.0", emode)
    coll_index = normalized_income(
        coll.liquidity_index, coll.liquidity_rate, coll.last_update_timestamp, coll.now_timestamp
    )
    debt_index = normalized_debt(
        debt.variable_borrow_index,
        debt.variable_borrow_rate,
        debt.last_update_timestamp,
        debt.now_timestamp,
    )
    bonus = (
        emode_bonus_bps
        if _in_category(coll, emode)
        else _terms(terms, collateral_asset).liquidation_bonus_bps
    )
    coll_price, debt_price = _prices(coll, debt, emode, rules)
    return _Context(
        coll=coll,
        debt=debt,
        coll_index=coll_index,
        debt_index=debt_index,
        coll_balance=ray_mul(coll.scaled_atoken_balance, coll_index),
        debt_balance=ray_mul(debt.scaled_vdebt_balance, debt_index),
        health_factor=account.health_factor,
        total_collateral_base=account.total_collateral_base,
        total_debt_base=account.total_debt_base,
        bonus=bonus,
        coll_price=coll_price,
        debt_price=debt_price,
    )


# ------------------------------------------------------------------------------------------- steps


def _validate(ctx: _Context) -> None:
    # ValidationLogic.validateLiquidationCall, in its order (no price-oracle sentinel on these markets).
    if ctx.health_factor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        raise LiquidationReverted(
            HEALTH_FACTOR_NOT_BELOW_THRESHOLD, f"health factor {ctx.health_factor} is not below 1e18"
        )
    if ctx.coll.liquidation_threshold_bps == 0 or not ctx.coll.usage_as_collateral_enabled:
        raise LiquidationReverted(
            COLLATERAL_CANNOT_BE_LIQUIDATED, f"{ctx.coll.asset} is not collateral of the user"
        )
    if ctx.debt_balance == 0:
        raise LiquidationReverted(
            SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER, f"the user has no debt in {ctx.debt.asset}"
        )


def _unit(reserve: UserReserve) -> int:
    unit: int = 10**reserve.decimals
    return unit


def _max_debt(ctx: _Context, rules: Rules) -> int:
    """The close-factor bound on the debt repaid (``_calculateDebt`` in 3.0, inline in 3.3)."""
    if rules == "3.0":
        factor = (
            DEFAULT_LIQUIDATION_CLOSE_FACTOR
            if ctx.health_factor > CLOSE_FACTOR_HF_THRESHOLD
            else MAX_LIQUIDATION_CLOSE_FACTOR
        )
        return percent_mul(ctx.debt_balance, factor)
    debt_base = ctx.debt_balance * ctx.debt_price // _unit(ctx.debt)
    coll_base = ctx.coll_balance * ctx.coll_price // _unit(ctx.coll)
    if (
        coll_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
        and debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
        and ctx.health_factor > CLOSE_FACTOR_HF_THRESHOLD
    ):
        half_total = percent_mul(ctx.total_debt_base, DEFAULT_LIQUIDATION_CLOSE_FACTOR)
        if debt_base > half_total:
            return half_total * _unit(ctx.debt) // ctx.debt_price
    return ctx.debt_balance


def _available_collateral(ctx: _Context, debt_to_cover: int, fee_bps: int) -> _Seized:
    """``_calculateAvailableCollateralToLiquidate``: collateral for the debt, bounded by the balance."""
    coll_unit, debt_unit = _unit(ctx.coll), _unit(ctx.debt)
    base_collateral = ctx.debt_price * debt_to_cover * coll_unit // (ctx.coll_price * debt_unit)
    max_collateral = percent_mul(base_collateral, ctx.bonus)
    if max_collateral > ctx.coll_balance:
        amount = ctx.coll_balance
        value_in_debt = ctx.coll_price * amount * debt_unit // (ctx.debt_price * coll_unit)
        debt_needed = percent_div(value_in_debt, ctx.bonus)
    else:
        amount, debt_needed = max_collateral, debt_to_cover
    amount_base = amount * ctx.coll_price // coll_unit
    if fee_bps == 0:
        return _Seized(amount, debt_needed, 0, amount_base)
    # The fee is a share of the bonus part only: amount − amount / bonus.
    fee = percent_mul(amount - percent_div(amount, ctx.bonus), fee_bps)
    return _Seized(amount - fee, debt_needed, fee, amount_base)


def _check_dust(ctx: _Context, seized: _Seized) -> None:
    # 3.3: either all the debt of the reserve, all the collateral, or $1,000 of each left behind.
    if seized.debt >= ctx.debt_balance or seized.collateral + seized.fee >= ctx.coll_balance:
        return
    debt_left = (ctx.debt_balance - seized.debt) * ctx.debt_price // _unit(ctx.debt)
    coll_left = (ctx.coll_balance - seized.collateral) * ctx.coll_price // _unit(ctx.coll)
    if debt_left < MIN_LEFTOVER_BASE or coll_left < MIN_LEFTOVER_BASE:
        raise LiquidationReverted(
            MUST_NOT_LEAVE_DUST,
            f"leftovers of {debt_left} debt and {coll_left} collateral (base) are under {MIN_LEFTOVER_BASE}",
        )


def _burn_scaled(scaled: int, amount: int, index: int, what: str) -> int:
    """``ScaledBalanceTokenBase._burnScaled``: the scaled balance left; a zero scaled amount reverts."""
    amount_scaled = ray_div(amount, index)
    if amount_scaled == 0:
        raise LiquidationReverted(INVALID_BURN_AMOUNT, f"{what}: {amount} burns zero scaled units")
    if amount_scaled > scaled:
        raise LiquidationReverted(ARITHMETIC_UNDERFLOW, f"{what}: burns more than the scaled balance")
    return scaled - amount_scaled


def _deficits(reserves: Sequence[UserReserve], ctx: _Context, repaid: int) -> tuple[tuple[str, int], ...]:
    """3.3 ``_burnDebtTokens``/``_burnBadDebt`` with no collateral left: every remaining debt burned."""
    found = []
    if ctx.debt_balance > repaid:
        found.append((ctx.debt.asset, ctx.debt_balance - repaid))
    for reserve in reserves:
        if reserve.asset == ctx.debt.asset or reserve.scaled_vdebt_balance == 0:
            continue
        index = normalized_debt(
            reserve.variable_borrow_index,
            reserve.variable_borrow_rate,
            reserve.last_update_timestamp,
            reserve.now_timestamp,
        )
        found.append((reserve.asset, ray_mul(reserve.scaled_vdebt_balance, index)))
    return tuple(found)


def _treasury_fee(ctx: _Context, fee: int, scaled_left: int) -> tuple[int, int]:
    """The fee actually sent and its scaled amount, clamped to the user's scaled balance (1-wei guard)."""
    if fee == 0:
        return 0, 0
    if ray_div(fee, ctx.coll_index) > scaled_left:
        fee = ray_mul(scaled_left, ctx.coll_index)
    return fee, ray_div(fee, ctx.coll_index)


# ------------------------------------------------------------------------------------------- public


def liquidate(
    reserves: Sequence[UserReserve],
    collateral_asset: str,
    debt_asset: str,
    debt_to_cover: int,
    terms: Mapping[str, ReserveTerms],
    *,
    rules: Rules = "3.0",
    emode: EModeCategory | None = None,
    emode_bonus_bps: int = 0,
    receive_a_token: bool = False,
) -> Liquidation:
    """``Pool.liquidationCall(collateral, debt, user, debtToCover, receiveAToken)`` on the user's reserves.

    ``reserves`` are the user's reserves with ``now_timestamp`` the liquidation block's timestamp;
    ``emode`` the user's category (its ``price`` the v3.0 category price, 0 for none) and
    ``emode_bonus_bps`` its liquidation bonus. Raises :class:`LiquidationReverted` where the Pool reverts.
    """
    if (
        isinstance(debt_to_cover, bool)
        or not isinstance(debt_to_cover, int)
        or not 0 <= debt_to_cover <= MAX_UINT
    ):
        raise LiquidationInputError(f"debt_to_cover: expected a uint256, got {debt_to_cover!r}")
    ctx = _context(reserves, collateral_asset, debt_asset, terms, rules, emode, emode_bonus_bps)
    _validate(ctx)
    max_debt = _max_debt(ctx, rules)
    seized = _available_collateral(
        ctx, min(debt_to_cover, max_debt), _terms(terms, collateral_asset).protocol_fee_bps
    )
    if rules == "3.3":
        _check_dust(ctx, seized)
    no_collateral_left = rules == "3.3" and ctx.total_collateral_base == seized.collateral_base
    burned = ctx.debt_balance if no_collateral_left else seized.debt
    scaled_debt = _burn_scaled(ctx.debt.scaled_vdebt_balance, burned, ctx.debt_index, "debt")
    coll_scaled = ctx.coll.scaled_atoken_balance
    moved = ray_div(seized.collateral, ctx.coll_index)
    if not receive_a_token:
        coll_scaled = _burn_scaled(coll_scaled, seized.collateral, ctx.coll_index, "collateral")
    else:
        coll_scaled -= moved
    fee, fee_scaled = _treasury_fee(ctx, seized.fee, coll_scaled)
    return Liquidation(
        rules=rules,
        health_factor=ctx.health_factor,
        max_debt=max_debt,
        debt_repaid=seized.debt,
        collateral_to_liquidator=seized.collateral,
        protocol_fee=fee,
        liquidation_bonus_bps=ctx.bonus,
        collateral_price=ctx.coll_price,
        debt_price=ctx.debt_price,
        receive_a_token=receive_a_token,
        scaled_collateral_after=coll_scaled - fee_scaled,
        scaled_debt_after=scaled_debt,
        liquidator_scaled_atoken=moved if receive_a_token else 0,
        treasury_scaled_atoken=fee_scaled,
        collateral_disabled=seized.collateral + seized.fee == ctx.coll_balance,
        debt_cleared=no_collateral_left or seized.debt == ctx.debt_balance,
        deficits=_deficits(reserves, ctx, seized.debt) if no_collateral_left else (),
    )


def max_debt_to_cover(
    reserves: Sequence[UserReserve],
    collateral_asset: str,
    debt_asset: str,
    terms: Mapping[str, ReserveTerms],
    *,
    rules: Rules = "3.0",
    emode: EModeCategory | None = None,
    emode_bonus_bps: int = 0,
) -> int:
    """The largest ``debtToCover`` that does not revert and repays the most (LiquidationDataProvider).

    Passing it repays what passing ``MAX_UINT`` would, when that does not revert; under the 3.3 dust rule
    it is the largest amount that leaves $1,000 of debt and collateral. A liquidation that reverts for any
    other reason (HF ≥ 1, no collateral, no debt) raises :class:`LiquidationReverted`.
    """

    def attempt(amount: int) -> Liquidation:
        return liquidate(
            reserves, collateral_asset, debt_asset, amount, terms,
            rules=rules, emode=emode, emode_bonus_bps=emode_bonus_bps,
        )  # fmt: skip

    try:
        return attempt(MAX_UINT).max_debt
    except LiquidationReverted as exc:
        if exc.code != MUST_NOT_LEAVE_DUST:
            raise
    ctx = _context(reserves, collateral_asset, debt_asset, terms, rules, emode, emode_bonus_bps)
    return _largest_without_dust(attempt, _max_debt(ctx, rules))


def _largest_without_dust(attempt: Callable[[int], Liquidation], max_debt: int) -> int:
    # Both leftovers shrink as the amount grows, so below the full amount (which reverted) the amounts
    # that pass the dust rule form a prefix of [0, max_debt]: bisect for its end.
    low, high = 0, max_debt
    while low < high:
        middle = (low + high + 1) // 2
        if _passes_dust(attempt, middle):
            low = middle
        else:
            high = middle - 1
    if low == 0:
        raise LiquidationReverted(MUST_NOT_LEAVE_DUST, "every amount leaves dust")
    return low


def _passes_dust(attempt: Callable[[int], Liquidation], amount: int) -> bool:
    try:
        attempt(amount)
    except LiquidationReverted as exc:
        return exc.code != MUST_NOT_LEAVE_DUST
    return True


def liquidation_profit(outcome: Liquidation, sale_proceeds: int | Callable[[int], int], gas_cost: int) -> int:
    """What the liquidator keeps, in debt-asset units: the sale of the seized collateral − debt − gas.

    ``sale_proceeds`` is the debt asset the collateral received sells for (after slippage), or a function
    of the collateral amount giving it (a DEX quote); ``gas_cost`` is in debt-asset units too.
    """
    proceeds = sale_proceeds(outcome.collateral_to_liquidator) if callable(sale_proceeds) else sale_proceeds
    return proceeds - outcome.debt_repaid - gas_cost


def worth_liquidating(
    outcome: Liquidation, sale_proceeds: int | Callable[[int], int], gas_cost: int, min_profit: int = 0
) -> bool:
    """Whether a liquidator acts: the sale after slippage and gas beats the repaid debt by ``min_profit``."""
    return liquidation_profit(outcome, sale_proceeds, gas_cost) > min_profit


# ------------------------------------------------------------------------------------------ markets


def market_terms(state: MarketState, protocol_fees: Mapping[str, int]) -> dict[str, ReserveTerms]:
    """Per-reserve terms from an indexed market: bonuses from its configurator events, fees as given.

    The liquidation protocol fee is not among the indexed events, so ``protocol_fees`` supplies it (bps by
    asset; a missing asset pays none).
    """
    return {
        asset: ReserveTerms(config.liquidation_bonus_bps, protocol_fees.get(asset, 0))
        for asset, config in state.configs.items()
    }


def liquidate_in_market(
    state: MarketState,
    user: str,
    collateral_asset: str,
    debt_asset: str,
    debt_to_cover: int,
    *,
    protocol_fees: Mapping[str, int],
    rules: Rules = "3.0",
    receive_a_token: bool = False,
) -> Liquidation:
    """:func:`liquidate` on a user of an indexed market at the state's block."""
    emode = state.emode(user)
    bonus = 0 if emode is None else state.emode_categories[emode.category_id].liquidation_bonus_bps
    return liquidate(
        state.user_reserves(user),
        collateral_asset,
        debt_asset,
        debt_to_cover,
        market_terms(state, protocol_fees),
        rules=rules,
        emode=emode,
        emode_bonus_bps=bonus,
        receive_a_token=receive_a_token,
    )
