"""Morpho Blue markets in exact integers: shares, health and ``liquidate`` as ``Morpho.sol`` 1.0.0 does.

    market = MorphoMarket(id, loan, collateral, lltv=945 * 10**15, total_borrow_assets=..., ...)
    price = oracle_price(scale_factor, base_answer, quote_answer)
    healthy = is_healthy(market, position, price)
    outcome = liquidate(market, position, price, seized_assets=10**18)   # or repaid_shares=...
    outcome = liquidate_max(market, position, price)                     # what a liquidator bot sends

Rules (``Morpho.sol``, ``SharesMathLib``, ``MathLib``, ``ConstantsLib`` of Morpho Blue 1.0.0):

- Shares: ``VIRTUAL_SHARES`` 1e6 and ``VIRTUAL_ASSETS`` 1 on every conversion; a borrower owes
  ``toAssetsUp(borrowShares)``.
- Health: ``maxBorrow = wMulDown(mulDivDown(collateral, price, 1e36), lltv)``; healthy iff
  ``maxBorrow >= borrowed`` (a position without borrow shares always is). ``price`` is the market oracle's:
  loan-token units per collateral unit, times 1e36.
- ``liquidate``: exactly one of ``seizedAssets`` and ``repaidShares`` is non-zero; the liquidation incentive
  factor is ``min(1.15e18, wDivDown(1e18, 1e18 - wMulDown(0.3e18, 1e18 - lltv)))``; no close factor. The
  seized form repays ``toSharesUp(wDivUp(mulDivUp(seized, price, 1e36), LIF))`` shares, the shares form
  seizes ``mulDivDown(wMulDown(toAssetsDown(shares), LIF), 1e36, price)``; either repays
  ``toAssetsUp(repaidShares)`` assets. When the collateral reaches 0 the remaining borrow shares are bad
  debt: ``min(totalBorrowAssets, toAssetsUp(shares))`` leaves the borrow and the supply totals.
- Interest (``_accrueInterest``): ``totalBorrowAssets · wTaylorCompounded(rate, elapsed)`` added to both
  totals; the fee's shares to the fee recipient.

Amounts are the contract's ``uint128`` fields; a call the contract would revert (a healthy position, an
inconsistent input, an underflow) raises :class:`MorphoReverted` with the revert reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from graph.errors import GraphError

WAD = 10**18
ORACLE_PRICE_SCALE = 10**36
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
LIQUIDATION_CURSOR = 3 * 10**17
MAX_LIQUIDATION_INCENTIVE_FACTOR = 115 * 10**16
UINT128_MAX = (1 << 128) - 1

# ErrorsLib's revert strings; an arithmetic underflow is Solidity's panic.
HEALTHY_POSITION = "position is healthy"
INCONSISTENT_INPUT = "inconsistent input"
MAX_UINT128_EXCEEDED = "max uint128 exceeded"
ARITHMETIC_UNDERFLOW = "Panic(0x11)"


class MorphoReverted(GraphError):
    """``Morpho.liquidate`` would revert; ``reason`` is its revert string (``ErrorsLib``) or the panic."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"liquidate reverts: {reason}")
        self.reason = reason


# ------------------------------------------------------------------------------------------- maths


def mul_div_down(x: int, y: int, d: int) -> int:
    """``MathLib.mulDivDown``."""
    return x * y // d


def mul_div_up(x: int, y: int, d: int) -> int:
    """``MathLib.mulDivUp``."""
    return (x * y + (d - 1)) // d


def w_mul_down(x: int, y: int) -> int:
    """``MathLib.wMulDown``."""
    return mul_div_down(x, y, WAD)


def w_div_down(x: int, y: int) -> int:
    """``MathLib.wDivDown``."""
    return mul_div_down(x, WAD, y)


def w_div_up(x: int, y: int) -> int:
    """``MathLib.wDivUp``."""
    return mul_div_up(x, WAD, y)


def w_taylor_compounded(x: int, n: int) -> int:
    """``MathLib.wTaylorCompounded``: e^(x·n) − 1 to the third term, in wad."""
    first = x * n
    second = mul_div_down(first, first, 2 * WAD)
    third = mul_div_down(second, first, 3 * WAD)
    return first + second + third


