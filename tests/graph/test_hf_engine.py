"""The vectorised HF engine against a plain per-user computation, shock builders, and bad input."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from graph.hf_engine import (
    Positions,
    ShockResult,
    betas_from_correlation,
    factor_shocks,
    per_asset_shocks,
    shock_grid,
    synthetic_positions,
    user_health,
)


def random_book(seed: int, n_positions: int = 400, n_users: int = 60, n_assets: int = 6):
    """Unsorted users, repeated (user, asset) lines, some flags off and some LTs at zero."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n_positions)
    asset = rng.integers(0, n_assets, n_positions)
    collateral = np.where(rng.random(n_positions) < 0.6, rng.lognormal(0, 1, n_positions), 0.0)
    debt = np.where(rng.random(n_positions) < 0.4, rng.lognormal(-0.5, 1, n_positions), 0.0)
    lt = np.where(rng.random(n_positions) < 0.05, 0.0, rng.integers(5000, 9500, n_positions))
    enabled = rng.random(n_positions) < 0.9
    prices = rng.lognormal(0, 1, n_assets)
    return Positions(user, asset, collateral, debt, lt, enabled, n_users), prices


def reference(positions: Positions, prices, shocks):
    """One user at a time, one scenario at a time, in plain Python."""
    lines = defaultdict(list)
    for i in range(len(positions)):
        lines[int(positions.user[i])].append(i)
    n_assets = len(prices)
    counts, collateral_risk, debt_risk = (
        [],
        np.zeros((len(shocks), n_assets)),
        np.zeros((len(shocks), n_assets)),
    )
    for s, row in enumerate(shocks):
        count = 0
        for indices in lines.values():
            coll: defaultdict[int, float] = defaultdict(float)
            debt: defaultdict[int, float] = defaultdict(float)
            weighted = 0.0
            for i in indices:
                a = int(positions.asset[i])
                price = float(prices[a]) * float(row[a])
                lt = float(positions.liquidation_threshold_bps[i])
                if positions.collateral_enabled[i] and lt > 0:
                    coll[a] += float(positions.collateral[i]) * price
                    weighted += float(positions.collateral[i]) * price * lt / 10_000
                debt[a] += float(positions.debt[i]) * price
            if sum(debt.values()) > 0 and weighted / sum(debt.values()) < 1:
                count += 1
                for a, value in coll.items():
                    collateral_risk[s, a] += value
                for a, value in debt.items():
                    debt_risk[s, a] += value
        counts.append(count)
    return np.array(counts), collateral_risk, debt_risk


