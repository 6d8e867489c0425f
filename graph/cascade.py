"""A liquidation cascade on exact maths: Aave liquidations, Uniswap v3 sales, oracles that follow the pools.

    result = run_cascade(markets, pools, oracles, {WETH: Fraction(4, 5)})
    result.depth, result.rounds[0].liquidations, result.bad_debt

Inputs are data only (no database): per market the users' :class:`UserReserve` rows, the reserves'
:class:`ReserveTerms` and the rule set; the DEX pools as :class:`Pool` objects keyed by their
``(token0, token1)`` pair; an :class:`OracleModel` per asset; a shock of multiplicative price moves.

What happens, in order:

1. The shock multiplies every shocked asset's oracle price (every oracle kind) and moves each pool holding
   a shocked asset to the shocked relative price by an exact swap up to that price (arbitrage against the
   market that moved), so pools and oracles agree again after the shock.
2. A round: every account of every market whose health factor (exact, at the oracle prices) is below 1,
   taken once per round, largest total debt (base currency) first, ties by market name then user. Its
   debt asset is its largest debt, its collateral its largest collateral (base currency; ties by asset).
   The amount is :func:`max_debt_to_cover` (the largest that does not revert). It is liquidated only if
   :func:`worth_liquidating` says selling the seized collateral on the collateral/debt pool (an exact-in
   quote at the pool's state at that moment) beats the debt repaid plus gas; the collateral is then sold
   at once, moving the pool before the next account is looked at.
3. After the round, each ``feed`` oracle takes the pool-implied price when it deviates from its answer by
   more than the threshold, or when the heartbeat has elapsed since its last update (a round lasts
   ``round_seconds``); a ``mixed`` one (the devnet's ``--feedback`` feeds) publishes a geometric mix of
   its shocked price and the pool's when it moved by the threshold or more; a ``fixed`` oracle keeps its
   shocked price.
4. Repeat until a round liquidates nobody or ``max_rounds`` rounds have run.

One liquidator acts, sells everything it seizes immediately into the one pool between the two assets,
and pays ``gas_cost_usd`` (base currency, 8 decimals) per liquidation. An account with no pool to sell its
collateral into, a sale the pool cannot fill, or a call that would revert is left alone. v3.0 eMode
category price sources are not modelled (a category with a price raises :class:`CascadeInputError`).

Bad debt per (market, asset): the 3.3 deficits the liquidations realised, plus, at the end, the debt of
every account with no collateral left (3.0 leaves it on the books).

Morpho Blue markets (:class:`MorphoBook`, given among ``markets``) take part in the same rounds: a position
is liquidatable when :func:`graph.morpho.is_healthy` fails at its oracle's price, which is the ratio of the
cascade's collateral and loan-token feeds (``SCALE_FACTOR · collateral / loan``), so the shock and the
feeds that follow the pools move both protocols. Its place in the round's order is its debt
(``toAssetsUp(borrowShares)``) at the loan token's feed price, among Aave's accounts by the same key. The
liquidator sends the largest ``liquidate`` (:func:`graph.morpho.liquidate_max`: every borrow share, or all
the collateral when that does not cover them), keeps it under the same profit test, and sells the seized
collateral on the same pool. The bad debt Morpho realises when the collateral reaches 0 counts as a
deficit of the loan token; liquidations carry their ``protocol``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Literal

from graph.cascade_screen import MorphoScreen, Screen, emodes_of
from graph.errors import GraphError
from graph.liquidation import (
    Liquidation,
    LiquidationReverted,
    ReserveTerms,
    Rules,
    liquidate,
    market_terms,
    max_debt_to_cover,
    worth_liquidating,
)
from graph.morpho import (
    MorphoMarket,
    MorphoPosition,
    MorphoReverted,
    accrue_interest,
    borrowed,
    is_healthy,
    liquidate_max,
    oracle_price,
)
from graph.univ3 import MAX_SQRT_RATIO, MIN_SQRT_RATIO, UniswapMathError
from graph.univ3_pool import Pool, SwapOutcome
from indexer.lending.positions import MarketState
from indexer.protocols.aave_math import (
    HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
    EModeCategory,
    UserReserve,
    collateral_base,
    debt_base,
    normalized_debt,
    ray_mul,
    user_account_data,
)

PoolKey = tuple[str, str]
Protocol = Literal["aave_v3", "morpho_blue"]
OracleKind = Literal["feed", "fixed", "mixed"]
Shock = Mapping[str, Fraction | int | float]

# An exact-in amount no pool can absorb, so an arbitrage swap always stops at its price limit.
_UNBOUNDED_IN = 1 << 200
_Q192 = 1 << 192


class CascadeInputError(GraphError, ValueError):
    """Cascade inputs that do not fit together: an oracle without a pool, a bad shock, a missing price, …"""


@dataclass(frozen=True, slots=True)
class OracleModel:
    """One asset's oracle: its answer (USD, 8 decimals) and how it moves.

    ``fixed`` moves only with the shock. ``feed`` (Chainlink-style) also takes the price implied by the pool
    between this asset and ``quote`` (valued at the quote's own oracle price) whenever it deviates by more
    than ``deviation_bps`` or ``heartbeat_s`` has elapsed since its last update.

    ``mixed`` is what the devnet's feeds publish with ``--feedback``: the geometric mix
    ``market ** (1 - feedback) * pool ** feedback``, rounded, of the market's price (the shocked price,
    which holds while the cascade runs) and the pool's (the devnet's floating-point reading of the pool,
    the quote at its oracle price), whenever it has moved by ``deviation_bps`` or more from the answer, or at
    the heartbeat. Its arithmetic is the devnet's, in floats, so that both publish the same integers.
    """

    price: int
    kind: OracleKind = "fixed"
    quote: str | None = None
    deviation_bps: int = 50
    heartbeat_s: int = 3_600
    feedback: float = 1.0


@dataclass(frozen=True, slots=True)
class LendingMarket:
    """One lending market's book: per user the reserves (``price`` is replaced by the oracle's), the
    reserves' bonus and fee, the rule set, and per user in eMode its category and liquidation bonus."""

    name: str
    rules: Rules
    positions: Mapping[str, Sequence[UserReserve]]
    terms: Mapping[str, ReserveTerms]
    emodes: Mapping[str, tuple[EModeCategory, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MorphoBook:
    """One Morpho Blue market's book: the market (params and totals), every borrower's position, and its
    oracle's ``SCALE_FACTOR``: the oracle prices the collateral as ``scale_factor · collateral feed / loan
    feed`` (rounded down), the two feeds being the cascade's oracles of the two tokens, so one feed model
    drives both protocols. ``borrow_rate`` (wad per second, the IRM's) accrues the interest from the
    market's ``last_update`` to ``timestamp`` once, before the shock, as the first call on the market
    would; the rate is then held, as Aave's indices are."""

    market: MorphoMarket
    positions: Mapping[str, MorphoPosition]
    scale_factor: int
    borrow_rate: int = 0
    timestamp: int = 0


@dataclass(frozen=True, slots=True)
class CascadeLiquidation:
    """One liquidation of the cascade; amounts in the assets' units, ``*_usd`` in base currency at the
    oracle prices of the moment; ``proceeds`` is the debt asset the sale of the collateral brought."""

    round: int
    market: str
    user: str
    collateral_asset: str
    debt_asset: str
    debt_repaid: int
    collateral_seized: int
    protocol_fee: int
    debt_repaid_usd: int
    collateral_seized_usd: int
    proceeds: int
    deficits: tuple[tuple[str, int], ...]
    protocol: Protocol = "aave_v3"


@dataclass(frozen=True, slots=True)
class CascadeRound:
    """A round: its liquidations in order, collateral sold per pool and asset, oracle prices after it."""

    index: int
    liquidations: tuple[CascadeLiquidation, ...]
    sold: dict[tuple[PoolKey, str], int]
    oracle_prices: dict[str, int]


@dataclass(frozen=True, slots=True)
class CascadeResult:
    """Every round with a liquidation, the final state and the bad debt per (market, asset)."""

    rounds: tuple[CascadeRound, ...]
    pool_prices: dict[PoolKey, int]  # sqrtPriceX96
    oracle_prices: dict[str, int]
    positions: dict[str, dict[str, tuple[UserReserve, ...]]]
    bad_debt: dict[tuple[str, str], int]
    bad_debt_by_user: dict[tuple[str, str, str], int]  # (market, user, asset) → amount
    morpho: dict[str, MorphoBook] = field(default_factory=dict)  # by market id, after the cascade
    protocols: dict[str, Protocol] = field(default_factory=dict)  # market → its protocol

    @property
    def depth(self) -> int:
        """Rounds in which at least one liquidation happened."""
        return len(self.rounds)

    def bad_debt_by_protocol(self) -> dict[tuple[Protocol, str], int]:
        """Bad debt per (protocol, asset)."""
        found: dict[tuple[Protocol, str], int] = {}
        for (market, asset), amount in self.bad_debt.items():
            key = (self.protocols.get(market, "aave_v3"), asset)
            found[key] = found.get(key, 0) + amount
        return dict(sorted(found.items()))


@dataclass
class _Feed:
    model: OracleModel
    price: int
    since_update: int = 0
    market: int = 0  # the price outside the pools (the shocked one), which a ``mixed`` feed mixes in


@dataclass
class _State:
    markets: dict[str, LendingMarket]
    positions: dict[str, dict[str, dict[str, UserReserve]]]
    pools: dict[PoolKey, Pool]
    feeds: dict[str, _Feed]
    decimals: dict[str, int]
    screen: Screen
    morpho: dict[str, MorphoBook] = field(default_factory=dict)  # markets as they stand
    morpho_positions: dict[str, dict[str, MorphoPosition]] = field(default_factory=dict)
    morpho_screen: MorphoScreen = field(default_factory=lambda: MorphoScreen({}))
    deficits: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (market, user, asset)


# ------------------------------------------------------------------------------------------- inputs


def market_from_state(
    name: str, state: MarketState, *, rules: Rules, protocol_fees: Mapping[str, int]
) -> LendingMarket:
    """A :class:`LendingMarket` from an indexed :class:`MarketState` (every user, at the state's block)."""
    emodes: dict[str, tuple[EModeCategory, int]] = {}
    for user in state.users:
        category = state.emode(user)
        if category is not None:
            bonus = state.emode_categories[category.category_id].liquidation_bonus_bps
            emodes[user] = (category, bonus)
    return LendingMarket(
        name=name,
        rules=rules,
        positions={user: tuple(state.user_reserves(user)) for user in state.users},
        terms=market_terms(state, protocol_fees),
        emodes=emodes,
    )


def _fraction(asset: str, value: Fraction | int | float) -> Fraction:
    # Floats through their decimal text, so a shock of 0.8 is exactly 4/5.
    factor = Fraction(str(value)) if isinstance(value, float) else Fraction(value)
    if factor <= 0:
        raise CascadeInputError(f"shock for {asset}: expected a positive factor, got {value!r}")
    return factor


def _check_markets(markets: Sequence[LendingMarket]) -> dict[str, LendingMarket]:
    by_name: dict[str, LendingMarket] = {}
    for market in markets:
        if market.name in by_name:
            raise CascadeInputError(f"market {market.name!r} given twice")
        for user, (category, _) in market.emodes.items():
            if category.price != 0:
                raise CascadeInputError(f"{market.name} {user}: eMode price sources are not modelled")
        by_name[market.name] = market
    return by_name


def _decimals(markets: Sequence[LendingMarket], morpho: Sequence[MorphoBook] = ()) -> dict[str, int]:
    found = {
        reserve.asset: reserve.decimals
        for market in markets
        for reserves in market.positions.values()
        for reserve in reserves
    }
    for book in morpho:
        found[book.market.loan_token] = book.market.loan_decimals
        found[book.market.collateral_token] = book.market.collateral_decimals
    return found


def _check_morpho(morpho: Sequence[MorphoBook], aave: Mapping[str, LendingMarket]) -> dict[str, MorphoBook]:
    by_id: dict[str, MorphoBook] = {}
    for book in morpho:
        name = book.market.id
        if name in by_id or name in aave:
            raise CascadeInputError(f"market {name!r} given twice")
        if book.scale_factor <= 0 or not 0 < book.market.lltv < 10**18:
            raise CascadeInputError(
                f"Morpho market {name}: expected a positive scale factor and 0 < lltv < 1e18"
            )
        by_id[name] = book
    return by_id


def _check_oracles(
    oracles: Mapping[str, OracleModel], pools: Mapping[PoolKey, Pool], decimals: Mapping[str, int]
) -> None:
    for asset in sorted(decimals):
        if asset not in oracles:
            raise CascadeInputError(f"no oracle for {asset}")
    for asset, model in sorted(oracles.items()):
        if model.price <= 0:
            raise CascadeInputError(f"oracle {asset}: expected a positive price, got {model.price}")
        if model.kind == "fixed":
            continue
        if not 0 <= model.feedback <= 1:
            raise CascadeInputError(f"oracle {asset}: feedback is a weight in [0, 1], got {model.feedback}")
        if model.kind not in ("feed", "mixed") or model.quote is None or model.quote not in oracles:
            raise CascadeInputError(f"oracle {asset}: a feed needs a quote asset that has an oracle")
        if _pool_key(pools, asset, model.quote) is None:
            raise CascadeInputError(f"oracle {asset}: no pool between {asset} and {model.quote}")
        if asset not in decimals or model.quote not in decimals:
            raise CascadeInputError(f"oracle {asset}: decimals of {asset} and {model.quote} unknown")


def _pool_key(pools: Mapping[PoolKey, Pool], a: str, b: str) -> PoolKey | None:
    for key in ((a, b), (b, a)):
        if key in pools:
            return key
    return None


# ------------------------------------------------------------------------------------------- pools


def _swap_to(pool: Pool, target: int) -> None:
    """Move the pool to ``target`` (sqrtPriceX96) by an exact-in swap limited at that price."""
    target = min(max(target, MIN_SQRT_RATIO + 1), MAX_SQRT_RATIO - 1)
    if target == pool.sqrt_price:
        return
    pool.apply(pool.quote(target < pool.sqrt_price, _UNBOUNDED_IN, target))


def _align_pools(pools: Mapping[PoolKey, Pool], factors: Mapping[str, Fraction]) -> None:
    # token1 per token0 scales by f0 / f1, so sqrtPrice scales by its square root.
    for (token0, token1), pool in sorted(pools.items()):
        ratio = factors.get(token0, Fraction(1)) / factors.get(token1, Fraction(1))
        if ratio != 1:
            _swap_to(pool, math.isqrt(pool.sqrt_price**2 * ratio.numerator // ratio.denominator))


def _sell_quote(pool: Pool, key: PoolKey, asset: str, amount: int) -> SwapOutcome | None:
    """The exact-in sale of ``amount`` of ``asset``; None when the pool cannot take all of it."""
    if amount <= 0:
        return None
    zero_for_one = key[0] == asset
    try:
        outcome = pool.quote(zero_for_one, amount)
    except UniswapMathError:
        return None
    taken = outcome.amount0 if zero_for_one else outcome.amount1
    return outcome if taken == amount else None


def _proceeds(outcome: SwapOutcome, key: PoolKey, asset: str) -> int:
    return -(outcome.amount1 if key[0] == asset else outcome.amount0)


# ------------------------------------------------------------------------------------------- oracles


def _implied_price(state: _State, asset: str, quote: str) -> int:
    """The pool's price of ``asset`` in USD (8 decimals), valuing ``quote`` at its oracle price."""
    key = _pool_key(state.pools, asset, quote)
    assert key is not None  # checked with the inputs
    square = state.pools[key].sqrt_price ** 2
    scale = _unit(state.decimals[asset]) * state.feeds[quote].price
    if key[0] == asset:
        return square * scale // (_Q192 * _unit(state.decimals[quote]))
    return _Q192 * scale // (square * _unit(state.decimals[quote]))


def _pool_reading(state: _State, asset: str, quote: str) -> float:
    """The devnet's floating-point reading of the pool: quote per asset (decimals applied) times the
    quote's oracle price; the same operations in the same order as ``devnet.uniswap.Uniswap.price``."""
    key = _pool_key(state.pools, asset, quote)
    assert key is not None  # checked with the inputs
    sqrt_price = state.pools[key].sqrt_price
    raw = sqrt_price * sqrt_price / _Q192
    price01 = float(raw * 10 ** (state.decimals[key[0]] - state.decimals[key[1]]))
    per_unit = price01 if key[0] == asset else 1 / price01
    return per_unit * float(state.feeds[quote].price)


def _mixed(feed: _Feed, pool: float) -> int:
    mixed: float = feed.market ** (1 - feed.model.feedback) * pool**feed.model.feedback
    return round(mixed)


def _moves(feed: _Feed, price: int) -> bool:
    if feed.model.kind == "mixed":  # the devnet's test, in floats, at the threshold or beyond
        return abs(price / feed.price - 1) >= feed.model.deviation_bps / 10_000
    return abs(price - feed.price) * 10_000 > feed.model.deviation_bps * feed.price


def _update_feeds(state: _State, round_seconds: int) -> None:
    # Every feed reads the pools at the end of the round, before any of them moves.
    implied = {}
    for asset, feed in sorted(state.feeds.items()):
        if feed.model.quote is None or feed.model.kind == "fixed":
            continue
        if feed.model.kind == "mixed":
            implied[asset] = _mixed(feed, _pool_reading(state, asset, feed.model.quote))
        else:
            implied[asset] = _implied_price(state, asset, feed.model.quote)
    for asset, price in implied.items():
        feed = state.feeds[asset]
        feed.since_update += round_seconds
        if _moves(feed, price) or feed.since_update >= feed.model.heartbeat_s:
            feed.price, feed.since_update = price, 0


def _oracle_prices(state: _State) -> dict[str, int]:
    return {asset: feed.price for asset, feed in sorted(state.feeds.items())}


# ------------------------------------------------------------------------------------------- accounts


def _priced(state: _State, reserves: Mapping[str, UserReserve]) -> list[UserReserve]:
    return [replace(r, price=state.feeds[r.asset].price) for _, r in sorted(reserves.items())]


def _emode(market: LendingMarket, user: str) -> tuple[EModeCategory | None, int]:
    category, bonus = market.emodes.get(user, (None, 0))
    return category, bonus


def _liquidatable(state: _State) -> list[tuple[int, str, str]]:
    """(total debt in base, market, user) of every account below HF 1, in the round's order; exact, on
    the accounts the float screen cannot clear (graph.cascade_screen)."""
    found = []
    for name, user in state.screen.candidates(_oracle_prices(state)):
        reserves = state.positions[name][user]
        account = user_account_data(_priced(state, reserves), "3.0", _emode(state.markets[name], user)[0])
        if account.health_factor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
            found.append((account.total_debt_base, name, user))
    found += _morpho_liquidatable(state)
    return sorted(found, key=lambda item: (-item[0], item[1], item[2]))


def _morpho_price(state: _State, market: MorphoMarket, scale: int) -> int:
    """The market oracle's ``price()``: the ratio of the collateral's and the loan token's feeds."""
    return oracle_price(
        scale, state.feeds[market.collateral_token].price, state.feeds[market.loan_token].price
    )


def _morpho_liquidatable(state: _State) -> list[tuple[int, str, str]]:
    """(debt in base currency at the loan token's feed, market id, user) of every unhealthy position."""
    found = []
    for name, book in sorted(state.morpho.items()):
        market = book.market
        price = _morpho_price(state, market, book.scale_factor)
        loan_price, unit = state.feeds[market.loan_token].price, _unit(market.loan_decimals)
        for user in state.morpho_screen.candidates(market, price):
            position = state.morpho_positions[name][user]
            if not is_healthy(market, position, price):
                found.append((borrowed(market, position) * loan_price // unit, name, user))
    return found


def _pair(reserves: Sequence[UserReserve]) -> tuple[str, str] | None:
    """The largest collateral and the largest debt (base currency; ties by asset)."""
    collateral = [
        (-collateral_base(r, r.price), r.asset)
        for r in reserves
        if r.usage_as_collateral_enabled and r.liquidation_threshold_bps and r.scaled_atoken_balance
    ]
    debts = [(-debt_base(r, r.price), r.asset) for r in reserves if r.scaled_vdebt_balance]
    if not collateral or not debts:
        return None
    return min(collateral)[1], min(debts)[1]


def _apply(reserves: dict[str, UserReserve], collateral: str, debt: str, outcome: Liquidation) -> None:
    """The user's reserves after the call: balances, the collateral flag, 3.3 deficits burned."""
    coll = reserves[collateral]
    reserves[collateral] = replace(
        coll,
        scaled_atoken_balance=outcome.scaled_collateral_after,
        usage_as_collateral_enabled=coll.usage_as_collateral_enabled and not outcome.collateral_disabled,
    )
    reserves[debt] = replace(reserves[debt], scaled_vdebt_balance=outcome.scaled_debt_after)
    for asset, _ in outcome.deficits:
        reserves[asset] = replace(reserves[asset], scaled_vdebt_balance=0)


# ------------------------------------------------------------------------------------------- rounds


@dataclass(frozen=True, slots=True)
class _Costs:
    gas_cost_usd: int
    min_profit_usd: int


def _unit(decimals: int) -> int:
    unit: int = 10**decimals
    return unit


def _to_units(usd: int, price: int, decimals: int) -> int:
    return usd * _unit(decimals) // price


def _try_liquidate(
    state: _State, name: str, user: str, costs: _Costs, index: int, sold: dict[tuple[PoolKey, str], int]
) -> CascadeLiquidation | None:
    market, reserves = state.markets[name], state.positions[name][user]
    priced = _priced(state, reserves)
    pair = _pair(priced)
    if pair is None:
        return None
    collateral, debt = pair
    key = _pool_key(state.pools, collateral, debt)
    if key is None:
        return None
    emode, bonus = _emode(market, user)
    try:
        amount = max_debt_to_cover(
            priced, collateral, debt, market.terms, rules=market.rules, emode=emode, emode_bonus_bps=bonus
        )
        outcome = liquidate(
            priced, collateral, debt, amount, market.terms,
            rules=market.rules, emode=emode, emode_bonus_bps=bonus,
        )  # fmt: skip
    except LiquidationReverted:
        return None
    pool = state.pools[key]
    sale = _sell_quote(pool, key, collateral, outcome.collateral_to_liquidator)
    debt_price, debt_decimals = state.feeds[debt].price, state.decimals[debt]
    if sale is None or not worth_liquidating(
        outcome,
        _proceeds(sale, key, collateral),
        _to_units(costs.gas_cost_usd, debt_price, debt_decimals),
        _to_units(costs.min_profit_usd, debt_price, debt_decimals),
    ):
        return None
    pool.apply(sale)
    sold[(key, collateral)] = sold.get((key, collateral), 0) + outcome.collateral_to_liquidator
    _apply(reserves, collateral, debt, outcome)
    state.screen.update(name, user, reserves)
    for asset, amount_burned in outcome.deficits:
        where = (name, user, asset)
        state.deficits[where] = state.deficits.get(where, 0) + amount_burned
    return _record(state, index, name, user, (collateral, debt), outcome, _proceeds(sale, key, collateral))


def _try_morpho(
    state: _State, name: str, user: str, costs: _Costs, index: int, sold: dict[tuple[PoolKey, str], int]
) -> CascadeLiquidation | None:
    """The largest ``liquidate`` of the position (:func:`graph.morpho.liquidate_max`), kept when selling
    the collateral seized on the collateral/loan pool beats the assets repaid plus gas, as for Aave."""
    book = state.morpho[name]
    market = book.market
    collateral, loan = market.collateral_token, market.loan_token
    key = _pool_key(state.pools, collateral, loan)
    if key is None:
        return None
    try:
        outcome = liquidate_max(
            market, state.morpho_positions[name][user], _morpho_price(state, market, book.scale_factor)
        )
    except MorphoReverted:
        return None
    pool = state.pools[key]
    sale = _sell_quote(pool, key, collateral, outcome.seized_assets)
    loan_price, collateral_price = state.feeds[loan].price, state.feeds[collateral].price
    gas = _to_units(costs.gas_cost_usd, loan_price, market.loan_decimals)
    floor = _to_units(costs.min_profit_usd, loan_price, market.loan_decimals)
    if sale is None or _proceeds(sale, key, collateral) - outcome.repaid_assets - gas <= floor:
        return None
    pool.apply(sale)
    sold[(key, collateral)] = sold.get((key, collateral), 0) + outcome.seized_assets
    state.morpho[name] = replace(book, market=outcome.market)
    state.morpho_positions[name][user] = outcome.position
    state.morpho_screen.update(name, user, outcome.position)
    deficits: tuple[tuple[str, int], ...] = ()
    if outcome.bad_debt_assets:
        deficits = ((loan, outcome.bad_debt_assets),)
        where = (name, user, loan)
        state.deficits[where] = state.deficits.get(where, 0) + outcome.bad_debt_assets
    return CascadeLiquidation(
        round=index,
        market=name,
        user=user,
        collateral_asset=collateral,
        debt_asset=loan,
        debt_repaid=outcome.repaid_assets,
        collateral_seized=outcome.seized_assets,
        protocol_fee=0,
        debt_repaid_usd=outcome.repaid_assets * loan_price // _unit(market.loan_decimals),
        collateral_seized_usd=outcome.seized_assets * collateral_price // _unit(market.collateral_decimals),
        proceeds=_proceeds(sale, key, collateral),
        deficits=deficits,
        protocol="morpho_blue",
    )


def _record(
    state: _State,
    index: int,
    name: str,
    user: str,
    pair: tuple[str, str],
    outcome: Liquidation,
    proceeds: int,
) -> CascadeLiquidation:
    collateral, debt = pair
    seized = outcome.collateral_to_liquidator + outcome.protocol_fee
    return CascadeLiquidation(
        round=index,
        market=name,
        user=user,
        collateral_asset=collateral,
        debt_asset=debt,
        debt_repaid=outcome.debt_repaid,
        collateral_seized=outcome.collateral_to_liquidator,
        protocol_fee=outcome.protocol_fee,
        debt_repaid_usd=outcome.debt_repaid * outcome.debt_price // _unit(state.decimals[debt]),
        collateral_seized_usd=seized * outcome.collateral_price // _unit(state.decimals[collateral]),
        proceeds=proceeds,
        deficits=outcome.deficits,
    )


def _round(state: _State, index: int, costs: _Costs, round_seconds: int) -> CascadeRound:
    sold: dict[tuple[PoolKey, str], int] = {}
    done = []
    for _, name, user in _liquidatable(state):
        attempt = _try_morpho if name in state.morpho else _try_liquidate
        found = attempt(state, name, user, costs, index, sold)
        if found is not None:
            done.append(found)
    _update_feeds(state, round_seconds)
    return CascadeRound(index, tuple(done), sold, _oracle_prices(state))


def _debt_balance(reserve: UserReserve) -> int:
    index = normalized_debt(
        reserve.variable_borrow_index,
        reserve.variable_borrow_rate,
        reserve.last_update_timestamp,
        reserve.now_timestamp,
    )
    return ray_mul(reserve.scaled_vdebt_balance, index)


def _bad_debt(state: _State) -> dict[tuple[str, str, str], int]:
    """Realised deficits plus the debt of accounts with no collateral left, per (market, user, asset)."""
    found = dict(state.deficits)
    for name, user in state.screen.maybe_without_collateral(_oracle_prices(state)):
        priced = _priced(state, state.positions[name][user])
        if any(collateral_base(r, r.price) for r in priced if r.usage_as_collateral_enabled):
            continue
        for reserve in priced:
            owed = _debt_balance(reserve)
            if owed:
                found[(name, user, reserve.asset)] = found.get((name, user, reserve.asset), 0) + owed
    for name, book in state.morpho.items():  # no collateral left, but not liquidated (it did not pay)
        for user, position in state.morpho_positions[name].items():
            owed = borrowed(book.market, position) if position.collateral == 0 else 0
            if owed:
                where = (name, user, book.market.loan_token)
                found[where] = found.get(where, 0) + owed
    return dict(sorted(found.items()))


def _per_asset(by_user: Mapping[tuple[str, str, str], int]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for (market, _, asset), amount in by_user.items():
        found[(market, asset)] = found.get((market, asset), 0) + amount
    return dict(sorted(found.items()))


# ------------------------------------------------------------------------------------------- public


def run_cascade(
    markets: Sequence[LendingMarket | MorphoBook],
    pools: Mapping[PoolKey, Pool],
    oracles: Mapping[str, OracleModel],
    shock: Shock,
    *,
    max_rounds: int = 20,
    round_seconds: int = 12,
    gas_cost_usd: int = 0,
    min_profit_usd: int = 0,
) -> CascadeResult:
    """Run the cascade the module docstring describes; inputs are copied, never changed.

    ``markets`` holds Aave markets and Morpho Blue books (:class:`MorphoBook`): both are liquidated in the
    same rounds, on the same feeds and pools.

    ``gas_cost_usd`` and ``min_profit_usd`` are per liquidation in base currency (USD, 8 decimals),
    converted to the debt asset at its oracle price. Raises :class:`CascadeInputError` on inputs that do
    not fit together.
    """
    if max_rounds < 0 or round_seconds < 0 or gas_cost_usd < 0:
        raise CascadeInputError("max_rounds, round_seconds and gas_cost_usd must not be negative")
    morpho = [m for m in markets if isinstance(m, MorphoBook)]
    aave = [m for m in markets if isinstance(m, LendingMarket)]
    by_name = _check_markets(aave)
    books = _check_morpho(morpho, by_name)
    decimals = _decimals(aave, morpho)
    _check_oracles(oracles, pools, decimals)
    factors = {asset: _fraction(asset, value) for asset, value in sorted(shock.items())}
    for asset in factors:
        if asset not in oracles:
            raise CascadeInputError(f"shock for {asset}: the asset has no oracle")
    positions = {m.name: {user: {r.asset: r for r in rs} for user, rs in m.positions.items()} for m in aave}
    state = _State(
        markets=by_name,
        positions=positions,
        pools=copy.deepcopy(dict(pools)),
        feeds={a: _feed(m, _shocked(m.price, factors.get(a))) for a, m in oracles.items()},
        decimals=decimals,
        screen=Screen(positions, emodes_of([(m.name, m.emodes) for m in aave]), decimals),
        morpho={name: _accrued(book) for name, book in books.items()},
        morpho_positions={name: dict(book.positions) for name, book in books.items()},
        morpho_screen=MorphoScreen({name: book.positions for name, book in books.items()}),
    )
    _align_pools(state.pools, factors)
    rounds = []
    for index in range(1, max_rounds + 1):
        done = _round(state, index, _Costs(gas_cost_usd, min_profit_usd), round_seconds)
        if not done.liquidations:
            break
        rounds.append(done)
    by_user = _bad_debt(state)
    return CascadeResult(
        rounds=tuple(rounds),
        pool_prices={key: pool.sqrt_price for key, pool in sorted(state.pools.items())},
        oracle_prices=_oracle_prices(state),
        positions={
            name: {user: tuple(_priced(state, rs)) for user, rs in sorted(users.items())}
            for name, users in sorted(state.positions.items())
        },
        bad_debt=_per_asset(by_user),
        bad_debt_by_user=by_user,
        morpho={
            name: replace(book, positions=dict(sorted(state.morpho_positions[name].items())))
            for name, book in sorted(state.morpho.items())
        },
        protocols={**{m.name: "aave_v3" for m in aave}, **{name: "morpho_blue" for name in books}},
    )


def _accrued(book: MorphoBook) -> MorphoBook:
    market, _ = accrue_interest(book.market, book.borrow_rate, book.timestamp)
    return replace(book, market=market)


def _feed(model: OracleModel, shocked: int) -> _Feed:
    return _Feed(model, shocked, market=shocked)


def _shocked(price: int, factor: Fraction | None) -> int:
    if factor is None:
        return price
    return price * factor.numerator // factor.denominator