def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toSharesDown``."""
    return mul_div_down(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toAssetsDown``."""
    return mul_div_down(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def to_shares_up(assets: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toSharesUp``."""
    return mul_div_up(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toAssetsUp``."""
    return mul_div_up(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def liquidation_incentive_factor(lltv: int) -> int:
    """The LIF of a market with this LLTV (wad): 1/(1 − 0.3·(1 − lltv)), at most 1.15."""
    return min(
        MAX_LIQUIDATION_INCENTIVE_FACTOR,
        w_div_down(WAD, WAD - w_mul_down(LIQUIDATION_CURSOR, WAD - lltv)),
    )


def oracle_price(scale_factor: int, base_answer: int, quote_answer: int) -> int:
    """A Chainlink-style Morpho oracle's ``price()``: ``SCALE_FACTOR · base / quote``, rounded down."""
    return mul_div_down(scale_factor, base_answer, quote_answer)


def scale_factor(
    collateral_decimals: int, loan_decimals: int, base_feed_decimals: int = 8, quote_feed_decimals: int = 8
) -> int:
    """The ``SCALE_FACTOR`` that makes :func:`oracle_price` loan units per collateral unit × 1e36."""
    exponent = 36 + loan_decimals + quote_feed_decimals - collateral_decimals - base_feed_decimals
    factor: int = 10**exponent
    return factor


# ------------------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class MorphoMarket:
    """A market: its ``MarketParams`` (tokens as addresses, ``lltv`` in wad), decimals, and its ``Market``
    totals (``fee`` in wad, ``last_update`` a timestamp). ``id`` is the market's ``Id`` (0x + 64 hex)."""

    id: str
    loan_token: str
    collateral_token: str
    lltv: int
    loan_decimals: int
    collateral_decimals: int
    total_supply_assets: int = 0
    total_supply_shares: int = 0
    total_borrow_assets: int = 0
    total_borrow_shares: int = 0
    last_update: int = 0
    fee: int = 0
    oracle: str = ""
    irm: str = ""


@dataclass(frozen=True, slots=True)
class MorphoPosition:
    """A user's ``Position`` in one market."""

    supply_shares: int = 0
    borrow_shares: int = 0
    collateral: int = 0


@dataclass(frozen=True, slots=True)
class MorphoLiquidation:
    """One ``liquidate`` as the contract executes it: the ``Liquidate`` event's amounts (``repaid_assets``,
    ``repaid_shares``, ``seized_assets``, ``bad_debt_assets``, ``bad_debt_shares``), the LIF, and the
    market and position after the call."""

    repaid_assets: int
    repaid_shares: int
    seized_assets: int
    bad_debt_assets: int
    bad_debt_shares: int
    incentive_factor: int
    market: MorphoMarket
    position: MorphoPosition


def borrowed(market: MorphoMarket, position: MorphoPosition) -> int:
    """What the position owes, in loan-token units (rounded up, as the health check takes it)."""
    return to_assets_up(position.borrow_shares, market.total_borrow_assets, market.total_borrow_shares)


def max_borrow(market: MorphoMarket, position: MorphoPosition, price: int) -> int:
    """The most the position may owe at ``price`` (loan-token units)."""
    return w_mul_down(mul_div_down(position.collateral, price, ORACLE_PRICE_SCALE), market.lltv)


def is_healthy(market: MorphoMarket, position: MorphoPosition, price: int) -> bool:
    """``Morpho._isHealthy``: no borrow shares, or ``maxBorrow >= borrowed``."""
    if position.borrow_shares == 0:
        return True
    return max_borrow(market, position, price) >= borrowed(market, position)


def accrue_interest(market: MorphoMarket, borrow_rate: int, timestamp: int) -> tuple[MorphoMarket, int]:
    """The market after ``_accrueInterest`` at ``timestamp`` with the IRM's ``borrow_rate`` (wad per
    second), and the fee shares minted to the fee recipient."""
    elapsed = timestamp - market.last_update
    if elapsed <= 0:
        return market, 0
    interest = w_mul_down(market.total_borrow_assets, w_taylor_compounded(borrow_rate, elapsed))
    supply = market.total_supply_assets + interest
    fee_shares = 0
    if market.fee:
        fee_amount = w_mul_down(interest, market.fee)
        fee_shares = to_shares_down(fee_amount, supply - fee_amount, market.total_supply_shares)
    after = replace(
        market,
        total_borrow_assets=_u128(market.total_borrow_assets + interest),
        total_supply_assets=_u128(supply),
        total_supply_shares=market.total_supply_shares + fee_shares,
        last_update=timestamp,
    )
    return after, fee_shares


# ------------------------------------------------------------------------------------------- liquidate


def _u128(value: int) -> int:
    if value > UINT128_MAX:
        raise MorphoReverted(MAX_UINT128_EXCEEDED)
    return value


def _sub(value: int, amount: int) -> int:
    if amount > value:
        raise MorphoReverted(ARITHMETIC_UNDERFLOW)
    return value - amount


def liquidate(
    market: MorphoMarket,
    position: MorphoPosition,
    price: int,
    *,
    seized_assets: int = 0,
    repaid_shares: int = 0,
) -> MorphoLiquidation:
    """``Morpho.liquidate`` (interest already accrued) at the oracle's ``price``; raises
    :class:`MorphoReverted` where the contract reverts."""
    if (seized_assets == 0) == (repaid_shares == 0):
        raise MorphoReverted(INCONSISTENT_INPUT)
    if is_healthy(market, position, price):
        raise MorphoReverted(HEALTHY_POSITION)
    factor = liquidation_incentive_factor(market.lltv)
    assets, shares = market.total_borrow_assets, market.total_borrow_shares
    if seized_assets > 0:
        quoted = mul_div_up(seized_assets, price, ORACLE_PRICE_SCALE)
        repaid_shares = to_shares_up(w_div_up(quoted, factor), assets, shares)
    else:
        seized_assets = _seized_for(market, price, repaid_shares)
    repaid_assets = to_assets_up(repaid_shares, assets, shares)
    borrow_shares = _sub(position.borrow_shares, _u128(repaid_shares))
    shares = _sub(shares, repaid_shares)
    assets = max(assets - repaid_assets, 0)  # zeroFloorSub
    collateral = _sub(position.collateral, _u128(seized_assets))
    supply = market.total_supply_assets
    bad_shares = bad_assets = 0
    if collateral == 0:
        bad_shares = borrow_shares
        bad_assets = min(assets, to_assets_up(bad_shares, assets, shares))
        assets, supply, shares = assets - bad_assets, _sub(supply, bad_assets), shares - bad_shares
        borrow_shares = 0
    return MorphoLiquidation(
        repaid_assets=repaid_assets,
        repaid_shares=repaid_shares,
        seized_assets=seized_assets,
        bad_debt_assets=bad_assets,
        bad_debt_shares=bad_shares,
        incentive_factor=factor,
        market=replace(
            market, total_borrow_assets=assets, total_borrow_shares=shares, total_supply_assets=supply
        ),
        position=replace(position, borrow_shares=borrow_shares, collateral=collateral),
    )


def max_liquidation_args(market: MorphoMarket, position: MorphoPosition, price: int) -> tuple[int, int]:
    """``(seizedAssets, repaidShares)`` of the largest liquidation: every borrow share when the collateral
    covers what they seize, otherwise all the collateral (the rest of the debt becomes bad debt); where
    rounding makes all the collateral cost more shares than the position has, the most collateral that
    does not (found by bisection). Raises :class:`MorphoReverted` for a healthy position."""
    if is_healthy(market, position, price):
        raise MorphoReverted(HEALTHY_POSITION)
    if _seized_for(market, price, position.borrow_shares) <= position.collateral:
        return 0, position.borrow_shares
    if _shares_for(market, price, position.collateral) <= position.borrow_shares:
        return position.collateral, 0
    low, high = 0, position.collateral  # costs(low) fits, costs(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if _shares_for(market, price, middle) <= position.borrow_shares:
            low = middle
        else:
            high = middle
    if low == 0:
        raise MorphoReverted(ARITHMETIC_UNDERFLOW)
    return low, 0


def _seized_for(market: MorphoMarket, price: int, repaid_shares: int) -> int:
    factor = liquidation_incentive_factor(market.lltv)
    repaid = to_assets_down(repaid_shares, market.total_borrow_assets, market.total_borrow_shares)
    return mul_div_down(w_mul_down(repaid, factor), ORACLE_PRICE_SCALE, price)


def _shares_for(market: MorphoMarket, price: int, seized: int) -> int:
    quoted = mul_div_up(seized, price, ORACLE_PRICE_SCALE)
    factor = liquidation_incentive_factor(market.lltv)
    return to_shares_up(w_div_up(quoted, factor), market.total_borrow_assets, market.total_borrow_shares)


def liquidate_max(market: MorphoMarket, position: MorphoPosition, price: int) -> MorphoLiquidation:
    """The largest liquidation (:func:`max_liquidation_args`), executed."""
    seized, shares = max_liquidation_args(market, position, price)
    return liquidate(market, position, price, seized_assets=seized, repaid_shares=shares)
