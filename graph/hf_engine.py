"""Vectorised health factors for every position at once, under a price vector or a grid of price shocks.

This engine is for scenario analysis, not for parity with the chain: it works in floating point and never
rounds like the contracts, so its health factors agree with ``Pool.getUserAccountData`` to about 1e-12
relative, not to the wei. The exact integer maths lives in ``indexer.protocols.aave_math``.

Each position is one (user, asset) line: collateral and debt in asset units, the position's own
liquidation threshold (eMode already applied) and whether it counts as collateral. Per user and scenario

    weighted collateral = Σ_positions collateral · price · shock · LT / 10000   (each position's own LT)
    debt                = Σ_positions debt · price · shock
    health factor       = weighted collateral / debt   (∞ without debt; liquidatable when < 1)

Scenarios never touch positions directly. Positions of users with debt are summed, chunk by chunk of
users, into dense (user × asset) blocks of collateral, debt and margin (weighted collateral − debt);
users solvent even at every asset's worst shock are dropped; then "HF < 1" for all scenarios is one
matrix product (shocks × margin), and the collateral and debt at risk a second one (mask × blocks).
Both products run in float32: a user whose float32 margin lies within the proven float32 error bound
of zero is decided again in float64, so the float32 products change no liquidation decision; the
at-risk sums carry about 1e-6 relative error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

PERCENTAGE_FACTOR = 10_000.0
DEFAULT_CHUNK_BYTES = 64 * 2**20
# Inside these ranges float32 products neither overflow nor reach subnormals, so the error bound in
# _grid holds; margins or shocks outside them take the float64 path.
FLOAT32_MARGINS = (1e-30, 1e28)
FLOAT32_SHOCKS = (1e-6, 1e6)


def _float_vector(name: str, values: ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    _check_finite_non_negative(name, array)
    return array


def _check_finite_non_negative(name: str, array: FloatArray) -> None:
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    if array.size and array.min() < 0:
        raise ValueError(f"{name}: contains negative values")


def _index_vector(name: str, values: ArrayLike) -> IntArray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name}: expected integer indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size and array.min() < 0:
        raise ValueError(f"{name}: contains negative indices")
    return array


def _check_length(name: str, array: np.ndarray[Any, Any], expected: int) -> None:
    if array.shape[0] != expected:
        raise ValueError(f"{name}: expected length {expected} (the length of user), got {array.shape[0]}")


@dataclass(frozen=True)
class Positions:
    """All positions as struct-of-arrays, one entry per (user, asset) line; validated on construction.

    ``user`` indexes users 0…n_users−1 and ``asset`` indexes the price vector; amounts are in asset units
    (not wei); ``liquidation_threshold_bps`` is each position's own LT with eMode applied. Collateral
    counts only where ``collateral_enabled`` and the LT is positive, as on Aave. ``n_users`` defaults
    to the largest user index + 1.
    """

    user: IntArray
    asset: IntArray
    collateral: FloatArray
    debt: FloatArray
    liquidation_threshold_bps: FloatArray
    collateral_enabled: BoolArray
    n_users: int = field(default=-1)

    def __post_init__(self) -> None:
        user = _index_vector("user", self.user)
        columns: dict[str, Any] = {
            "asset": _index_vector("asset", self.asset),
            "collateral": _float_vector("collateral", self.collateral),
            "debt": _float_vector("debt", self.debt),
            "liquidation_threshold_bps": _float_vector(
                "liquidation_threshold_bps", self.liquidation_threshold_bps
            ),
            "collateral_enabled": _bool_vector("collateral_enabled", self.collateral_enabled),
        }
        for name, array in columns.items():
            _check_length(name, array, user.shape[0])
        if columns["liquidation_threshold_bps"].size and columns["liquidation_threshold_bps"].max() > 10_000:
            raise ValueError("liquidation_threshold_bps: expected values in [0, 10000]")
        n_users = _n_users(user, self.n_users)
        # Frozen for callers; the constructor alone normalises the arrays it was given.
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "n_users", n_users)
        for name, array in columns.items():
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return int(self.user.shape[0])


def _bool_vector(name: str, values: ArrayLike) -> BoolArray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if array.size and array.dtype != np.bool_:
        raise ValueError(f"{name}: expected booleans, got dtype {array.dtype}")
    return array.astype(np.bool_, copy=False)


def _n_users(user: IntArray, given: int) -> int:
    needed = int(user.max()) + 1 if user.size else 0
    if given == -1:
        return needed
    if given < needed:
        raise ValueError(f"n_users: expected at least {needed} (largest user index + 1), got {given}")
    return given


@dataclass(frozen=True)
class UserHealth:
    """Per user (index = user id), at one price vector: base-currency totals and the health factor."""

    collateral_base: FloatArray
    weighted_collateral_base: FloatArray
    debt_base: FloatArray
    health_factor: FloatArray

    @property
    def liquidatable(self) -> BoolArray:
        """Users whose health factor is under 1."""
        return self.health_factor < 1.0


@dataclass(frozen=True)
class ShockResult:
    """Per scenario: users with HF < 1 and their collateral and debt (base currency, shocked prices).

    ``collateral_at_risk[s, a]`` is the value in scenario ``s`` of asset ``a`` collateral held by users
    liquidatable in that scenario (already liquidatable ones included: compare with a row of ones).
    """

    shocks: FloatArray
    liquidatable_users: IntArray
    collateral_at_risk: FloatArray
    debt_at_risk: FloatArray

    @property
    def total_collateral_at_risk(self) -> FloatArray:
        """Collateral at risk per scenario, all assets together."""
        total: FloatArray = self.collateral_at_risk.sum(axis=1)
        return total

    @property
    def total_debt_at_risk(self) -> FloatArray:
        """Debt of liquidatable users per scenario, all assets together."""
        total: FloatArray = self.debt_at_risk.sum(axis=1)
        return total


def _prices(values: ArrayLike, positions: Positions) -> FloatArray:
    prices = _float_vector("prices", values)
    if len(positions) and int(positions.asset.max()) >= prices.shape[0]:
        raise ValueError(
            f"asset: index {int(positions.asset.max())} out of range for {prices.shape[0]} prices"
        )
    return prices


def _sum_by(key: IntArray, weights: FloatArray, size: int) -> FloatArray:
    # bincount of float weights is float64; the cast only tells the type checker so.
    total: FloatArray = np.bincount(key, weights=weights, minlength=size).astype(np.float64, copy=False)
    return total


def _position_values(positions: Positions, prices: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    # Collateral with LT 0 or the flag off does not count, exactly as calculateUserAccountData skips it.
    lt = positions.liquidation_threshold_bps
    counts = positions.collateral_enabled & (lt > 0)
    price = prices[positions.asset]
    collateral = np.where(counts, positions.collateral * price, 0.0)
    weighted = collateral * (lt / PERCENTAGE_FACTOR)
    return collateral, weighted, positions.debt * price


def user_health(positions: Positions, prices: ArrayLike) -> UserHealth:
    """Collateral, LT-weighted collateral, debt (base) and health factor of every user at ``prices``."""
    price_vector = _prices(prices, positions)
    collateral, weighted, debt = _position_values(positions, price_vector)
    n = positions.n_users
    totals = [_sum_by(positions.user, w, n) for w in (collateral, weighted, debt)]
    with np.errstate(divide="ignore", invalid="ignore"):
        health = np.where(totals[2] > 0, totals[1] / totals[2], np.inf)
    return UserHealth(totals[0], totals[1], totals[2], health)


def _shock_matrix(shocks: ArrayLike, n_assets: int) -> FloatArray:
    matrix = np.asarray(shocks, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != n_assets or not matrix.shape[0]:
        raise ValueError(f"shocks: expected shape (scenarios ≥ 1, {n_assets}), got {matrix.shape}")
    _check_finite_non_negative("shocks", matrix)
    return matrix


@dataclass(frozen=True)
class _Grid:
    shocks: FloatArray
    shocks32: NDArray[np.float32]
    lowest: FloatArray
    highest: FloatArray
    slack_factor: float
    float32_ok: bool


def _in_range(magnitude: FloatArray, bounds: tuple[float, float]) -> bool:
    # Zeros are exact in float32; only the non-zero magnitudes must stay inside the bounds.
    smallest = float(np.min(magnitude, where=magnitude > 0, initial=np.inf))
    return smallest >= bounds[0] and float(magnitude.max(initial=0.0)) <= bounds[1]


def _grid(shocks: FloatArray) -> _Grid:
    # A float32 dot product of n terms is off by at most (n + 2)·u·Σ|terms| (u = 2⁻²⁴, inputs rounded
    # too); twice that bounds which products are too close to zero to trust.
    unit_roundoff = float(np.finfo(np.float32).eps) / 2
    factor = 2.0 * (shocks.shape[1] + 2) * unit_roundoff * float(shocks.max(initial=0.0))
    lowest, highest = shocks.min(axis=0, initial=np.inf), shocks.max(axis=0, initial=0.0)
    float32_ok = _in_range(shocks, FLOAT32_SHOCKS)  # shocks are validated non-negative
    return _Grid(shocks, shocks.astype(np.float32), lowest, highest, factor, float32_ok)


@dataclass(frozen=True)
class _Candidates:
    """Positions of the users who may fall under HF 1 in some scenario, renumbered 0…count−1, in order."""

    user: IntArray
    asset: IntArray
    collateral: FloatArray
    margin: FloatArray
    debt: FloatArray
    count: int


def _may_fail(
    positions: Positions, values: tuple[FloatArray, FloatArray, FloatArray], grid: _Grid
) -> BoolArray:
    # Collateral at its asset's lowest shock and debt at its highest bound every scenario's margin from
    # below: users with no debt, or clearly positive even then, are never liquidatable and skip the products.
    _, weighted, debt = values
    at_worst = weighted * grid.lowest[positions.asset] - debt * grid.highest[positions.asset]
    floor = _sum_by(positions.user, at_worst, positions.n_users)
    scale = _sum_by(positions.user, weighted + debt, positions.n_users)
    has_debt = _sum_by(positions.user, debt, positions.n_users) > 0
    may_fail: BoolArray = has_debt & (floor <= grid.slack_factor * scale)
    return may_fail


def _candidates(positions: Positions, prices: FloatArray, grid: _Grid) -> _Candidates:
    values = _position_values(positions, prices)
    may_fail = _may_fail(positions, values, grid)
    rank = np.cumsum(may_fail) - 1
    index = np.flatnonzero(may_fail[positions.user])
    user = rank[positions.user[index]]
    if user.size and not (user[1:] >= user[:-1]).all():
        order = np.argsort(user, kind="stable")
        index, user = index[order], user[order]
    collateral, weighted, debt = (v[index] for v in values)
    count = int(may_fail.sum())
    return _Candidates(user, positions.asset[index], collateral, weighted - debt, debt, count)


def _chunk_users(n_assets: int, n_scenarios: int, chunk_bytes: int) -> int:
    # Per user: three float64 blocks and a float32 copy, then the float32 products and the masks.
    per_user = 8 * 4 * n_assets + 4 * 3 * n_assets + 12 * n_scenarios
    return max(1, chunk_bytes // per_user)


def _liquidatable(margin: FloatArray, magnitude: FloatArray, grid: _Grid) -> BoolArray:
    """(scenarios × users) mask of W·F < D·F, from float32 products with near-ties redone in float64."""
    if not (grid.float32_ok and _in_range(magnitude, FLOAT32_MARGINS)):
        exact: BoolArray = (grid.shocks @ margin.T) < 0
        return exact
    product = grid.shocks32 @ margin.astype(np.float32).T
    liquidatable = product < 0
    slack = (grid.slack_factor * magnitude.sum(axis=1)).astype(np.float32)
    ties = np.flatnonzero(np.abs(product).min(axis=0) <= slack)
    if ties.size:
        liquidatable[:, ties] = (grid.shocks @ margin[ties].T) < 0
    return liquidatable


def _add_chunk(blocks: tuple[FloatArray, FloatArray, FloatArray], grid: _Grid, at_risk: FloatArray) -> None:
    collateral, margin, debt = blocks
    liquidatable = _liquidatable(margin, np.abs(margin), grid)
    n_assets = collateral.shape[1]
    # Sums of non-negative values over a 0/1 mask: float32 costs about 1e-6 relative here, and a column
    # of ones counts the users exactly (chunks stay far below 2**24 users).
    values = np.empty((collateral.shape[0], 2 * n_assets + 1), dtype=np.float32)
    values[:, :n_assets], values[:, n_assets:-1], values[:, -1] = collateral, debt, 1.0
    at_risk += liquidatable.astype(np.float32) @ values


def _blocks(
    book: _Candidates, lo: int, hi: int, first: int, count: int, n_assets: int
) -> tuple[FloatArray, ...]:
    key = (book.user[lo:hi] - first) * n_assets + book.asset[lo:hi]
    size, shape = count * n_assets, (count, n_assets)
    return tuple(
        _sum_by(key, v[lo:hi], size).reshape(shape) for v in (book.collateral, book.margin, book.debt)
    )


def shock_grid(
    positions: Positions, prices: ArrayLike, shocks: ArrayLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> ShockResult:
    """Users with HF < 1 and collateral/debt at risk, per asset, under each row of multiplicative ``shocks``.

    ``shocks`` is (scenarios × assets): scenario ``s`` prices asset ``a`` at ``prices[a] · shocks[s, a]``.
    Memory stays near ``chunk_bytes`` beyond the positions themselves, whatever the number of users.
    """
    price_vector = _prices(prices, positions)
    grid = _grid(_shock_matrix(shocks, price_vector.shape[0]))
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes: expected a positive integer, got {chunk_bytes}")
    book = _candidates(positions, price_vector, grid)
    n_scenarios, n_assets = grid.shocks.shape
    # Per scenario: collateral then debt per asset, then the number of liquidatable users.
    at_risk = np.zeros((n_scenarios, 2 * n_assets + 1))
    step = _chunk_users(n_assets, n_scenarios, chunk_bytes)
    bounds = np.searchsorted(book.user, np.arange(0, book.count + step, step))
    for index, first in enumerate(range(0, book.count, step)):
        lo, hi, count = int(bounds[index]), int(bounds[index + 1]), min(step, book.count - first)
        blocks = _blocks(book, lo, hi, first, count, n_assets)
        _add_chunk((blocks[0], blocks[1], blocks[2]), grid, at_risk)
    collateral, debt = at_risk[:, :n_assets] * grid.shocks, at_risk[:, n_assets:-1] * grid.shocks
    return ShockResult(grid.shocks, np.rint(at_risk[:, -1]).astype(np.int64), collateral, debt)


def factor_shocks(loadings: ArrayLike, factor_moves: ArrayLike) -> FloatArray:
    """Correlated shocks: ``shocks[s, a] = Π_k (1 + factor_moves[s, k]) ** loadings[a, k]``.

    A loading of 1 moves the asset with its factor (ETH, stETH and wstETH on an ETH factor), 0 leaves it
    alone, a beta in between moves it less. Working in log space keeps every shocked price positive.
    """
    betas = np.asarray(loadings, dtype=np.float64)
    moves = np.asarray(factor_moves, dtype=np.float64)
    betas = betas[:, None] if betas.ndim == 1 else betas
    moves = moves[:, None] if moves.ndim == 1 else moves
    if betas.ndim != 2 or not np.isfinite(betas).all():
        raise ValueError(
            f"loadings: expected a finite (assets,) or (assets, factors) array, got {betas.shape}"
        )
    if moves.ndim != 2 or moves.shape[1] != betas.shape[1]:
        raise ValueError(f"factor_moves: expected shape (scenarios, {betas.shape[1]}), got {moves.shape}")
    if not np.isfinite(moves).all() or (moves <= -1).any():
        raise ValueError("factor_moves: expected finite values > -1 (a move of -1 is a price of zero)")
    result: FloatArray = np.exp(np.log1p(moves) @ betas.T)
    return result


def betas_from_correlation(correlation: ArrayLike, volatilities: ArrayLike, driver: int) -> FloatArray:
    """Each asset's beta to the ``driver`` asset: ``corr[a, driver] · vol[a] / vol[driver]``."""
    corr = np.asarray(correlation, dtype=np.float64)
    vols = _float_vector("volatilities", volatilities)
    n = vols.shape[0]
    if corr.shape != (n, n):
        raise ValueError(f"correlation: expected shape ({n}, {n}) like volatilities, got {corr.shape}")
    if not np.isfinite(corr).all() or np.abs(corr).max(initial=0.0) > 1 or not np.allclose(corr, corr.T):
        raise ValueError("correlation: expected a finite symmetric matrix with entries in [-1, 1]")
    if not 0 <= driver < n:
        raise ValueError(f"driver: expected an asset index in [0, {n}), got {driver}")
    if vols[driver] == 0:
        raise ValueError("volatilities: the driver's volatility must be positive")
    betas: FloatArray = corr[:, driver] * vols / vols[driver]
    return betas


