"""DebtRank (Battiston et al., 2012): how far a shock spreads through a network of exposures.

Node i is exposed to node j by ``A[i, j]`` (what i loses if j is wiped out) and can absorb ``buffers[i]``
of losses before it defaults. The impact of j on i is ``V[i, j] = min(1, A[i, j] / buffers[i])`` and the
stress ``h`` of a node runs from 0 (untouched) to 1 (defaulted).

Two variants, chosen with ``variant``:

``"original"`` (the default; Battiston et al. 2012, as in the R package NetworkRiskMeasures)
    Every node receives stress each round, but only nodes distressed *this* round (state D) propagate,
    once, and then turn inactive (state I): ``h ← min(1, h + V[:, D] · h[D])``. A node whose stress rises
    after it went inactive never passes on the increase, which keeps the original variant from counting
    a loss twice around a cycle.

``"differential"`` (Bardoscia et al. 2015)
    Every node passes on its last increment every round: ``h_{t+1} = min(1, h_t + V · (h_t − h_{t−1}))``,
    until no increment is left. Stress that returns around a cycle propagates again, so results are
    greater than or equal to the original variant's.

:func:`sparse_debtrank` runs the original variant on a ``scipy.sparse`` matrix of exposures, for networks
too large to hold densely: each round is one sparse product, ``V[:, D] · h[D] = V · (h ⊙ 1_D)``.

The weighted additional stress is ``Σ w·h_final − Σ w·h_initial`` with the economic weights normalised to
sum to 1: the system-wide loss caused by contagion, beyond the initial shock itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from graph.errors import GraphInputError
from graph.validation import square_matrix, vector

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Variant = Literal["original", "differential"]

# The differential variant converges geometrically around cycles; increments below this are noise.
DIFFERENTIAL_TOLERANCE = 1e-12
MAX_DIFFERENTIAL_ROUNDS = 100_000


@dataclass(frozen=True)
class DebtRankResult:
    """Final stress per node and the system-wide summary of one DebtRank run."""

    initial: FloatArray
    final: FloatArray
    weights: FloatArray
    additional_stress: float
    additional_defaults: int
    rounds: int
    variant: Variant


def impact_matrix(exposures: ArrayLike, buffers: ArrayLike) -> FloatArray:
    """``V[i, j] = min(1, A[i, j] / buffers[i])``, after validating both inputs."""
    matrix = _matrix("exposures", exposures)
    buffer = _buffers(buffers, matrix.shape[0])
    return np.minimum(1.0, matrix / buffer[:, None])


def sparse_impact_matrix(exposures: Any, buffers: ArrayLike) -> Any:
    """:func:`impact_matrix` of a ``scipy.sparse`` matrix, as a CSR matrix: the same entries, computed
    on the stored ones only."""
    matrix = _sparse_matrix(exposures)
    buffer = _buffers(buffers, matrix.shape[0])
    matrix.data = np.minimum(1.0, matrix.data / buffer[_rows(matrix)])
    return matrix


def debtrank(
    exposures: ArrayLike,
    buffers: ArrayLike,
    weights: ArrayLike,
    shock: ArrayLike,
    variant: Variant = "original",
) -> DebtRankResult:
    """Run DebtRank from an initial stress vector ``shock`` (each in [0, 1]; 1 means defaulted)."""
    impact = impact_matrix(exposures, buffers)
    n = impact.shape[0]
    weight = _weights(weights, n)
    initial = _shock(shock, n)
    if variant == "original":
        final, rounds = _original(impact, initial)
    elif variant == "differential":
        final, rounds = _differential(impact, initial)
    else:
        raise GraphInputError(f"variant: expected 'original' or 'differential', got {variant!r}")
    return _result(initial, final, weight, rounds, variant)


def sparse_debtrank(
    exposures: Any, buffers: ArrayLike, weights: ArrayLike, shock: ArrayLike
) -> DebtRankResult:
    """The original variant of :func:`debtrank` on a ``scipy.sparse`` matrix of exposures (CSR or CSC;
    any sparse format is converted), with the same checks and the same result."""
    impact = sparse_impact_matrix(exposures, buffers)
    n = impact.shape[0]
    weight = _weights(weights, n)
    initial = _shock(shock, n)
    final, rounds = _original(impact, initial)
    return _result(initial, final, weight, rounds, "original")


def _result(
    initial: FloatArray, final: FloatArray, weight: FloatArray, rounds: int, variant: Variant
) -> DebtRankResult:
    return DebtRankResult(
        initial=initial,
        final=final,
        weights=weight,
        additional_stress=float(weight @ final - weight @ initial),
        additional_defaults=int(((final >= 1.0) & (initial < 1.0)).sum()),
        rounds=rounds,
        variant=variant,
    )


def _original(impact: Any, initial: FloatArray) -> tuple[FloatArray, int]:
    """The original variant on a dense or a ``scipy.sparse`` impact matrix: ``V · (h ⊙ 1_D)`` is
    ``V[:, D] · h[D]`` without slicing columns, which a sparse matrix does slowly."""
    h = initial.copy()
    distressed = h > 0
    inactive = np.zeros_like(distressed)
    rounds = 0
    while distressed.any():
        received: FloatArray = np.asarray(impact @ np.where(distressed, h, 0.0), dtype=np.float64)
        h = np.minimum(1.0, h + received)
        inactive |= distressed
        distressed = (h > 0) & ~inactive
        rounds += 1
    return h, rounds


def _differential(impact: FloatArray, initial: FloatArray) -> tuple[FloatArray, int]:
    h, increment = initial.copy(), initial.copy()
    rounds = 0
    while increment.max(initial=0.0) > DIFFERENTIAL_TOLERANCE:
        if rounds == MAX_DIFFERENTIAL_ROUNDS:
            raise RuntimeError(f"differential DebtRank did not converge in {rounds} rounds")
        updated = np.minimum(1.0, h + impact @ increment)
        h, increment = updated, updated - h
        rounds += 1
    return h, rounds


def _matrix(name: str, values: ArrayLike) -> FloatArray:
    return square_matrix(name, values)


def _sparse_matrix(values: Any) -> Any:
    """A CSR copy (the caller's matrix is left alone) with duplicates summed, checked as
    :func:`square_matrix` checks a dense one."""
    from scipy import sparse  # here: the dense callers (the CLI, the reports) need not load it

    if not sparse.issparse(values):
        raise GraphInputError(
            f"exposures: expected a scipy.sparse matrix, got {type(values).__name__}; use debtrank"
        )
    shape = tuple(values.shape)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise GraphInputError(f"exposures: expected a square 2-D array, got shape {shape}")
    matrix = sparse.csr_array(values, dtype=np.float64, copy=True)
    matrix.sum_duplicates()
    data: FloatArray = matrix.data
    if not np.isfinite(data).all():
        raise GraphInputError("exposures: contains NaN or infinite values")
    if (data < 0).any():
        bad = np.flatnonzero(data < 0)[:5]
        where = list(zip(_rows(matrix)[bad].tolist(), matrix.indices[bad].tolist(), strict=True))
        raise GraphInputError(f"exposures: contains negative values at {where}")
    return matrix


def _rows(matrix: Any) -> NDArray[np.int64]:
    """The row of each stored entry of a CSR matrix."""
    rows: NDArray[np.int64] = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return rows


def _buffers(values: ArrayLike, n: int) -> FloatArray:
    buffer = _vector("buffers", values, n)
    if (buffer <= 0).any():
        bad = np.flatnonzero(buffer <= 0).tolist()
        raise GraphInputError(
            f"buffers: must be positive (a node with no buffer has defaulted); zero at {bad}"
        )
    return buffer


def _shock(values: ArrayLike, n: int) -> FloatArray:
    initial = _vector("shock", values, n)
    if (initial > 1).any():
        raise GraphInputError(
            f"shock: values must lie in [0, 1]; above 1 at {np.flatnonzero(initial > 1).tolist()}"
        )
    return initial


def _vector(name: str, values: ArrayLike, n: int) -> FloatArray:
    return vector(name, values, n, "exposure")


def _weights(values: ArrayLike, n: int) -> FloatArray:
    weight = _vector("weights", values, n)
    total = float(weight.sum())
    if total <= 0:
        raise GraphInputError("weights: must not all be zero")
    normalised: FloatArray = weight / total
    return normalised
