"""DebtRank against the NetworkRiskMeasures test vector in the project's risk-methods reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from graph.debtrank import debtrank, impact_matrix, sparse_debtrank, sparse_impact_matrix

EXPOSURES = [[0, 1, 0], [10, 0, 3], [3, 2, 0]]
BUFFERS = [2, 5, 2]
WEIGHTS = [10, 100, 30]


@pytest.mark.parametrize(
    ("shock", "final", "additional", "defaults", "decimals"),
    [
        ([1, 0, 0], [1, 1, 1], 0.9285714, 2, 7),
        ([0, 1, 0], [0.5, 1, 1], 0.2500000, 1, 7),
        ([0, 0, 1], [0.3, 0.9, 1], 0.6642857, 0, 7),
        ([0.1, 0.1, 0.1], [0.15, 0.26, 0.30], 0.1607, 0, 4),
    ],
    ids=["a defaults", "b defaults", "c defaults", "10% on all"],
)
def test_reference_vector(
    shock: list[float], final: list[float], additional: float, defaults: int, decimals: int
) -> None:
    result = debtrank(EXPOSURES, BUFFERS, WEIGHTS, shock)
    np.testing.assert_allclose(result.final, final, atol=1e-12)
    assert round(result.additional_stress, decimals) == additional
    assert result.additional_defaults == defaults


def test_c_defaults_propagates_along_the_chain_c_b_a() -> None:
    # c hits b (round 1), b hits a (round 2), a hits b again (round 3), then nobody is left distressed.
    assert debtrank(EXPOSURES, BUFFERS, WEIGHTS, [0, 0, 1]).rounds == 3


def test_differential_variant_counts_stress_that_returns_around_the_cycle() -> None:
    result = debtrank(EXPOSURES, BUFFERS, WEIGHTS, [0, 0, 1], variant="differential")
    assert round(result.additional_stress, 7) == 0.75
    np.testing.assert_allclose(result.final, [0.5, 1, 1], atol=1e-9)
    assert result.additional_defaults == 1


def test_differential_is_never_below_original() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        exposures = rng.exponential(size=(6, 6)) * (rng.random((6, 6)) < 0.5)
        np.fill_diagonal(exposures, 0)
        buffers, weights, shock = rng.uniform(0.5, 5, 6), rng.uniform(0, 1, 6), rng.uniform(0, 0.5, 6)
        original = debtrank(exposures, buffers, weights, shock)
        differential = debtrank(exposures, buffers, weights, shock, variant="differential")
        assert (differential.final >= original.final - 1e-9).all()
        assert ((original.final >= 0) & (original.final <= 1)).all()


def test_impact_is_capped_at_one() -> None:
    expected = np.array([[0, 0.5, 0], [1, 0, 0.6], [1, 1, 0]])
    np.testing.assert_allclose(impact_matrix(EXPOSURES, BUFFERS), expected)


def test_no_shock_means_no_stress() -> None:
    result = debtrank(EXPOSURES, BUFFERS, WEIGHTS, [0, 0, 0])
    assert result.additional_stress == 0 and result.rounds == 0


@pytest.mark.parametrize(
    ("exposures", "buffers", "weights", "shock", "message"),
    [
        (
            [[0, 1]],
            BUFFERS,
            WEIGHTS,
            [1, 0, 0],
            r"exposures: expected a square 2-D array, got shape \(1, 2\)",
        ),
        (EXPOSURES, [2, 5], WEIGHTS, [1, 0, 0], r"buffers: expected shape \(3,\)"),
        (EXPOSURES, [2, 0, 2], WEIGHTS, [1, 0, 0], r"buffers: must be positive .* zero at \[1\]"),
        ([[0, -1, 0], [0, 0, 0], [0, 0, 0]], BUFFERS, WEIGHTS, [1, 0, 0], r"exposures: contains negative"),
        (EXPOSURES, BUFFERS, [0, 0, 0], [1, 0, 0], "weights: must not all be zero"),
        (EXPOSURES, BUFFERS, WEIGHTS, [1.5, 0, 0], r"shock: values must lie in \[0, 1\]; above 1 at \[0\]"),
        (EXPOSURES, BUFFERS, WEIGHTS, [np.nan, 0, 0], "shock: contains NaN"),
    ],
)
def test_bad_input_names_the_problem(
    exposures: object, buffers: object, weights: object, shock: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        debtrank(exposures, buffers, weights, shock)  # type: ignore[arg-type]


def test_unknown_variant() -> None:
    with pytest.raises(ValueError, match="variant: expected 'original' or 'differential'"):
        debtrank(EXPOSURES, BUFFERS, WEIGHTS, [1, 0, 0], variant="other")  # type: ignore[arg-type]


def _random_network(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 60))
    exposures = rng.exponential(size=(n, n)) * (rng.random((n, n)) < 0.2)
    # A ring through every node: stress can always come back around a cycle.
    exposures[np.arange(n), (np.arange(n) + 1) % n] += rng.uniform(0.5, 3, n)
    buffers = rng.uniform(0.2, 5, n)
    shock = rng.uniform(0, 1, n) * (rng.random(n) < 0.3)
    shock[int(rng.integers(n))] = 1.0
    return exposures, buffers, rng.uniform(0, 1, n), shock


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("layout", [sparse.csr_array, sparse.csc_array, sparse.csr_matrix])
def test_sparse_equals_the_dense_original(seed: int, layout: type) -> None:
    exposures, buffers, weights, shock = _random_network(seed)
    dense = debtrank(exposures, buffers, weights, shock, variant="original")
    result = sparse_debtrank(layout(exposures), buffers, weights, shock)
    np.testing.assert_allclose(result.final, dense.final, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(result.initial, dense.initial)
    np.testing.assert_array_equal(result.weights, dense.weights)
    assert result.additional_stress == pytest.approx(dense.additional_stress, rel=1e-12, abs=1e-15)
    assert (result.additional_defaults, result.rounds, result.variant) == (
        dense.additional_defaults,
        dense.rounds,
        "original",
    )


def test_sparse_reference_vector_and_impact() -> None:
    for shock in ([1, 0, 0], [0, 1, 0], [0, 0, 1], [0.1, 0.1, 0.1]):
        dense = debtrank(EXPOSURES, BUFFERS, WEIGHTS, shock)
        result = sparse_debtrank(sparse.csr_array(np.array(EXPOSURES, float)), BUFFERS, WEIGHTS, shock)
        np.testing.assert_allclose(result.final, dense.final, atol=1e-15)
        assert result.rounds == dense.rounds
    impact = sparse_impact_matrix(sparse.csc_array(np.array(EXPOSURES, float)), BUFFERS)
    np.testing.assert_allclose(impact.toarray(), impact_matrix(EXPOSURES, BUFFERS))


def test_sparse_leaves_the_callers_matrix_alone_and_sums_duplicates() -> None:
    coo = sparse.coo_array(([1.0, 1.0, 3.0], ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
    result = sparse_debtrank(coo, [4, 6], [1, 1], [0, 1])
    np.testing.assert_allclose(result.final, [0.5, 1.0])  # a takes 2/4 of b's default
    np.testing.assert_array_equal(coo.data, [1.0, 1.0, 3.0])


@pytest.mark.parametrize(
    ("exposures", "buffers", "weights", "shock", "message"),
    [
        (EXPOSURES, [2, 5], WEIGHTS, [1, 0, 0], r"buffers: expected shape \(3,\)"),
        (EXPOSURES, [2, 0, 2], WEIGHTS, [1, 0, 0], r"buffers: must be positive .* zero at \[1\]"),
        (
            [[0, -1, 0], [0, 0, 0], [0, 0, 0]],
            BUFFERS,
            WEIGHTS,
            [1, 0, 0],
            r"exposures: contains negative values at \[\(0, 1\)\]",
        ),
        ([[0, np.inf, 0], [0, 0, 0], [0, 0, 0]], BUFFERS, WEIGHTS, [1, 0, 0], "exposures: contains NaN"),
        (EXPOSURES, BUFFERS, [0, 0, 0], [1, 0, 0], "weights: must not all be zero"),
        (EXPOSURES, BUFFERS, WEIGHTS, [1.5, 0, 0], r"shock: values must lie in \[0, 1\]; above 1 at \[0\]"),
        (EXPOSURES, BUFFERS, WEIGHTS, [np.nan, 0, 0], "shock: contains NaN"),
    ],
)
def test_sparse_rejects_what_the_dense_rejects(
    exposures: list[list[float]], buffers: object, weights: object, shock: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        debtrank(exposures, buffers, weights, shock)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        sparse_debtrank(sparse.csr_array(np.array(exposures)), buffers, weights, shock)  # type: ignore[arg-type]


def test_sparse_wants_a_square_sparse_matrix() -> None:
    with pytest.raises(ValueError, match=r"expected a square 2-D array, got shape \(1, 2\)"):
        sparse_debtrank(sparse.csr_array(np.ones((1, 2))), BUFFERS, WEIGHTS, [1, 0, 0])
    with pytest.raises(ValueError, match=r"exposures: expected a scipy\.sparse matrix, got ndarray"):
        sparse_debtrank(np.array(EXPOSURES), BUFFERS, WEIGHTS, [1, 0, 0])