def per_asset_shocks(n_assets: int, moves: ArrayLike) -> FloatArray:
    """One scenario per (asset, move), asset by asset: that asset at ``1 + move``, every other at 1."""
    steps = _float_moves(moves)
    shocks = np.ones((n_assets * steps.shape[0], n_assets))
    for a in range(n_assets):
        shocks[a * steps.shape[0] : (a + 1) * steps.shape[0], a] = 1.0 + steps
    return shocks


def _float_moves(moves: ArrayLike) -> FloatArray:
    steps = np.asarray(moves, dtype=np.float64)
    if steps.ndim != 1 or not np.isfinite(steps).all() or (steps < -1).any():
        raise ValueError("moves: expected a 1-D array of finite values >= -1")
    return steps


# ---------------------------------------------------------------------------------------------- benchmark


def synthetic_positions(n_positions: int, n_assets: int = 32, seed: int = 0) -> tuple[Positions, FloatArray]:
    """Random but plausible positions (about 4 per user, HF mostly 1–3) and prices, sorted by user."""
    rng = np.random.default_rng(seed)
    n_users = max(1, n_positions // 4)
    user = np.sort(rng.integers(0, n_users, n_positions))
    asset = rng.integers(0, n_assets, n_positions)
    prices = np.exp(rng.normal(2.0, 3.0, n_assets))
    asset_lt = rng.integers(6500, 8600, n_assets).astype(np.float64)
    lt = asset_lt[asset]
    is_debt = rng.random(n_positions) < 0.35
    collateral = np.where(is_debt, 0.0, rng.lognormal(0.0, 1.5, n_positions) * 1000.0 / prices[asset])
    weighted = np.bincount(user, collateral * prices[asset] * lt / PERCENTAGE_FACTOR, minlength=n_users)
    target_hf = 1.0 + rng.lognormal(-0.5, 0.8, n_users)
    share = np.where(is_debt, rng.random(n_positions), 0.0)
    share_sum = np.bincount(user, share, minlength=n_users)
    with np.errstate(divide="ignore", invalid="ignore"):
        debt_base = np.where(
            share_sum[user] > 0, weighted[user] / target_hf[user] * share / share_sum[user], 0.0
        )
    enabled = rng.random(n_positions) < 0.97
    return Positions(user, asset, collateral, debt_base / prices[asset], lt, enabled, n_users), prices


def synthetic_shocks(n_scenarios: int, n_assets: int, seed: int = 0) -> FloatArray:
    """A grid mixing correlated factor moves (a market factor, an ETH-like factor) with per-asset noise."""
    rng = np.random.default_rng(seed + 1)
    loadings = np.column_stack([rng.uniform(0.2, 1.0, n_assets), (rng.random(n_assets) < 0.3).astype(float)])
    moves = np.column_stack([np.linspace(0.0, -0.5, n_scenarios), rng.uniform(-0.3, 0.1, n_scenarios)])
    noise = np.exp(rng.normal(0.0, 0.02, (n_scenarios, n_assets)))
    return factor_shocks(loadings, moves) * noise


def naive_shock_grid(positions: Positions, prices: FloatArray, shocks: FloatArray) -> ShockResult:
    """Baseline: one full pass over every position per scenario (bincounts), no (user × asset) blocks."""
    n_scenarios, n_assets = shocks.shape
    counts = np.zeros(n_scenarios, dtype=np.int64)
    coll_risk, debt_risk = np.zeros((n_scenarios, n_assets)), np.zeros((n_scenarios, n_assets))
    for s in range(n_scenarios):
        collateral, weighted, debt = _position_values(positions, prices * shocks[s])
        w = np.bincount(positions.user, weights=weighted, minlength=positions.n_users)
        d = np.bincount(positions.user, weights=debt, minlength=positions.n_users)
        liquidatable = w < d
        counts[s] = int(liquidatable.sum())
        at_risk = liquidatable[positions.user]
        coll_risk[s] = np.bincount(positions.asset, weights=collateral * at_risk, minlength=n_assets)
        debt_risk[s] = np.bincount(positions.asset, weights=debt * at_risk, minlength=n_assets)
    return ShockResult(shocks, counts, coll_risk, debt_risk)


def scanned_users(positions: Positions, prices: ArrayLike, shocks: ArrayLike) -> int:
    """Users ``shock_grid`` computes products for: those with debt that some shock could make liquidatable."""
    price_vector = _prices(prices, positions)
    grid = _grid(_shock_matrix(shocks, price_vector.shape[0]))
    return _candidates(positions, price_vector, grid).count