def assert_matches(result: ShockResult, expected) -> None:
    counts, collateral, debt = expected
    np.testing.assert_array_equal(result.liquidatable_users, counts)
    np.testing.assert_allclose(result.collateral_at_risk, collateral, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(result.debt_at_risk, debt, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk_bytes", [4096, 64 * 2**20])
def test_engine_equals_per_user_python(seed, chunk_bytes):
    positions, prices = random_book(seed)
    shocks = np.random.default_rng(seed + 100).uniform(0.3, 1.3, (7, len(prices)))
    result = shock_grid(positions, prices, shocks, chunk_bytes=chunk_bytes)
    assert_matches(result, reference(positions, prices, shocks))


def test_user_health_equals_per_user_python():
    positions, prices = random_book(7)
    health = user_health(positions, prices)
    for u in range(positions.n_users):
        lines = positions.user == u
        counted = positions.collateral_enabled & (positions.liquidation_threshold_bps > 0) & lines
        value = positions.collateral * prices[positions.asset]
        weighted = float((value * positions.liquidation_threshold_bps / 10_000)[counted].sum())
        debt = float((positions.debt * prices[positions.asset])[lines].sum())
        assert health.collateral_base[u] == pytest.approx(float(value[counted].sum()), rel=1e-12)
        assert health.weighted_collateral_base[u] == pytest.approx(weighted, rel=1e-12)
        assert health.debt_base[u] == pytest.approx(debt, rel=1e-12)
        assert health.health_factor[u] == (pytest.approx(weighted / debt, rel=1e-12) if debt > 0 else np.inf)


def test_shocks_of_one_reproduce_the_base_health_factors():
    positions, prices = random_book(3, n_positions=2000, n_users=300)
    health = user_health(positions, prices)
    result = shock_grid(positions, prices, np.ones((1, len(prices))))
    assert result.liquidatable_users[0] == int(health.liquidatable.sum())
    assert result.total_collateral_at_risk[0] == pytest.approx(
        float(health.collateral_base[health.liquidatable].sum()), rel=1e-5
    )
    assert result.total_debt_at_risk[0] == pytest.approx(
        float(health.debt_base[health.liquidatable].sum()), rel=1e-5
    )


def test_liquidation_at_risk_grows_with_the_shock():
    # Volatile collateral (assets 0-3, ETH-like and correlated) against stablecoin debt (asset 4).
    positions, prices = random_book(11, n_positions=3000, n_users=500, n_assets=5)
    debt = np.where(positions.asset == 4, positions.debt * 3, 0.0)
    positions = Positions(
        positions.user,
        positions.asset,
        positions.collateral,
        debt,
        positions.liquidation_threshold_bps,
        positions.collateral_enabled,
    )
    shocks = factor_shocks([1.0, 1.0, 0.6, 0.9, 0.0], np.linspace(0.0, -0.9, 12))
    result = shock_grid(positions, prices, shocks)
    assert (np.diff(result.liquidatable_users) >= 0).all() and result.liquidatable_users[-1] > 0
    assert (np.diff(result.total_debt_at_risk) >= -1e-9).all()
    at_base_prices = (result.collateral_at_risk / shocks).sum(axis=1)
    assert (np.diff(at_base_prices) >= -1e-6 * at_base_prices.max()).all()
    assert_matches(result, reference(positions, prices, shocks))


def test_near_ties_are_decided_in_float64():
    # HF 1 ± 1e-9 is below float32's resolution; the engine must still tell the two users apart.
    user, asset = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    collateral, debt = (
        np.array([1.0, 0.0, 1.0, 0.0]),
        np.array([0.0, 0.8 * (1 + 1e-9), 0.0, 0.8 * (1 - 1e-9)]),
    )
    positions = Positions(user, asset, collateral, debt, np.full(4, 8000.0), np.ones(4, dtype=bool))
    result = shock_grid(positions, [1.0, 1.0], np.ones((3, 2)))
    np.testing.assert_array_equal(result.liquidatable_users, [1, 1, 1])
    np.testing.assert_allclose(result.debt_at_risk[:, 1], 0.8 * (1 + 1e-9))


def test_huge_amounts_take_the_float64_path():
    positions, prices = random_book(5)
    big = Positions(
        positions.user,
        positions.asset,
        positions.collateral * 1e32,
        positions.debt * 1e32,
        positions.liquidation_threshold_bps,
        positions.collateral_enabled,
    )
    shocks = np.random.default_rng(0).uniform(0.5, 1.2, (4, len(prices)))
    expected = reference(positions, prices, shocks)
    result = shock_grid(big, prices, shocks)
    np.testing.assert_array_equal(result.liquidatable_users, expected[0])
    np.testing.assert_allclose(result.collateral_at_risk, expected[1] * 1e32, rtol=1e-5)


def test_factor_shocks_move_assets_with_their_betas():
    shocks = factor_shocks([1.0, 0.5, 0.0], [-0.19, 0.0, 0.44])
    np.testing.assert_allclose(shocks[:, 0], [0.81, 1.0, 1.44])
    np.testing.assert_allclose(shocks[:, 1], [0.9, 1.0, 1.2])  # (1 + m) ** 0.5
    np.testing.assert_allclose(shocks[:, 2], 1.0)
    # Two factors (ETH, BTC): wstETH on ETH only, a BTC/ETH basket on both.
    two = factor_shocks([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[-0.2, -0.1]])
    np.testing.assert_allclose(two, [[0.8, 0.9, 0.72]])


def test_betas_from_correlation():
    corr = [[1.0, 0.9, 0.0], [0.9, 1.0, 0.1], [0.0, 0.1, 1.0]]
    betas = betas_from_correlation(corr, [0.8, 0.6, 0.01], driver=0)
    np.testing.assert_allclose(betas, [1.0, 0.9 * 0.6 / 0.8, 0.0])
    shocks = factor_shocks(betas, [-0.3])
    assert shocks[0, 0] == pytest.approx(0.7) and shocks[0, 2] == 1.0 and 0.7 < shocks[0, 1] < 1.0


def test_per_asset_shocks():
    shocks = per_asset_shocks(3, [-0.1, -0.2])
    assert shocks.shape == (6, 3)
    np.testing.assert_allclose(shocks[:, 1], [1, 1, 0.9, 0.8, 1, 1])
    assert (shocks.prod(axis=1) < 1).all()


def _positions(**changes: Any) -> Positions:
    arrays: dict[str, Any] = {
        "user": np.array([0, 1]),
        "asset": np.array([0, 1]),
        "collateral": np.array([1.0, 2.0]),
        "debt": np.array([0.5, 0.0]),
        "liquidation_threshold_bps": np.array([8000.0, 8000.0]),
        "collateral_enabled": np.array([True, True]),
    }
    arrays.update(changes)
    return Positions(**arrays)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"collateral": np.array([1.0])}, r"^collateral: expected length 2 \(the length of user\), got 1$"),
        ({"debt": np.array([np.nan, 0.0])}, r"^debt: contains NaN or infinite values$"),
        ({"collateral": np.array([1.0, -2.0])}, r"^collateral: contains negative values$"),
        ({"user": np.array([0, -1])}, r"^user: contains negative indices$"),
        ({"asset": np.array([0.0, 1.0])}, r"^asset: expected integer indices, got dtype float64$"),
        ({"liquidation_threshold_bps": np.array([8000.0, 12000.0])}, r"^liquidation_threshold_bps: expected"),
        (
            {"collateral_enabled": np.array([1, 0])},
            r"^collateral_enabled: expected booleans, got dtype int64$",
        ),
        ({"n_users": 1}, r"^n_users: expected at least 2 \(largest user index \+ 1\), got 1$"),
    ],
)
def test_bad_positions_name_the_argument(changes, message):
    with pytest.raises(ValueError, match=message):
        _positions(**changes)


