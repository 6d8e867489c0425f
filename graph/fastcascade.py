"""The liquidation cascade for many scenarios at once: float64 arrays over (scenarios × accounts).

    fast = FastCascade.build(markets, pools, oracles)
    outcomes = fast.run([WETH, WBTC], factors)          # factors: (scenarios, 2) price multipliers
    outcomes.bad_debt_usd, outcomes.depth, replay_worst(outcomes, 10)

Same inputs and, as far as floats allow, the same semantics as :func:`graph.cascade.run_cascade`: the
shock moves both oracle kinds and puts every pool holding a shocked asset at the shocked relative price;
each round every account with HF < 1 is liquidated once against its largest collateral and largest debt
(base currency at the oracle prices; ties by asset address) for the largest amount that does not revert
(v3.0: 50 % of that reserve's debt, 100 % at HF ≤ 0.95; v3.3: 50 % of the total debt, 100 % at HF ≤ 0.95 or
under $2,000 of either reserve, with the $1,000 dust rule as a closed-form cap), the bonus, the protocol
fee on the bonus part and the cap at the collateral balance; v3.3 burns the remaining debt as a deficit
when the last collateral goes; the seized collateral is sold on the pool between the two assets; then
the feed oracles follow their pools (deviation or heartbeat); until a round liquidates nobody.

What differs from the exact path, on purpose:

- Floats, not the contracts' integers: amounts and prices are float64 (relative error ~1e-15), so an
  account whose exact HF lies within about 1e-12 of 1 may fall the other way.
- Pools are the LM-fitted curves of :mod:`graph.impact` (held-out errors in :class:`FitReport`, typically
  under 0.1 % at the median and 1 % at worst), not the exact swap loop.
- Within a round the exact path sells account by account (largest debt first), each sale moving the
  pool before the next account's ``worth_liquidating`` quote, so liquidators stop once the pool has
  fallen a bonus below the oracle. This order is kept, vectorised over scenarios: where every sale of a
  (scenario, pool) would pay even as the last one, they are made at once; elsewhere each sale's largest
  prior volume under which it still pays is found by bisection on the fitted curve, and one pass in
  order (step ``k`` = every scenario's ``k``-th sale) decides them all. Selling each round's sales as one
  aggregate instead, judged from the pool's state at the round's start, was measured first: it dumped
  up to 8× the exact path's volume in a round and stopped a 20-round cascade after 9 rounds with 28 % of
  its bad debt, so it is not used.
- The 3.3 dust rule is a closed-form bound instead of the bisection of ``max_debt_to_cover``.

Morpho Blue books (:class:`~graph.cascade.MorphoBook` among ``markets``) are accounts of the same book: a
position holds its collateral token and owes ``toAssetsUp(borrowShares)`` of the loan token (the market
accrued as the exact path accrues it); it is liquidatable when collateral × price × LLTV < debt at the
scenario's feed prices (the oracle is the ratio of the two feeds, times the scale); the bots' largest
``liquidate`` repays every share, or, when those would seize more than the collateral, seizes all of it
(at the LIF, no close factor, no fee) and the remaining debt is bad debt at once. Its place in the round's
order is its debt value, among Aave's accounts; its sale goes on the same fitted pool, so Morpho's sales
move the feeds Aave reads and Aave's move Morpho's. Beyond the floats, the exact path's rounding of
shares and of the oracle's price (1 in 1e36) is not kept, nor the bisection ``liquidate_max`` falls back
on when seizing all the collateral would cost one share more than the position holds.

The scenarios run in chunks sized to ``memory_bytes``; within a chunk all scenarios advance round by
round together (a scenario stops when a round of its own liquidates nobody). Accounts are the
(market, user) pairs with any debt; an account's balances are kept per scenario only once it is first
liquidated there (a sparse store), so memory grows with the liquidations, not with scenarios × accounts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from graph.cascade import CascadeInputError, LendingMarket, MorphoBook, OracleModel, PoolKey
from graph.impact import PoolCurves, fit_pool
from graph.liquidation import Rules
from graph.morpho import accrue_interest, borrowed, liquidation_incentive_factor
from graph.univ3_pool import Pool
from indexer.protocols.aave_math import normalized_debt, normalized_income, ray_mul

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

USD = 1e8  # oracle prices: USD with 8 decimals
CLOSE_FACTOR_HF = 0.95
MIN_BASE_MAX_CLOSE_FACTOR_USD = 2_000.0
MIN_LEFTOVER_USD = 1_000.0
DEFAULT_MEMORY_BYTES = 512 * 2**20
# Below a millionth of a dollar an account's collateral counts as none (the exact path floors base
# amounts to 1e-8 USD, so dust the float path leaves after a full seizure must not count).
DUST_USD = 1e-6
# Halvings of the prior-sale bound: 60 take the largest quoted size down to float resolution.
BISECTION_STEPS = 60


# ------------------------------------------------------------------------------------------- book


@dataclass(frozen=True)
class Book:
    """Accounts (market, user) with debt, as dense (accounts × assets) arrays in token units."""

    markets: tuple[str, ...]
    assets: tuple[str, ...]  # sorted by address, as the exact path breaks ties
    accounts: tuple[tuple[str, str], ...]
    market: IntArray  # account → market index
    rules33: BoolArray  # account → its market runs the 3.3 rules
    morpho: BoolArray  # account → a Morpho Blue position (no close factor; bad debt when collateral ends)
    collateral: FloatArray  # balances, token units
    debt: FloatArray
    counts: BoolArray  # collateral that counts (flag on, reserve LT ≠ 0, balance)
    enabled: BoolArray  # the collateral flag (bad debt: any enabled collateral left)
    threshold: FloatArray  # LT as a fraction, eMode applied; Morpho: the LLTV
    bonus: FloatArray  # liquidation bonus as a factor (1.05), eMode applied; Morpho: the LIF
    fee: FloatArray  # protocol fee on the bonus part, fraction, per account × asset
    decimals: Mapping[str, int]


def _balances(reserve: object) -> tuple[int, int]:
    from indexer.protocols.aave_math import UserReserve

    assert isinstance(reserve, UserReserve)
    income = normalized_income(
        reserve.liquidity_index, reserve.liquidity_rate, reserve.last_update_timestamp, reserve.now_timestamp
    )
    index = normalized_debt(
        reserve.variable_borrow_index,
        reserve.variable_borrow_rate,
        reserve.last_update_timestamp,
        reserve.now_timestamp,
    )
    return ray_mul(reserve.scaled_atoken_balance, income), ray_mul(reserve.scaled_vdebt_balance, index)


def build_book(markets: Sequence[LendingMarket | MorphoBook], decimals: Mapping[str, int]) -> Book:
    """The dense book of every account with debt, Aave's and Morpho's, in the order of (market, user) as
    the exact path breaks ties; eMode categories with a price source are refused."""
    assets = tuple(sorted(decimals))
    column = {a: j for j, a in enumerate(assets)}
    by_name = {_name(m): m for m in markets}
    names = tuple(sorted(by_name))
    rows: list[tuple[int, str, str]] = []
    for m, name in enumerate(names):
        market = by_name[name]
        for user in sorted(market.positions):
            if _owes(market, user):
                rows.append((m, name, user))
    shape = (len(rows), len(assets))
    arrays = {name: np.zeros(shape) for name in ("collateral", "debt", "threshold", "bonus", "fee")}
    flags = {name: np.zeros(shape, dtype=bool) for name in ("counts", "enabled")}
    for i, (_, name, user) in enumerate(rows):
        market = by_name[name]
        if isinstance(market, MorphoBook):
            _morpho_row(market, user, i, column, arrays | flags)
        else:
            _aave_row(market, user, i, column, arrays | flags)
    return Book(
        markets=names,
        assets=assets,
        accounts=tuple((name, user) for _, name, user in rows),
        market=np.array([m for m, _, _ in rows], dtype=np.int64),
        rules33=np.array([_rules(by_name[name]) == "3.3" for _, name, _ in rows], dtype=bool),
        morpho=np.array([isinstance(by_name[name], MorphoBook) for _, name, _ in rows], dtype=bool),
        collateral=arrays["collateral"],
        debt=arrays["debt"],
        counts=flags["counts"],
        enabled=flags["enabled"],
        threshold=arrays["threshold"],
        bonus=arrays["bonus"],
        fee=arrays["fee"],
        decimals=dict(decimals),
    )


def _decimals(markets: Sequence[LendingMarket | MorphoBook]) -> dict[str, int]:
    """Every asset a position holds; a Morpho book with borrowers brings its two tokens (one without any is
    left out: nothing of it can be liquidated)."""
    found: dict[str, int] = {}
    for m in markets:
        if isinstance(m, LendingMarket):
            found |= {r.asset: r.decimals for rs in m.positions.values() for r in rs}
        elif any(p.borrow_shares for p in m.positions.values()):
            if m.scale_factor <= 0 or not 0 < m.market.lltv < 10**18:
                raise CascadeInputError(
                    f"Morpho market {m.market.id}: expected a positive scale factor and 0 < lltv < 1e18"
                )
            found[m.market.loan_token] = m.market.loan_decimals
            found[m.market.collateral_token] = m.market.collateral_decimals
    return found


def _name(market: LendingMarket | MorphoBook) -> str:
    return market.market.id if isinstance(market, MorphoBook) else market.name


def _rules(market: LendingMarket | MorphoBook) -> str:
    return "morpho" if isinstance(market, MorphoBook) else market.rules


def _owes(market: LendingMarket | MorphoBook, user: str) -> bool:
    if isinstance(market, MorphoBook):
        return market.positions[user].borrow_shares > 0
    return any(r.scaled_vdebt_balance for r in market.positions[user])


def _aave_row(
    market: LendingMarket,
    user: str,
    i: int,
    column: Mapping[str, int],
    out: Mapping[str, NDArray[np.generic]],
) -> None:
    category, emode_bonus = market.emodes.get(user, (None, 0))
    if category is not None and category.price != 0:
        raise CascadeInputError(f"{market.name} {user}: eMode price sources are not modelled")
    for reserve in market.positions[user]:
        j, unit = column[reserve.asset], 10.0**reserve.decimals
        supplied, owed = _balances(reserve)
        in_category = category is not None and reserve.emode_category == category.category_id
        terms = market.terms.get(reserve.asset)
        out["collateral"][i, j], out["debt"][i, j] = supplied / unit, owed / unit
        out["counts"][i, j] = bool(
            reserve.usage_as_collateral_enabled and reserve.liquidation_threshold_bps and supplied
        )
        out["enabled"][i, j] = reserve.usage_as_collateral_enabled
        lt = category.liquidation_threshold_bps if category is not None and in_category else None
        out["threshold"][i, j] = (lt if lt is not None else reserve.liquidation_threshold_bps) / 1e4
        bonus = emode_bonus if in_category else (terms.liquidation_bonus_bps if terms else 10_000)
        out["bonus"][i, j] = bonus / 1e4
        out["fee"][i, j] = (terms.protocol_fee_bps if terms else 0) / 1e4


def _morpho_row(
    book: MorphoBook, user: str, i: int, column: Mapping[str, int], out: Mapping[str, NDArray[np.generic]]
) -> None:
    """A Morpho position: its collateral (LLTV as the threshold, the LIF as the bonus, no fee) and its debt,
    ``toAssetsUp(borrowShares)`` of the market accrued as the exact path accrues it."""
    market, _ = accrue_interest(book.market, book.borrow_rate, book.timestamp)
    position = book.positions[user]
    c, d = column[market.collateral_token], column[market.loan_token]
    out["collateral"][i, c] = position.collateral / 10.0**market.collateral_decimals
    out["debt"][i, d] = borrowed(market, position) / 10.0**market.loan_decimals
    out["counts"][i, c] = position.collateral > 0
    out["enabled"][i, c] = True
    # The oracle's price is scale · collateral feed / loan feed: a scale off the decimals' own (feeds of
    # 8 decimals) scales the price, so the health test's LLTV and the seizure's LIF by the same ratio.
    ratio = book.scale_factor / 10.0 ** (36 + market.loan_decimals - market.collateral_decimals)
    out["threshold"][i, c] = market.lltv / 1e18 * ratio
    out["bonus"][i, c] = liquidation_incentive_factor(market.lltv) / 1e18 / ratio


# ------------------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class FastOutcomes:
    """Per scenario: bad debt (USD, at the final oracle prices) in total, per market and per (market,
    asset); value liquidated (debt repaid, USD at the prices of the moment); depth; and every liquidation
    as (round, scenario, account, debt repaid in USD), ``accounts[account]`` naming the (market, user)."""

    markets: tuple[str, ...]
    assets: tuple[str, ...]
    accounts: tuple[tuple[str, str], ...]
    bad_debt_usd: FloatArray  # (scenarios,)
    bad_debt_by_market: FloatArray  # (scenarios, markets)
    bad_debt_by_market_asset: FloatArray  # (scenarios, markets, assets)
    liquidated_usd: FloatArray  # (scenarios,)
    depth: IntArray  # (scenarios,)
    liquidation_round: IntArray  # (liquidations,)
    liquidation_scenario: IntArray
    liquidation_account: IntArray
    liquidation_usd: FloatArray  # (liquidations,) debt repaid, USD at the prices of the moment
    oracle_prices: FloatArray  # (scenarios, assets), USD, after the last round
    # Every (scenario, account) that ends with bad debt, and how much (USD at the final oracle prices):
    # they sum to ``bad_debt_usd`` per scenario.
    bad_debt_scenario: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bad_debt_account: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bad_debt_account_usd: FloatArray = field(default_factory=lambda: np.zeros(0))

    def account_bad_debt(self) -> FloatArray:
        """(scenarios, accounts) bad debt, USD at the final oracle prices."""
        found = np.zeros((self.bad_debt_usd.size, len(self.accounts)))
        np.add.at(found, (self.bad_debt_scenario, self.bad_debt_account), self.bad_debt_account_usd)
        return found

    def liquidated_in_round(self, scenario: int, round_: int) -> list[tuple[str, str]]:
        """The (market, user) accounts liquidated in one round of one scenario."""
        hit = (self.liquidation_scenario == scenario) & (self.liquidation_round == round_)
        return sorted(self.accounts[int(i)] for i in self.liquidation_account[hit])


def replay_worst(outcomes: FastOutcomes, k: int) -> IntArray:
    """The ``k`` scenarios with the largest fast-path bad debt, largest first (ties: lower index first),
    for the exact path to run again."""
    order = np.lexsort((np.arange(outcomes.bad_debt_usd.size), -outcomes.bad_debt_usd))
    result: IntArray = order[: max(0, k)].astype(np.int64)
    return result


# ------------------------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class _Oracles:
    price: FloatArray  # (assets,) USD
    feed: BoolArray
    quote: IntArray  # asset index of the quote (feeds)
    pool: IntArray  # pool index (feeds)
    is_token0: BoolArray
    deviation: FloatArray  # fraction
    heartbeat: FloatArray  # seconds


@dataclass
class _Store:
    """Balances of (scenario, account) pairs once liquidated there; ``slot[s, i]`` → row or -1."""

    slot: NDArray[np.int32]
    scenario: IntArray
    account: IntArray
    collateral: FloatArray
    debt: FloatArray
    counts: BoolArray
    enabled: BoolArray
    burned: FloatArray  # debt burned as a deficit (v3.3 last collateral, Morpho), token units

    def add(self, book: Book, scenario: IntArray, account: IntArray) -> None:
        first = self.scenario.size
        self.slot[scenario, account] = np.arange(first, first + scenario.size, dtype=np.int32)
        self.scenario = np.concatenate([self.scenario, scenario])
        self.account = np.concatenate([self.account, account])
        self.collateral = np.concatenate([self.collateral, book.collateral[account]])
        self.debt = np.concatenate([self.debt, book.debt[account]])
        self.counts = np.concatenate([self.counts, book.counts[account]])
        self.enabled = np.concatenate([self.enabled, book.enabled[account]])
        self.burned = np.concatenate([self.burned, np.zeros((account.size, self.burned.shape[1]))])


@dataclass
class _Chunk:
    prices: FloatArray  # (S, assets)
    since: FloatArray  # (S, assets) seconds since the feed's last update
    u: FloatArray  # (S, pools)
    active: BoolArray
    moved: BoolArray  # a feed moved at the end of the last round
    store: _Store
    depth: IntArray
    liquidated: FloatArray
    deficit: FloatArray  # (S, markets, assets) token units
    events: list[tuple[IntArray, IntArray, IntArray, FloatArray]] = field(default_factory=list)


@dataclass(frozen=True)
class _Round:
    """One round's liquidations, one entry per liquidated (scenario, account) row of the store."""

    row: IntArray
    coll: IntArray
    debt: IntArray
    pool: IntArray
    zero_for_one: BoolArray
    repaid: FloatArray
    taken: FloatArray  # collateral leaving the user, fee included
    sold: FloatArray  # collateral to the liquidator


