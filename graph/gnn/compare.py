"""The comparison the surrogate ships on: every model on the same temporal split, over several seeds.

    result = compare(snapshots, scenarios=200, seeds=(0, 1, 2, 3, 4))

Per model: AUPRC on every held-out row and on the cascade-induced subset (mean and spread over seeds),
VaR95 of bad debt on each held-out set against the simulator's; for the graph network against the tree
model, a paired bootstrap of the cascade-subset AUPRC difference (per seed, and its mean).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graph.gnn import metrics
from graph.gnn.baselines import (
    TreeModel,
    analytic_scores,
    first_round_shortfall,
    fit_heads,
    fit_mlp,
    fit_tree,
    scenario_table,
)
from graph.gnn.dataset import LabelledSet, Snapshot, Split, label_set, temporal_split
from graph.gnn.features import FloatArray, StaticGraph, static_graph
from graph.gnn.model import ContagionGNN
from graph.gnn.train import History, Prepared, TrainConfig, predict_gnn, prepare, train_gnn

MODELS = ("analytic", "tree", "mlp", "gnn", "gnn+tree")


@dataclass(frozen=True)
class Data:
    """Every prepared set of a split, by side."""

    split: Split
    train: list[Prepared]
    valid: list[Prepared]
    test: list[Prepared]
    later: list[Prepared]
    statics: dict[int, StaticGraph]

    def held_out(self) -> dict[str, Prepared]:
        """Every held-out set by name: ``severe:T`` (later snapshot T, severe family), ``later:T``."""
        return {
            **{f"severe:{p.labelled.snapshot}": p for p in self.test},
            **{f"later:{p.labelled.snapshot}": p for p in self.later},
        }


def build_data(snapshots: Sequence[Snapshot], scenarios: int, seed: int) -> Data:
    """Label every draw of the temporal split of ``snapshots``."""
    by_index = {s.index: s for s in snapshots}
    statics = {s.index: static_graph(s.markets, s.pools, s.oracles) for s in snapshots}
    split = temporal_split(list(by_index), seed)

    def side(keys: Sequence[tuple[int, str, int]]) -> list[Prepared]:
        found = []
        for t, family, draw in keys:
            labelled: LabelledSet = label_set(by_index[t], family, draw, scenarios)
            found.append(prepare(labelled, statics[t]))
        return found

    return Data(split, side(split.train), side(split.valid), side(split.test), side(split.later), statics)


def _rows(sets: Sequence[Prepared]) -> tuple[FloatArray, np.ndarray, FloatArray, FloatArray]:
    table = np.concatenate([p.table for p in sets])
    liquidated = np.concatenate([p.liquidated for p in sets])
    scen = np.concatenate([scenario_table(p.static, p.shocks, p.table, p.approx) for p in sets])
    bad = np.concatenate([p.labelled.bad_debt for p in sets])
    return table, liquidated, scen, bad


def _values(sets: Sequence[Prepared]) -> FloatArray:
    """Debt repaid per row (USD), in the rows' order."""
    return np.concatenate([p.labelled.liquidated_value.reshape(-1) for p in sets])


@dataclass
class Fitted:
    """One seed's models."""

    tree: TreeModel
    gnn: ContagionGNN
    history: History
    ensemble: TreeModel
    mlp: Any
    seconds: dict[str, float]


def fit_all(data: Data, seed: int, config: TrainConfig) -> Fitted:
    """Every learned model of one seed on the training side."""
    table, liquidated, scen, bad = _rows(data.train + data.valid)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    tree = fit_tree(table, liquidated, scen, bad, seed, _values(data.train + data.valid))
    seconds["tree"] = time.perf_counter() - start
    start = time.perf_counter()
    fitting = data.train + data.valid
    tree.heads = fit_heads(
        table,
        np.concatenate([anchor_of(p) for p in fitting]),
        np.concatenate([p.labelled.first_round.reshape(-1) for p in fitting]),
        np.concatenate([p.labelled.bad_debt_account.reshape(-1) for p in fitting]),
        seed,
    )
    seconds["tree_heads"] = time.perf_counter() - start
    start = time.perf_counter()
    mlp = fit_mlp(table, liquidated, seed)
    seconds["mlp"] = time.perf_counter() - start
    start = time.perf_counter()
    gnn, history = train_gnn(data.train, data.valid, TrainConfig(**{**config.__dict__, "seed": seed}))
    seconds["gnn"] = time.perf_counter() - start
    embedded = np.concatenate(
        [
            np.hstack([p.table, predict_gnn(gnn, p.static, p.shocks, p.table)[2]])
            for p in data.train + data.valid
        ]
    )
    ensemble = fit_tree(embedded, liquidated, scen, bad, seed)
    return Fitted(tree, gnn, history, ensemble, mlp, seconds)


def test_scores(fitted: Fitted, prepared: Prepared) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """Per model: liquidation scores per row, and bad debt per scenario (USD)."""
    probs, by_market, embeds = predict_gnn(fitted.gnn, prepared.static, prepared.shocks, prepared.table)
    scen = scenario_table(prepared.static, prepared.shocks, prepared.table, prepared.approx)
    scores = {
        "analytic": analytic_scores(prepared.table),
        "tree": fitted.tree.scores(prepared.table),
        "mlp": np.asarray(fitted.mlp.predict_proba(prepared.table)[:, 1], dtype=np.float64),
        "gnn": probs,
        "gnn+tree": fitted.ensemble.scores(np.hstack([prepared.table, embeds])),
    }
    bad = {
        "analytic": first_round_shortfall(prepared.static, prepared.shocks),
        "tree": fitted.tree.bad_debt_usd(scen),
        "gnn": by_market.sum(axis=1),
        "gnn+tree": fitted.ensemble.bad_debt_usd(scen),
    }
    return scores, bad