@pytest.mark.parametrize(
    ("prices", "shocks", "message"),
    [
        ([1.0, -1.0], np.ones((1, 2)), r"^prices: contains negative values$"),
        ([1.0, np.nan], np.ones((1, 2)), r"^prices: contains NaN or infinite values$"),
        ([1.0], np.ones((1, 1)), r"^asset: index 1 out of range for 1 prices$"),
        ([1.0, 1.0], np.ones((1, 3)), r"^shocks: expected shape \(scenarios ≥ 1, 2\), got \(1, 3\)$"),
        ([1.0, 1.0], np.ones((0, 2)), r"^shocks: expected shape \(scenarios ≥ 1, 2\), got \(0, 2\)$"),
        ([1.0, 1.0], [[1.0, np.inf]], r"^shocks: contains NaN or infinite values$"),
        ([1.0, 1.0], [[1.0, -0.5]], r"^shocks: contains negative values$"),
    ],
)
def test_bad_prices_and_shocks_name_the_argument(prices, shocks, message):
    with pytest.raises(ValueError, match=message):
        shock_grid(_positions(), prices, shocks)


def test_bad_shock_builders_name_the_argument():
    with pytest.raises(ValueError, match=r"^factor_moves: expected finite values > -1"):
        factor_shocks([1.0], [-1.0])
    with pytest.raises(ValueError, match=r"^factor_moves: expected shape \(scenarios, 2\), got \(1, 3\)$"):
        factor_shocks([[1.0, 0.0]], [[0.1, 0.1, 0.1]])
    with pytest.raises(ValueError, match=r"^correlation: expected shape \(2, 2\) like volatilities"):
        betas_from_correlation([[1.0]], [0.5, 0.5], 0)
    with pytest.raises(ValueError, match=r"^correlation: expected a finite symmetric matrix"):
        betas_from_correlation([[1.0, 0.5], [0.4, 1.0]], [0.5, 0.5], 0)
    with pytest.raises(ValueError, match=r"^driver: expected an asset index in \[0, 2\), got 2$"):
        betas_from_correlation(np.eye(2), [0.5, 0.5], 2)
    with pytest.raises(ValueError, match=r"^moves: expected a 1-D array of finite values >= -1$"):
        per_asset_shocks(2, [np.nan])
    with pytest.raises(ValueError, match=r"^chunk_bytes: expected a positive integer, got 0$"):
        shock_grid(_positions(), [1.0, 1.0], np.ones((1, 2)), chunk_bytes=0)


def test_synthetic_book_is_sorted_and_plausible():
    positions, prices = synthetic_positions(20_000, n_assets=8, seed=1)
    assert (np.diff(positions.user) >= 0).all() and prices.shape == (8,)
    health = user_health(positions, prices)
    borrowers = health.debt_base > 0
    assert 0.5 < float(np.median(health.health_factor[borrowers])) < 3.0
