"""How surrogates are scored: AUPRC overall and on the cascade-induced subset, a paired bootstrap over
scenarios, the VaR95 of bad debt against the simulator's.

The cascade-induced subset is every (scenario, account) the simulator did not liquidate in round 1; its
positives are the accounts liquidated in a later round. Resampling is by scenario (an account's labels
within a scenario depend on each other through the cascade), the same scenarios for both models.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score

from graph.gnn.features import FEATURES

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

MIN_VAR_USD = 1_000.0


def auprc(labels: NDArray[np.bool_], scores: FloatArray) -> float:
    """Average precision; NaN when there is no positive."""
    if not labels.any():
        return math.nan
    return float(average_precision_score(labels, scores))


def cascade_mask(first_round: IntArray) -> NDArray[np.bool_]:
    """Rows (flattened, scenario-major) that belong to the cascade-induced subset."""
    result: NDArray[np.bool_] = first_round.reshape(-1) != 1
    return result


def scores_of(first_round: IntArray, scores: FloatArray) -> dict[str, float]:
    """AUPRC on every row and on the cascade-induced subset, and the subset's positives."""
    flat = first_round.reshape(-1)
    subset = cascade_mask(first_round)
    return {
        "auprc": auprc(flat > 0, scores),
        "auprc_cascade": auprc(flat[subset] > 1, scores[subset]),
        "cascade_positives": float((flat > 1).sum()),
    }


def paired_bootstrap(
    first_round: IntArray, ours: FloatArray, theirs: FloatArray, *, draws: int = 500, seed: int = 0
) -> dict[str, float]:
    """Cascade-subset AUPRC difference (ours − theirs) with a 95 % interval, resampling scenarios."""
    s = first_round.shape[0]
    a, b = ours.reshape(s, -1), theirs.reshape(s, -1)
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(draws):
        pick = rng.integers(0, s, size=s)
        rows = first_round[pick]
        subset = cascade_mask(rows)
        labels = rows.reshape(-1)[subset] > 1
        if labels.any():
            found.append(
                auprc(labels, a[pick].reshape(-1)[subset]) - auprc(labels, b[pick].reshape(-1)[subset])
            )
    point = scores_of(first_round, ours.reshape(-1))["auprc_cascade"]
    point -= scores_of(first_round, theirs.reshape(-1))["auprc_cascade"]
    low, high = np.quantile(found, [0.025, 0.975]) if found else (math.nan, math.nan)
    return {"difference": point, "low": float(low), "high": float(high), "draws": float(len(found))}


def var95(losses: FloatArray) -> float:
    """The 95 % quantile of losses (bad debt per scenario)."""
    return float(np.quantile(losses, 0.95))


def var_error(predicted: FloatArray, simulated: FloatArray) -> dict[str, float]:
    """Each VaR95, the absolute error and the relative one (NaN below ``MIN_VAR_USD``: a relative error
    of a few dollars of bad debt says nothing)."""
    ours, truth = var95(predicted), var95(simulated)
    relative = abs(ours - truth) / truth if truth >= MIN_VAR_USD else math.nan
    return {
        "var95": ours,
        "var95_simulator": truth,
        "absolute_error": abs(ours - truth),
        "relative_error": relative,
    }


def value_error(predicted: FloatArray, simulated: FloatArray) -> dict[str, float]:
    """Debt repaid, predicted against simulated, both (scenarios, accounts) USD: the relative error of
    the total over the set, and the median relative error of each scenario's total (scenarios with at
    least ``MIN_VAR_USD`` liquidated; NaN when there are none)."""
    truth, ours = simulated.sum(axis=1), predicted.sum(axis=1)
    kept = truth >= MIN_VAR_USD
    total = float(truth.sum())
    return {
        "total_relative_error": abs(float(ours.sum()) - total) / total if total >= MIN_VAR_USD else math.nan,
        "scenario_median_relative_error": (
            float(np.median(np.abs(ours[kept] - truth[kept]) / truth[kept])) if kept.any() else math.nan
        ),
    }


def account_bad_debt_error(predicted: FloatArray, simulated: FloatArray) -> dict[str, float]:
    """Bad debt per account, predicted against simulated, both (scenarios, accounts) USD: AUPRC of which
    accounts end with any (the prediction as the score), the relative error of the total, the median
    relative error of each scenario's total (scenarios with at least ``MIN_VAR_USD``) and the share of
    the simulator's bad debt held by the accounts the prediction ranks first in their scenario, as many
    as the simulator has."""
    owing = simulated > 0
    found = value_error(predicted, simulated)
    caught = total = 0.0
    for row_pred, row_sim, row_owing in zip(predicted, simulated, owing, strict=True):
        k = int(row_owing.sum())
        if k:
            top = np.argsort(-row_pred, kind="stable")[:k]
            caught += float(row_sim[top].sum())
            total += float(row_sim.sum())
    return {
        "auprc_owing": auprc(owing.reshape(-1), predicted.reshape(-1)),
        **found,
        "top_ranked_share": caught / total if total else math.nan,
    }


def round_error(predicted: FloatArray, table: FloatArray, first_round: IntArray) -> dict[str, float]:
    """On the rows the simulator liquidates: the mean absolute error of the predicted first round, the
    share predicted exactly (rounded), the same share on the cascade-induced rows (round ≥ 2), and for
    comparison the approximate cascade's exact share (its round, or 1 where it does not liquidate)."""
    liquidated = first_round.reshape(-1) > 0
    truth = first_round.reshape(-1)[liquidated].astype(np.float64)
    if truth.size == 0:
        nan = math.nan
        return {"mae": nan, "exact_share": nan, "cascade_exact_share": nan, "approx_exact_share": nan}
    ours = np.rint(predicted.reshape(-1)[liquidated])
    approx = np.maximum(table[:, FEATURES.index("approx_round")][liquidated], 1.0)
    later = truth >= 2
    return {
        "mae": float(np.abs(predicted.reshape(-1)[liquidated] - truth).mean()),
        "exact_share": float((ours == truth).mean()),
        "cascade_exact_share": float((ours[later] == truth[later]).mean()) if later.any() else math.nan,
        "approx_exact_share": float((approx == truth).mean()),
    }