def compare(
    snapshots: Sequence[Snapshot], scenarios: int, seeds: Sequence[int], config: TrainConfig | None = None
) -> dict[str, Any]:
    """The comparison document (see the module)."""
    config = config or TrainConfig()
    data = build_data(snapshots, scenarios, seeds[0])
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        per_seed.append(one_seed(data, seed, config))
    return summarise(data, per_seed)


def one_seed(data: Data, seed: int, config: TrainConfig) -> dict[str, Any]:
    """Fit every model of one seed and score each held-out set; ``fitted`` holds the models."""
    fitted = fit_all(data, seed, config)
    found: dict[str, Any] = {
        "seed": seed,
        "fit_seconds": fitted.seconds,
        "best_epoch": fitted.history.best_epoch,
    }
    for name, prepared in data.held_out().items():
        scores, bad = test_scores(fitted, prepared)
        first = prepared.labelled.first_round
        found[name] = {
            "models": {m: metrics.scores_of(first, s) for m, s in scores.items()},
            "var": {m: metrics.var_error(b, prepared.labelled.bad_debt) for m, b in bad.items()},
            "value": metrics.value_error(
                fitted.tree.liquidated_usd(prepared.table, scores["tree"]).reshape(first.shape),
                prepared.labelled.liquidated_value,
            ),
            **_heads_scores(fitted.tree, prepared),
            "bootstrap_gnn_vs_tree": metrics.paired_bootstrap(
                first, scores["gnn"], scores["tree"], seed=seed
            ),
            "bootstrap_ensemble_vs_tree": metrics.paired_bootstrap(
                first, scores["gnn+tree"], scores["tree"], seed=seed
            ),
        }
    found["fitted"] = fitted
    return found


def anchor_of(prepared: Prepared) -> FloatArray:
    """The approximate cascade's bad debt per row of a prepared set (USD), the per-account heads' anchor."""
    found: FloatArray = prepared.approx.bad_debt_account.reshape(-1)
    return found


def _heads_scores(tree: TreeModel, prepared: Prepared) -> dict[str, Any]:
    """The trees' per-account bad debt and first round against the simulator's on one held-out set."""
    if tree.heads is None:
        return {}
    labelled, shape = prepared.labelled, prepared.labelled.first_round.shape
    predicted = tree.heads.bad_debt_usd(prepared.table, anchor_of(prepared)).reshape(shape)
    return {
        "account_bad_debt": metrics.account_bad_debt_error(predicted, labelled.bad_debt_account),
        "round": metrics.round_error(
            tree.heads.first_round(prepared.table).reshape(shape), prepared.table, labelled.first_round
        ),
    }


def _mean(values: Sequence[float]) -> dict[str, float]:
    array = np.array(values, dtype=np.float64)
    kept = array[np.isfinite(array)]  # NaN: a set without positives, or a VaR too small to compare
    if kept.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0.0}
    return {"mean": float(kept.mean()), "std": float(kept.std()), "n": float(kept.size)}


def _group(per_seed: Sequence[Mapping[str, Any]], tests: Sequence[str]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for model in MODELS:
        rows = [s[t]["models"][model] for s in per_seed for t in tests]
        table[model] = {
            "auprc": _mean([r["auprc"] for r in rows]),
            "auprc_cascade": _mean([r["auprc_cascade"] for r in rows]),
        }
        var_rows = [s[t]["var"][model] for s in per_seed for t in tests if model in s[t]["var"]]
        if var_rows:
            table[model]["var95_relative_error"] = _mean([r["relative_error"] for r in var_rows])
    values = [s[t]["value"] for s in per_seed for t in tests if "value" in s[t]]
    for measure in ("total_relative_error", "scenario_median_relative_error"):
        table["tree"][f"liquidated_value_{measure}"] = _mean([v[measure] for v in values])
    for part in ("account_bad_debt", "round"):
        found = [s[t][part] for s in per_seed for t in tests if part in s[t]]
        if found:
            table["tree"][part] = {k: _mean([f[k] for f in found]) for k in found[0]}
    for name in ("bootstrap_gnn_vs_tree", "bootstrap_ensemble_vs_tree"):
        table[name] = {
            "difference": _mean([s[t][name]["difference"] for s in per_seed for t in tests]),
            "intervals": [
                [round(s[t][name]["low"], 4), round(s[t][name]["high"], 4)] for s in per_seed for t in tests
            ],
            "intervals_excluding_zero": sum(s[t][name]["low"] > 0 for s in per_seed for t in tests),
        }
    return table


def summarise(data: Data, per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Means over seeds and held-out sets, per model, for the severe sets and the later ones apart."""
    held = data.held_out()
    groups = {g: [k for k in held if k.startswith(g + ":")] for g in ("severe", "later")}
    return {
        "split": {
            "train": data.split.train,
            "valid": data.split.valid,
            "test": data.split.test,
            "later": data.split.later,
        },
        "held_out": {
            name: {
                "key": p.labelled.key,
                "scenarios": int(p.shocks.shape[0]),
                "accounts": len(p.static.accounts),
                "cascade_positives": int((p.labelled.first_round > 1).sum()),
                "liquidations": int((p.labelled.first_round > 0).sum()),
                "var95_simulator": metrics.var95(p.labelled.bad_debt),
            }
            for name, p in held.items()
        },
        "models": {g: _group(per_seed, names) for g, names in groups.items()},
        "seeds": [{k: v for k, v in s.items() if k != "fitted"} for s in per_seed],
    }