class FastCascade:
    """The vectorised cascade over one book, its pools (fitted once) and oracles; see the module."""

    def __init__(
        self,
        book: Book,
        curves: Sequence[PoolCurves],
        pool_keys: Sequence[PoolKey],
        oracles: _Oracles,
        *,
        max_rounds: int,
        round_seconds: int,
        gas_cost_usd: float,
        min_profit_usd: float,
        memory_bytes: int,
    ) -> None:
        self.book, self.curves, self.pool_keys, self.oracles = book, tuple(curves), tuple(pool_keys), oracles
        self.max_rounds, self.round_seconds = max_rounds, round_seconds
        self.gas_cost_usd, self.min_profit_usd = gas_cost_usd, min_profit_usd
        self.memory_bytes = memory_bytes
        n_assets = len(book.assets)
        column = {a: j for j, a in enumerate(book.assets)}
        self._pair_pool = np.full((n_assets, n_assets), -1, dtype=np.int64)
        self._token0 = np.zeros(len(pool_keys), dtype=np.int64)
        for p, (a, b) in enumerate(pool_keys):
            if a in column and b in column:
                self._pair_pool[column[a], column[b]] = self._pair_pool[column[b], column[a]] = p
            self._token0[p] = column.get(a, -1)
        self._unit = 10.0 ** np.array([book.decimals[a] for a in book.assets], dtype=np.float64)
        # Per account: the LT-weighted collateral minus the debt, per asset (margin = prices · this).
        self._margin = book.collateral * book.threshold * book.counts - book.debt
        no_collateral = ~(book.enabled & (book.collateral > 0)).any(axis=1)
        self._start_orphan: BoolArray = np.asarray(no_collateral, dtype=bool)
        self._orphan_debt = np.zeros((len(book.markets), n_assets))
        np.add.at(self._orphan_debt, book.market[no_collateral], book.debt[no_collateral])

    @classmethod
    def build(
        cls,
        markets: Sequence[LendingMarket | MorphoBook],
        pools: Mapping[PoolKey, Pool],
        oracles: Mapping[str, OracleModel],
        *,
        max_rounds: int = 20,
        round_seconds: int = 12,
        gas_cost_usd: int = 0,
        min_profit_usd: int = 0,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
    ) -> FastCascade:
        """Fit every pool between two assets of the book and lay the book out; the same inputs as
        :func:`graph.cascade.run_cascade` (``gas_cost_usd``, ``min_profit_usd``: USD with 8 decimals)."""
        if max_rounds < 0 or round_seconds < 0 or gas_cost_usd < 0 or memory_bytes <= 0:
            raise CascadeInputError("max_rounds, round_seconds, gas_cost_usd and memory_bytes: not negative")
        decimals = _decimals(markets)
        if len({_name(m) for m in markets}) != len(markets):
            raise CascadeInputError("a market is given twice")
        book = build_book(markets, decimals)
        keys = sorted(k for k in pools if k[0] in decimals and k[1] in decimals)
        curves = [fit_pool(pools[k], decimals[k[0]], decimals[k[1]]) for k in keys]
        return cls(
            book,
            curves,
            keys,
            _oracle_arrays(book.assets, oracles, keys),
            max_rounds=max_rounds,
            round_seconds=round_seconds,
            gas_cost_usd=gas_cost_usd / USD,
            min_profit_usd=min_profit_usd / USD,
            memory_bytes=memory_bytes,
        )

    # --------------------------------------------------------------------------------------- public

    def chunk_scenarios(self) -> int:
        """Scenarios per chunk: the (scenarios × accounts) margin, mask and slot map fit the memory."""
        per_scenario = max(1, len(self.book.accounts)) * (8 + 8 + 1 + 4)
        return max(1, self.memory_bytes // per_scenario)

    def run(self, assets: Sequence[str], factors: NDArray[np.float64]) -> FastOutcomes:
        """The cascade under each row of ``factors``: scenario ``s`` multiplies ``assets[k]``'s price by
        ``factors[s, k]`` (as :func:`graph.cascade.run_cascade`'s shock does)."""
        shocks = self._shock_matrix(assets, factors)
        n = shocks.shape[0]
        step = self.chunk_scenarios()
        parts = [self._run_chunk(shocks[lo : lo + step], lo) for lo in range(0, n, step)]
        return _merge(self.book, parts, n)

    # --------------------------------------------------------------------------------------- chunks

    def _shock_matrix(self, assets: Sequence[str], factors: NDArray[np.float64]) -> FloatArray:
        matrix = np.asarray(factors, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(assets):
            raise CascadeInputError(f"factors: expected shape (scenarios, {len(assets)}), got {matrix.shape}")
        if not np.isfinite(matrix).all() or (matrix <= 0).any():
            raise CascadeInputError("factors: expected finite positive price factors")
        column = {a: j for j, a in enumerate(self.book.assets)}
        shocks = np.ones((matrix.shape[0], len(self.book.assets)))
        for k, asset in enumerate(assets):
            if asset not in column:
                raise CascadeInputError(f"shock for {asset}: the asset has no oracle in the book")
            shocks[:, column[asset]] = matrix[:, k]
        return shocks

    def _run_chunk(self, shocks: FloatArray, offset: int) -> dict[str, object]:
        book, n = self.book, shocks.shape[0]
        n_accounts, n_assets = len(book.accounts), len(book.assets)
        # Pools holding a shocked asset sit at the shocked relative price: u = ½ log(f0 / f1).
        u = np.zeros((n, len(self.curves)))
        for p, (a, b) in enumerate(self.pool_keys):
            j0, j1 = book.assets.index(a), book.assets.index(b)
            u[:, p] = 0.5 * np.log(shocks[:, j0] / shocks[:, j1])
        chunk = _Chunk(
            prices=self.oracles.price * shocks,
            since=np.zeros((n, n_assets)),
            u=u,
            active=np.ones(n, dtype=bool),
            moved=np.zeros(n, dtype=bool),
            store=_Store(
                slot=np.full((n, n_accounts), -1, dtype=np.int32),
                scenario=np.zeros(0, dtype=np.int64),
                account=np.zeros(0, dtype=np.int64),
                collateral=np.zeros((0, n_assets)),
                debt=np.zeros((0, n_assets)),
                counts=np.zeros((0, n_assets), dtype=bool),
                enabled=np.zeros((0, n_assets), dtype=bool),
                burned=np.zeros((0, n_assets)),
            ),
            depth=np.zeros(n, dtype=np.int64),
            liquidated=np.zeros(n),
            deficit=np.zeros((n, len(book.markets), n_assets)),
        )
        for index in range(1, self.max_rounds + 1):
            if not chunk.active.any():
                break
            done = self._round(chunk, index)
            self._update_feeds(chunk)
            did = np.bincount(chunk.store.scenario[done.row], minlength=n) > 0
            chunk.depth += did
            chunk.active &= did
        return self._finish(chunk, offset)

    def _round(self, chunk: _Chunk, index: int) -> _Round:
        store = chunk.store
        # Accounts not yet touched in a scenario: one product gives every margin (prices · margin rows).
        # An untouched account's margin changes only with the prices: after the first round, only
        # scenarios whose feeds moved can have new ones below zero.
        running = np.flatnonzero(chunk.active & (chunk.moved | (index == 1)))
        fresh = (chunk.prices[running] @ self._margin.T < 0) & (store.slot[running] < 0)
        scenario, account = np.nonzero(fresh)
        del fresh
        store.add(self.book, running[scenario].astype(np.int64), account.astype(np.int64))
        rows = np.flatnonzero(chunk.active[store.scenario])
        prices = chunk.prices[store.scenario[rows]]
        book = self.book
        acc = store.account[rows]
        weighted = (store.collateral[rows] * book.threshold[acc] * store.counts[rows] * prices).sum(axis=1)
        owed = (store.debt[rows] * prices).sum(axis=1)
        below = weighted < owed
        rows, prices, acc = rows[below], prices[below], acc[below]
        health = weighted[below] / owed[below]
        found = self._liquidations(chunk, rows, prices, acc, health, owed[below])
        # The feeds move only after the round: the debt asset's price now is the one _apply values at.
        value = found.repaid * chunk.prices[store.scenario[found.row], found.debt]
        self._apply(chunk, found, prices_of=chunk.prices)
        chunk.events.append(
            (np.full(found.row.size, index), store.scenario[found.row], store.account[found.row], value)
        )
        return found

    def _liquidations(
        self,
        chunk: _Chunk,
        rows: IntArray,
        prices: FloatArray,
        acc: IntArray,
        health: FloatArray,
        owed: FloatArray,
    ) -> _Round:
        """What each liquidatable row repays and seizes, kept where the pool fills the sale and the sale
        beats the debt repaid plus gas, judged in the round's order as the sales move the pools."""
        store, book = chunk.store, self.book
        value = store.collateral[rows] * prices * store.counts[rows]
        debt_value = store.debt[rows] * prices
        has = (value.max(axis=1, initial=0.0) > 0) & (debt_value.max(axis=1, initial=0.0) > 0)
        coll, debt = value.argmax(axis=1), debt_value.argmax(axis=1)
        pool = self._pair_pool[coll, debt]
        keep = has & (pool >= 0)
        rows, prices, acc, health, owed = rows[keep], prices[keep], acc[keep], health[keep], owed[keep]
        coll, debt, pool = coll[keep], debt[keep], pool[keep]
        take = np.arange(rows.size)
        pc, pd = prices[take, coll], prices[take, debt]
        balance_c, balance_d = store.collateral[rows, coll], store.debt[rows, debt]
        bonus, fee = book.bonus[acc, coll], book.fee[acc, coll]
        total_debt_usd = (store.debt[rows] * prices).sum(axis=1)
        usd = (balance_c * pc, balance_d * pd, total_debt_usd)
        # Morpho has no close factor: the bots repay every share (capped below at all the collateral).
        max_debt = np.where(
            book.morpho[acc], balance_d, _max_debt(book.rules33[acc], health, usd, pd, balance_d)
        )
        seized = max_debt * pd / pc * bonus
        capped = seized > balance_c
        amount = np.where(capped, balance_c, seized)
        repaid = np.where(capped, balance_c * pc / pd / bonus, max_debt)
        protocol = np.where(fee > 0, (amount - amount / bonus) * fee, 0.0)
        # 3.3 dust: unless all the debt or all the collateral goes, both leftovers must be $1,000.
        debt_left_usd = (balance_d - repaid) * pd
        coll_left_usd = (balance_c - amount + protocol) * pc
        partial = (repaid < balance_d) & (amount < balance_c)
        too_little = (debt_left_usd < MIN_LEFTOVER_USD) | (coll_left_usd < MIN_LEFTOVER_USD)
        dust = book.rules33[acc] & partial & too_little
        if dust.any():
            balances, prices_cd = (balance_c, balance_d), (pc, pd)
            shrunk = _without_dust(repaid, balances, prices_cd, bonus, fee)
            repaid, amount, protocol = (
                np.where(dust, new, old) for new, old in zip(shrunk, (repaid, amount, protocol), strict=True)
            )
        sold = amount - protocol
        zero_for_one = self._token0[pool] == coll
        # Under one base unit the contract would burn nothing and revert (INVALID_BURN_AMOUNT).
        whole = (repaid * self._unit[debt] >= 1.0) & (sold * self._unit[coll] >= 1.0)
        order = np.lexsort((acc, -owed, store.scenario[rows]))
        ok = np.zeros(rows.size, dtype=bool)
        floor = (repaid + self.gas_cost_usd / pd + self.min_profit_usd / pd)[order]
        ok[order] = self._in_order(chunk, store.scenario[rows][order], pool[order], zero_for_one[order],
                                   sold[order], floor, whole[order])  # fmt: skip
        return _Round(
            rows[ok], coll[ok], debt[ok], pool[ok], zero_for_one[ok], repaid[ok], amount[ok], sold[ok]
        )

    def _in_order(
        self,
        chunk: _Chunk,
        scenario: IntArray,
        pool: IntArray,
        zero_for_one: BoolArray,
        sold: FloatArray,
        floor: FloatArray,
        whole: BoolArray,
    ) -> BoolArray:
        """Sell the round's liquidations in the exact path's order (largest debt first, per scenario),
        each into the pool as the earlier sales of its scenario left it; a sale that the pool cannot fill
        or that brings no more than ``floor`` (debt repaid, gas, profit) is not made.

        Where every sale of a (scenario, pool) would pay even as the last of them all (the worst state
        the others can leave, when all sell one way), the order cannot matter: they are all made at once.
        The rest go in order: the candidates come sorted by scenario, then order, and step ``k`` takes
        every such scenario's ``k``-th candidate at once, so the loop runs over the longest round of a
        scenario, never over scenarios.
        """
        done = np.zeros(scenario.size, dtype=bool)
        if not scenario.size:
            return done
        n_pools = len(self.curves)
        pair = scenario * n_pools + pool
        offered = np.where(whole, sold, 0.0)
        down = np.bincount(pair, weights=np.where(zero_for_one, offered, 0.0), minlength=pair.max() + 1)
        up = np.bincount(pair, weights=np.where(zero_for_one, 0.0, offered), minlength=pair.max() + 1)
        total = np.where(zero_for_one, down[pair], up[pair])
        both_ways = (down[pair] > 0) & (up[pair] > 0)
        binding = np.zeros(scenario.size, dtype=bool)
        for p, curves in enumerate(self.curves):
            for direction in (True, False):
                on = np.flatnonzero((pool == p) & (zero_for_one == direction) & whole)
                if not on.size:
                    continue
                start = chunk.u[scenario[on], p]
                before, _, ok = curves.sell(start, total[on] - sold[on], zero_for_one=direction)
                _, got, last_ok = curves.sell(before, sold[on], zero_for_one=direction)
                binds = ~(ok & last_ok & (got > floor[on]))
                binding[np.isin(pair, pair[on[binds]])] = True
        bulk = ~binding & ~both_ways & whole
        self._sell_all(chunk, scenario[bulk], pool[bulk], zero_for_one[bulk], sold[bulk])
        done[bulk] = True
        scan = np.flatnonzero(binding & ~both_ways & whole)
        if scan.size:
            done[scan] = self._scan(chunk, scenario[scan], pool[scan], zero_for_one[scan], sold[scan],
                                    floor[scan])  # fmt: skip
        rest = np.flatnonzero(both_ways & whole)
        if rest.size:
            done[rest] = self._one_by_one(chunk, scenario[rest], pool[rest], zero_for_one[rest],
                                          sold[rest], floor[rest])  # fmt: skip
        return done

    def _scan(
        self,
        chunk: _Chunk,
        scenario: IntArray,
        pool: IntArray,
        zero_for_one: BoolArray,
        sold: FloatArray,
        floor: FloatArray,
    ) -> BoolArray:
        """One-way sales in order where the order matters. A sale pays only while the sales made before
        it in its pool stay under some amount, its own (found by bisection, for all at once); then one
        pass in order decides every (scenario, pool) together, and each pool takes the sum it accepted."""
        n_pools = len(self.curves)
        group = scenario * n_pools + pool
        limit = np.full(scenario.size, -1.0)
        for p, curves in enumerate(self.curves):
            on = np.flatnonzero(pool == p)
            if on.size:
                direction = bool(zero_for_one[on[0]])  # one way per (scenario, pool) here
                for side in (direction, not direction):
                    part = on[zero_for_one[on] == side]
                    if part.size:
                        limit[part] = _largest_prior_sale(
                            curves, chunk.u[scenario[part], p], sold[part], floor[part], side
                        )
        # Candidates are sorted by scenario then order; regroup them by (scenario, pool), stably.
        order = np.argsort(group, kind="stable")
        grouped = group[order]
        starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        counts = np.diff(np.r_[starts, grouped.size])
        made = np.zeros(starts.size)
        accepted = np.zeros(scenario.size, dtype=bool)
        for k in range(int(counts.max())):
            live = np.flatnonzero(counts > k)
            at = order[starts[live] + k]
            take = made[live] <= limit[at]
            made[live] += np.where(take, sold[at], 0.0)
            accepted[at] = take
        first = order[starts]
        self._sell_all(chunk, scenario[first], pool[first], zero_for_one[first], made)
        return accepted

    def _sell_all(
        self, chunk: _Chunk, scenario: IntArray, pool: IntArray, zero_for_one: BoolArray, sold: FloatArray
    ) -> None:
        """Each pool takes the summed sales per scenario (one way only: see :meth:`_in_order`)."""
        n = chunk.u.shape[0]
        for p, curves in enumerate(self.curves):
            for direction in (True, False):
                on = (pool == p) & (zero_for_one == direction)
                if not on.any():
                    continue
                total = np.bincount(scenario[on], weights=sold[on], minlength=n)
                hit = np.flatnonzero(total > 0)
                after, _, _ = curves.sell(
                    chunk.u[hit, p], total[hit].astype(np.float64), zero_for_one=direction
                )
                chunk.u[hit, p] = after

    def _one_by_one(
        self,
        chunk: _Chunk,
        scenario: IntArray,
        pool: IntArray,
        zero_for_one: BoolArray,
        sold: FloatArray,
        floor: FloatArray,
    ) -> BoolArray:
        done = np.zeros(scenario.size, dtype=bool)
        starts = np.flatnonzero(np.r_[True, scenario[1:] != scenario[:-1]])
        counts = np.diff(np.r_[starts, scenario.size])
        combo = pool * 2 + (~zero_for_one)
        for k in range(int(counts.max())):
            step = starts[counts > k] + k
            c = combo[step]
            for present in set(c.tolist()):
                p, direction = divmod(int(present), 2)
                picked = step[c == present] if c.size > 1 else step
                where = scenario[picked]
                now = chunk.u[where, p]
                after, got, filled = self.curves[p].sell(now, sold[picked], zero_for_one=not direction)
                worth = filled & (got > floor[picked])
                chunk.u[where, p] = np.where(worth, after, now)
                done[picked] = worth
        return done

    def _apply(self, chunk: _Chunk, found: _Round, prices_of: FloatArray) -> None:
        store, book = chunk.store, self.book
        rows = found.row
        scenario = store.scenario[rows]
        acc = store.account[rows]
        pd = prices_of[scenario, found.debt]
        chunk.liquidated += np.bincount(scenario, weights=found.repaid * pd, minlength=chunk.liquidated.size)
        balance_c = store.collateral[rows, found.coll]
        all_taken = found.taken >= balance_c
        store.collateral[rows, found.coll] = np.where(all_taken, 0.0, balance_c - found.taken)
        store.debt[rows, found.debt] = np.maximum(store.debt[rows, found.debt] - found.repaid, 0.0)
        # 3.0 turns the flag off when the collateral is gone; 3.3 burns the remaining debt as a deficit
        # when it was the last collateral; Morpho (one collateral) realises it as bad debt at once.
        store.enabled[rows, found.coll] &= ~all_taken
        store.counts[rows, found.coll] &= ~all_taken
        rules33 = book.rules33[acc]
        other = (store.collateral[rows] * store.counts[rows] * prices_of[scenario]).sum(axis=1)
        burn = ((rules33 & (other <= DUST_USD)) | book.morpho[acc]) & all_taken
        if burn.any():
            burned = rows[burn]
            np.add.at(
                chunk.deficit,
                (scenario[burn], book.market[acc[burn]]),
                store.debt[burned],
            )
            store.burned[burned] += store.debt[burned]
            store.debt[burned] = 0.0

    def _update_feeds(self, chunk: _Chunk) -> None:
        """Feeds read the pools at the end of the round (all before any moves), in scenarios that ran it."""
        oracles = self.oracles
        running = chunk.active
        feeds = np.flatnonzero(oracles.feed)
        chunk.moved = np.zeros_like(running)
        if not feeds.size or not running.any():
            return
        prices = chunk.prices
        implied = np.empty((prices.shape[0], feeds.size))
        for k, j in enumerate(feeds):
            p = int(oracles.pool[j])
            ratio = self.curves[p].price(chunk.u[:, p])
            quote = prices[:, oracles.quote[j]]
            implied[:, k] = ratio * quote if oracles.is_token0[j] else quote / ratio
        since = chunk.since[:, feeds] + self.round_seconds
        current = prices[:, feeds]
        moves = (np.abs(implied - current) > oracles.deviation[feeds] * current) | (
            since >= oracles.heartbeat[feeds]
        )
        moves &= running[:, None]
        chunk.moved = np.asarray(moves.any(axis=1), dtype=bool)
        chunk.prices[:, feeds] = np.where(moves, implied, current)
        chunk.since[:, feeds] = np.where(moves, 0.0, np.where(running[:, None], since, chunk.since[:, feeds]))

    def _finish(self, chunk: _Chunk, offset: int) -> dict[str, object]:
        store, book = chunk.store, self.book
        n, prices = chunk.u.shape[0], chunk.prices
        owed = chunk.deficit.copy()
        # Accounts never touched keep their start: those with no collateral at all owe everything.
        owed += self._orphan_debt[None, :, :]
        new = np.zeros(store.scenario.size, dtype=bool)
        if store.scenario.size:
            touched_orphans = self._orphan_debt_rows(store)
            left = (store.collateral * store.enabled * prices[store.scenario]).sum(axis=1) <= DUST_USD
            # An orphan from the start is already counted above; count the rows that became one.
            new = left & ~touched_orphans
            np.add.at(owed, (store.scenario[new], book.market[store.account[new]]), store.debt[new])
        by_asset = owed * prices[:, None, :]
        events = chunk.events
        return {
            **self._account_bad_debt(store, new, prices, offset),
            "offset": offset,
            "by_market_asset": by_asset,
            "liquidated": chunk.liquidated,
            "depth": chunk.depth,
            "prices": prices,
            "round": np.concatenate([e[0] for e in events]) if events else np.zeros(0, dtype=np.int64),
            "scenario": (np.concatenate([e[1] for e in events]) if events else np.zeros(0, dtype=np.int64))
            + offset,
            "account": np.concatenate([e[2] for e in events]) if events else np.zeros(0, dtype=np.int64),
            "value": np.concatenate([e[3] for e in events]) if events else np.zeros(0),
            "n": n,
        }

    def _account_bad_debt(
        self, store: _Store, new: BoolArray, prices: FloatArray, offset: int
    ) -> dict[str, object]:
        """Per (scenario, account) with any: the debt burned plus what a row left without collateral
        still owes, and every orphan from the start in every scenario, at the final prices."""
        owed_rows = store.burned + store.debt * new[:, None]
        usd_rows = (owed_rows * prices[store.scenario]).sum(axis=1)
        kept = usd_rows > 0
        orphans = np.flatnonzero(self._start_orphan & (self.book.debt > 0).any(axis=1))
        n = prices.shape[0]
        usd_orphans = (prices @ self.book.debt[orphans].T).reshape(-1)  # scenario-major
        return {
            "bad_scenario": np.concatenate([store.scenario[kept], np.repeat(np.arange(n), orphans.size)])
            + offset,
            "bad_account": np.concatenate([store.account[kept], np.tile(orphans, n)]),
            "bad_value": np.concatenate([usd_rows[kept], usd_orphans]),
        }

    def _orphan_debt_rows(self, store: _Store) -> BoolArray:
        result: BoolArray = self._start_orphan[store.account]
        return result


def _largest_prior_sale(
    curves: PoolCurves, start: FloatArray, sold: FloatArray, floor: FloatArray, zero_for_one: bool
) -> FloatArray:
    """Per sale: the largest amount sold before it (from ``start``, the same way) under which its own
    proceeds still beat ``floor``; -1 where it does not pay even first. Proceeds fall as the prior sales
    grow, so a bisection on the amount finds it."""

    def pays(prior: FloatArray) -> BoolArray:
        state, _, ok = curves.sell(start, prior, zero_for_one=zero_for_one)
        _, got, filled = curves.sell(state, sold, zero_for_one=zero_for_one)
        result: BoolArray = ok & filled & (got > floor)
        return result

    fit = curves.zero if zero_for_one else curves.one
    high = np.full(start.size, float(fit.input(np.array(fit.max_move))))
    low = np.zeros(start.size)
    first = pays(low)
    for _ in range(BISECTION_STEPS):
        middle = 0.5 * (low + high)
        good = pays(middle)
        low, high = np.where(good, middle, low), np.where(good, high, middle)
    result: FloatArray = np.where(first, low, -1.0)
    return result


def _max_debt(
    rules33: BoolArray,
    health: FloatArray,
    usd: tuple[FloatArray, FloatArray, FloatArray],
    pd: FloatArray,
    balance_d: FloatArray,
) -> FloatArray:
    """The close-factor bound on the debt repaid (token units); ``usd``: the collateral reserve, the debt
    reserve and the total debt, in USD."""
    coll_usd, debt_usd, total_debt_usd = usd
    deep = health <= CLOSE_FACTOR_HF
    v30 = np.where(deep, balance_d, 0.5 * balance_d)
    large = (coll_usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD) & (debt_usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD)
    half_total = 0.5 * total_debt_usd
    partial = large & ~deep & (debt_usd > half_total)
    v33 = np.where(partial, half_total / pd, balance_d)
    result: FloatArray = np.where(rules33, v33, v30)
    return result


def _without_dust(
    repaid: FloatArray,
    balances: tuple[FloatArray, FloatArray],
    prices: tuple[FloatArray, FloatArray],
    bonus: FloatArray,
    fee: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The largest repayment leaving $1,000 of debt and of collateral (the liquidator's share counts
    against the collateral left, as in the contract): both bounds are linear in the repayment."""
    (balance_c, balance_d), (pc, pd) = balances, prices
    to_liquidator_per_debt = pd / pc * bonus * (1.0 - fee * (1.0 - 1.0 / bonus))
    by_debt = balance_d - MIN_LEFTOVER_USD / pd
    by_coll = (balance_c - MIN_LEFTOVER_USD / pc) / to_liquidator_per_debt
    bound = np.maximum(np.minimum(by_debt, by_coll), 0.0)
    repaid = np.minimum(repaid, bound)
    amount = repaid * pd / pc * bonus
    protocol = np.where(fee > 0, (amount - amount / bonus) * fee, 0.0)
    return repaid, amount, protocol


def _oracle_arrays(
    assets: Sequence[str], oracles: Mapping[str, OracleModel], keys: Sequence[PoolKey]
) -> _Oracles:
    column = {a: j for j, a in enumerate(assets)}
    n = len(assets)
    price, feed = np.zeros(n), np.zeros(n, dtype=bool)
    quote, pool = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    is_token0, deviation, heartbeat = np.zeros(n, dtype=bool), np.zeros(n), np.zeros(n)
    for asset, j in column.items():
        model = oracles.get(asset)
        if model is None or model.price <= 0:
            raise CascadeInputError(f"no oracle (with a positive price) for {asset}")
        price[j] = model.price / USD
        if model.kind != "feed":
            continue
        key = next((k for k in keys if set(k) == {asset, model.quote}), None)
        if model.quote not in column or key is None:
            raise CascadeInputError(f"oracle {asset}: no pool between {asset} and {model.quote}")
        feed[j], quote[j], pool[j] = True, column[model.quote], keys.index(key)
        is_token0[j] = key[0] == asset
        deviation[j], heartbeat[j] = model.deviation_bps / 1e4, float(model.heartbeat_s)
    return _Oracles(price, feed, quote, pool, is_token0, deviation, heartbeat)


def _merge(book: Book, parts: Sequence[dict[str, object]], n: int) -> FastOutcomes:
    def cat(name: str) -> NDArray[np.float64]:
        return np.concatenate([np.asarray(p[name]) for p in parts]) if parts else np.zeros(0)

    by_market_asset = cat("by_market_asset").reshape(n, len(book.markets), len(book.assets))
    by_market = by_market_asset.sum(axis=2)
    return FastOutcomes(
        markets=book.markets,
        assets=book.assets,
        accounts=book.accounts,
        bad_debt_usd=by_market.sum(axis=1),
        bad_debt_by_market=by_market,
        bad_debt_by_market_asset=by_market_asset,
        liquidated_usd=cat("liquidated"),
        depth=cat("depth").astype(np.int64),
        liquidation_round=cat("round").astype(np.int64),
        liquidation_scenario=cat("scenario").astype(np.int64),
        liquidation_account=cat("account").astype(np.int64),
        liquidation_usd=cat("value"),
        oracle_prices=cat("prices").reshape(n, len(book.assets)),
        bad_debt_scenario=cat("bad_scenario").astype(np.int64),
        bad_debt_account=cat("bad_account").astype(np.int64),
        bad_debt_account_usd=cat("bad_value"),
    )


def rules_of(markets: Sequence[LendingMarket]) -> dict[str, Rules]:
    """Each market's rule set, as the fast path reads it (for reports)."""
    return {m.name: m.rules for m in markets}
