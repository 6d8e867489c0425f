"""Eisenberg–Noe clearing against the reference vector, and its defining properties on random networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from graph.clearing import clear, relative_liabilities

LIABILITIES = [[0, 4, 0], [0, 0, 3], [2, 0, 0]]
SHOCKED_ASSETS = [18, 18, 9]  # [20, 20, 10] after a 10% shock
EXTERNAL_LIABILITIES = [17, 18, 8]


def test_reference_vector() -> None:
    result = clear(LIABILITIES, SHOCKED_ASSETS, EXTERNAL_LIABILITIES)
    np.testing.assert_allclose(result.payments, [3, 3, 2])
    np.testing.assert_allclose(result.equity, [-1, 0, 2])
    assert result.defaulted.tolist() == [True, False, False]


def test_initial_equity_of_the_reference_is_full_payment() -> None:
    # The reference's initial equity [-1, 1, 2] is the clearing equity with everyone paying in full.
    owed = np.array(LIABILITIES, dtype=float)
    net = np.subtract(SHOCKED_ASSETS, EXTERNAL_LIABILITIES)
    full = owed.sum(axis=1)
    np.testing.assert_allclose(net + relative_liabilities(owed).T @ full - full, [-1, 1, 2])


def test_without_shock_everyone_pays() -> None:
    result = clear(LIABILITIES, [20, 20, 10], EXTERNAL_LIABILITIES)
    np.testing.assert_allclose(result.payments, [4, 3, 2])
    assert not result.defaulted.any()


def test_a_closed_cycle_without_assets_clears_at_zero() -> None:
    # Both owe each other 1 and are 0.5 short externally: only p = 0 is a fixed point.
    result = clear([[0, 1], [1, 0]], [0, 0], [0.5, 0.5])
    np.testing.assert_allclose(result.payments, [0, 0])
    np.testing.assert_allclose(result.equity, [-1.5, -1.5])


def test_a_cycle_with_no_shortfall_pays_in_full() -> None:
    np.testing.assert_allclose(clear([[0, 1], [1, 0]], [0, 0], [0, 0]).payments, [1, 1])


def test_exact_where_fixed_point_iteration_crawls() -> None:
    # 0 owes 1 100; 1 owes 0 99 and 2 one. Neither has anything of its own, so p* = 0, which plain
    # iteration only approaches by 1% a round; the exact solve for the partial payers lands on it at once.
    result = clear([[0, 100, 0], [99, 0, 1], [0, 0, 0]], [0, 0, 0], [0, 0, 0])
    np.testing.assert_array_equal(result.payments, [0, 0, 0])
    assert result.rounds <= 3
    assert result.defaulted.tolist() == [True, True, False]


def test_reference_clears_in_few_rounds() -> None:
    assert clear(LIABILITIES, SHOCKED_ASSETS, EXTERNAL_LIABILITIES).rounds <= 3


@pytest.mark.parametrize(
    ("liabilities", "assets", "message"),
    [
        ([[0, 1, 0]], [1, 1, 1], r"liabilities: expected a square 2-D array"),
        ([[1, 0], [0, 0]], [1, 1], r"non-zero diagonal"),
        ([[0, -1], [0, 0]], [1, 1], r"liabilities: contains negative values at \[\(0, 1\)\]"),
        ([[0, 1], [0, 0]], [1, 1, 1], r"external_assets: expected shape \(2,\)"),
    ],
)
def test_bad_input_names_the_problem(liabilities: object, assets: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clear(liabilities, assets, [0] * len(liabilities))  # type: ignore[arg-type]


def _picard(owed: np.ndarray, net: np.ndarray) -> np.ndarray:
    """Plain fixed-point iteration from full payment: slow, but converges to the greatest clearing vector."""
    full, relative = owed.sum(axis=1), relative_liabilities(owed)
    p: np.ndarray = full.copy()
    for _ in range(100_000):
        previous, p = p, np.clip(net + relative.T @ p, 0.0, full)
        if np.abs(p - previous).max() < 1e-13:
            break
    return p


@st.composite
def networks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 6))
    values = st.floats(0, 100, allow_nan=False).map(lambda v: round(v, 2))
    owed = draw(arrays(np.float64, (n, n), elements=values))
    # Sparse networks are the interesting ones: zeroes make chains, closed cycles and isolated nodes.
    owed *= draw(arrays(np.bool_, (n, n)))
    np.fill_diagonal(owed, 0.0)
    return owed, draw(arrays(np.float64, n, elements=values)), draw(arrays(np.float64, n, elements=values))


@settings(max_examples=150, deadline=None)
@given(networks())
def test_clearing_properties(network: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    owed, assets, external = network
    result = clear(owed, assets, external)
    p, full = result.payments, owed.sum(axis=1)
    net, relative = assets - external, relative_liabilities(owed)
    scale = 1e-9 * max(1.0, full.max(), np.abs(net).max())
    wealth = net + relative.T @ p
    assert (p >= 0).all() and (p <= full + scale).all()  # never more than owed, never negative
    np.testing.assert_allclose(p, np.clip(wealth, 0, full), atol=scale)  # a fixed point
    # Limited liability: a defaulting node pays everything it has left after senior creditors.
    short = p < full - scale
    np.testing.assert_allclose(p[short], np.maximum(wealth[short], 0), atol=scale)
    assert result.defaulted[short].all() and (result.equity[~result.defaulted] >= -scale).all()
    np.testing.assert_allclose(p, _picard(owed, net), atol=1e-6 * max(1.0, full.max()))
