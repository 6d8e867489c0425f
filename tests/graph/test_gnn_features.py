"""The surrogates' DebtRank feature, computed on a sparse account–asset graph, against the dense DebtRank;
and a book beyond what a dense graph holds still gets its features."""

from __future__ import annotations

import numpy as np
import pytest

from chainrisk.bench.cascade import scenarios
from chainrisk.contagion.surrogate import book_graph, synthetic_snapshots
from graph.debtrank import debtrank
from graph.gnn.features import FEATURES, _rank, shock_matrix, tabular


def dense_rank(collateral: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """The feature as it was first written: the whole (accounts + assets)² matrix."""
    n, a = collateral.shape
    exposures = np.zeros((n + a, n + a))
    exposures[:n, n:] = collateral
    exposures[n:, :n] = collateral.T
    buffers = np.concatenate([np.maximum(equity.sum(axis=1), 1.0), np.maximum(collateral.sum(axis=0), 1.0)])
    weights = np.concatenate([collateral.sum(axis=1), np.zeros(a)])
    shock = np.concatenate([np.zeros(n), np.full(a, 0.2)])
    result = debtrank(exposures, buffers, weights if weights.sum() > 0 else np.ones(n + a), shock)
    return result.final[:n]


def test_rank_of_a_synthetic_book_equals_the_dense_one() -> None:
    static = book_graph(synthetic_snapshots(1, 3_000, seed=4)[0])
    equity = static.weighted_usd - static.debt_usd
    expected = dense_rank(static.collateral_usd, equity)
    assert (expected > 0).any() and (expected < 1).any()
    np.testing.assert_allclose(static.rank, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_rank(static.collateral_usd, equity), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_rank_of_random_books_equals_the_dense_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, a = int(rng.integers(1, 80)), int(rng.integers(1, 8))
    # Sparse holdings, some accounts with no collateral at all, equity from deep negative to ample.
    collateral = rng.lognormal(8, 2, (n, a)) * (rng.random((n, a)) < 0.4)
    equity = collateral * rng.uniform(-0.5, 0.9, (n, a))
    np.testing.assert_allclose(
        _rank(collateral, equity), dense_rank(collateral, equity), rtol=1e-12, atol=1e-15
    )


def test_rank_of_a_book_without_collateral_is_zero() -> None:
    np.testing.assert_array_equal(_rank(np.zeros((4, 3)), np.zeros((4, 3))), np.zeros(4))


@pytest.mark.slow
def test_a_book_of_25_000_accounts_gets_its_graph_and_features() -> None:
    # A dense account–asset graph of this book would be (25,000 + assets)² float64: 5 GB.
    static = book_graph(synthetic_snapshots(1, 59_500, seed=1)[0])
    n = len(static.accounts)
    assert n >= 25_000
    assert static.rank.shape == (n,) and ((static.rank >= 0) & (static.rank <= 1)).all()
    assets, factors = scenarios(3, seed=1)
    table = tabular(static, shock_matrix(static, assets, factors))
    assert table.shape == (3 * n, len(FEATURES))
    assert np.isfinite(table).all()
