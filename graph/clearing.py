"""Eisenberg–Noe clearing: who pays what when some members of a payment network cannot pay in full.

``L[i, j]`` is what i owes j. Node i's nominal interbank obligation is ``p̄_i = Σ_j L[i, j]``, paid to its
creditors in proportion ``Π[i, j] = L[i, j] / p̄_i``. External liabilities are senior: they are netted
against external assets first, ``e = external_assets − external_liabilities`` (which may be negative), and
what is left, plus what the node receives, pays its interbank creditors. The clearing vector is the
greatest fixed point of

    p = min(p̄, max(0, e + Πᵀ p))

so that payments never exceed obligations (``p ≤ p̄``), nodes pay all they have when they default
(limited liability) and nothing is paid out of thin air (``p ≥ 0``). Clearing equity is
``e + Πᵀ p* − p̄``: what a node is worth after clearing, negative by its unpaid shortfall when it defaults.
The defaulting set is the nodes with negative clearing equity: those that pay less than they owe their
interbank creditors, and those that cannot even meet their external liabilities.

The solver is the fictitious default algorithm generalised to negative net assets: start from full
payment; each round clips the candidate to [0, p̄] and solves the linear system exactly for the nodes
paying part of their debt, taking everyone else's payment as given. Every candidate is an upper bound on
the greatest clearing vector (the map is monotone), so the rounds decrease to it and stop when a round
changes nothing: exactly, within a few rounds per node, except for closed groups of partial payers that
owe only each other (a singular system), which converge geometrically like plain fixed-point iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from graph.errors import GraphInputError
from graph.validation import square_matrix, vector

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Relative to the largest obligation: payments closer than this are equal, and the linear solve's
# rounding never counts as a default.
RELATIVE_TOLERANCE = 1e-12
# Rounds the solver may take before giving up; the exact solve usually finishes in a handful.
MAX_ROUNDS = 10_000


@dataclass(frozen=True)
class ClearingResult:
    """The clearing payment vector and what it means for each node."""

    payments: FloatArray
    obligations: FloatArray
    equity: FloatArray
    defaulted: BoolArray
    rounds: int


def relative_liabilities(liabilities: FloatArray) -> FloatArray:
    """``Π[i, j] = L[i, j] / Σ_j L[i, j]``; a row of zeros for a node that owes nothing."""
    totals = liabilities.sum(axis=1)
    safe = np.where(totals > 0, totals, 1.0)
    return liabilities / safe[:, None]


def clear(
    liabilities: ArrayLike, external_assets: ArrayLike, external_liabilities: ArrayLike
) -> ClearingResult:
    """Clear the network: ``liabilities[i, j]`` is what i owes j; external liabilities are senior."""
    owed = _matrix(liabilities)
    n = owed.shape[0]
    assets = _vector("external_assets", external_assets, n)
    net = assets - _vector("external_liabilities", external_liabilities, n)
    obligations, relative = owed.sum(axis=1), relative_liabilities(owed)
    scale = max(1.0, float(obligations.max(initial=0.0)), float(np.abs(net).max(initial=0.0)))
    tolerance = RELATIVE_TOLERANCE * scale
    payments, rounds = _greatest_fixed_point(relative, net, obligations, tolerance)
    equity = net + relative.T @ payments - obligations
    return ClearingResult(payments, obligations, equity, equity < -tolerance, rounds)


def _greatest_fixed_point(
    relative: FloatArray, net: FloatArray, obligations: FloatArray, tolerance: float
) -> tuple[FloatArray, int]:
    payments = obligations.copy()
    for rounds in range(1, MAX_ROUNDS + 4 * len(net) + 1):
        candidate = _round(relative, net, obligations, payments, tolerance)
        if np.abs(candidate - payments).max(initial=0.0) <= tolerance:
            return candidate, rounds
        payments = candidate
    raise RuntimeError(f"clearing did not converge in {rounds} rounds")


def _round(
    relative: FloatArray, net: FloatArray, obligations: FloatArray, payments: FloatArray, tolerance: float
) -> FloatArray:
    wealth = net + relative.T @ payments
    candidate = np.clip(wealth, 0.0, obligations)
    partial = (wealth > 0) & (wealth < obligations)
    if partial.any():
        candidate = _solve_partial(relative, net, obligations, candidate, partial, tolerance)
    return candidate


def _solve_partial(
    relative: FloatArray,
    net: FloatArray,
    obligations: FloatArray,
    candidate: FloatArray,
    partial: BoolArray,
    tolerance: float,
) -> FloatArray:
    """Exact payments of the partial payers that pass money out of their group, given everyone else's.

    For those nodes ``I − Π_PPᵀ`` has spectral radius below one, so a solution inside [0, p̄] is the
    greatest fixed point on them. Partial payers in a closed group (paying only each other) have a
    singular system with many fixed points; they keep the clipped round, which decreases towards the
    greatest one, as does any node whose exact solution falls outside [0, p̄] (reclassified next round).
    """
    solvable = partial & _leaks(relative, partial)
    inflow = net[solvable] + relative[np.ix_(~solvable, solvable)].T @ candidate[~solvable]
    system = np.eye(int(solvable.sum())) - relative[np.ix_(solvable, solvable)].T
    solved = np.linalg.solve(system, inflow)
    if (solved >= -tolerance).all() and (solved <= obligations[solvable] + tolerance).all():
        candidate[solvable] = np.clip(solved, 0.0, obligations[solvable])
    return candidate


def _leaks(relative: FloatArray, group: BoolArray) -> BoolArray:
    """Members of ``group`` from which a chain of obligations inside the group reaches someone outside it."""
    inside = relative[np.ix_(group, group)]
    leaking = inside.sum(axis=1) < 1.0 - RELATIVE_TOLERANCE
    while True:
        grown = leaking | (inside[:, leaking] > 0).any(axis=1)
        if (grown == leaking).all():
            break
        leaking = grown
    mask = np.zeros_like(group)
    mask[np.flatnonzero(group)[leaking]] = True
    return mask


def _matrix(values: ArrayLike) -> FloatArray:
    matrix = square_matrix("liabilities", values)
    if np.diag(matrix).any():
        raise GraphInputError("liabilities: a node cannot owe itself (non-zero diagonal)")
    return matrix


def _vector(name: str, values: ArrayLike, n: int) -> FloatArray:
    return vector(name, values, n, "liabilities")
