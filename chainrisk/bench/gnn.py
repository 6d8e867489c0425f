"""`chainrisk bench gnn`: the learned cascade surrogates against the simulator, accuracy and speed in one run.

Accuracy: every model (analytic first-round rule, boosted trees, MLP, graph network, graph embeddings into
the trees) on the temporal split of synthetic devnet-shaped books (:mod:`chainrisk.contagion.surrogate`),
over several seeds, with paired bootstrap intervals against the trees. Speed: scenarios per second on the
latest book for the exact engine, the vectorised engine and both surrogates, medians of repeated timings,
all on the threads given (two by default). The fast engine's labels are checked against the exact engine
on a few scenarios of the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from chainrisk.bench import machine
from chainrisk.contagion.surrogate import (
    book_graph,
    fast_path,
    finite,
    synthetic_snapshot,
    synthetic_snapshots,
)
from graph.cascade import run_cascade
from graph.fastcascade import FastCascade
from graph.gnn.approx import approximate_cascade
from graph.gnn.baselines import scenario_table
from graph.gnn.compare import build_data, one_seed, summarise
from graph.gnn.dataset import Snapshot, draw_factors, exact_agreement, label_set
from graph.gnn.features import shock_matrix, tabular
from graph.gnn.train import TrainConfig, predict_gnn

SNAPSHOTS = 6


def _median_rate(run: Callable[[], object], scenarios: int, repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"scenarios": scenarios, "median_seconds": median, "scenarios_per_second": scenarios / median}


def speed(
    snapshot: Snapshot, fitted: Any, scenarios: int, exact_scenarios: int, repeats: int
) -> dict[str, Any]:
    """Scenarios per second of each engine and surrogate on one book (severe draws)."""
    factors = draw_factors(snapshot.moving, "severe", scenarios, seed=99)
    static = book_graph(snapshot)
    fast = FastCascade.build(snapshot.markets, snapshot.pools, snapshot.oracles)

    def exact() -> None:
        for s in range(exact_scenarios):
            shock = {a: float(factors[s, k]) for k, a in enumerate(snapshot.moving)}
            run_cascade(snapshot.markets, snapshot.pools, snapshot.oracles, shock)

    def tree() -> None:
        shocks = shock_matrix(static, snapshot.moving, factors)
        approx = approximate_cascade(static, shocks)
        table = tabular(static, shocks, approx)
        fitted.tree.scores(table)
        fitted.tree.bad_debt_usd(scenario_table(static, shocks, table, approx))

    def tree_accounts() -> None:  # every per-account answer: liquidation, debt repaid, bad debt, round
        shocks = shock_matrix(static, snapshot.moving, factors)
        approx = approximate_cascade(static, shocks)
        table = tabular(static, shocks, approx)
        scores = fitted.tree.scores(table)
        fitted.tree.liquidated_usd(table, scores)
        if fitted.tree.heads is not None:
            fitted.tree.heads.bad_debt_usd(table, approx.bad_debt_account.reshape(-1))
            fitted.tree.heads.first_round(table)
        fitted.tree.bad_debt_usd(scenario_table(static, shocks, table, approx))

    def tree_var() -> None:  # the VaR screen: bad debt per scenario, no per-account scores
        shocks = shock_matrix(static, snapshot.moving, factors)
        approx = approximate_cascade(static, shocks)
        fitted.tree.bad_debt_usd(scenario_table(static, shocks, tabular(static, shocks, approx), approx))

    def gnn() -> None:
        predict_gnn(fitted.gnn, static, shock_matrix(static, snapshot.moving, factors), batch=scenarios)

    rates = {
        "exact": _median_rate(exact, exact_scenarios, repeats),
        "fast": _median_rate(lambda: fast.run(list(snapshot.moving), factors), scenarios, repeats),
        "tree": _median_rate(tree, scenarios, repeats),
        "tree_accounts": _median_rate(tree_accounts, scenarios, repeats),
        "tree_var": _median_rate(tree_var, scenarios, repeats),
        "gnn": _median_rate(gnn, scenarios, repeats),
    }
    per_second = {k: v["scenarios_per_second"] for k, v in rates.items()}
    ratios = {
        f"{model}_vs_{engine}": per_second[model] / per_second[engine]
        for model in ("tree", "tree_accounts", "tree_var", "gnn")
        for engine in ("exact", "fast")
    }
    return {"accounts": len(static.accounts), "rates": rates, "ratios": ratios}


def benchmark(
    positions: int,
    scenarios: int,
    seeds: int,
    epochs: int,
    speed_scenarios: int,
    threads: int,
    seed: int,
    speed_positions: int | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The whole benchmark document (see the module); the speed figures run on the latest snapshot of a
    book of ``speed_positions`` lines (by default the training books' size). ``step(next)`` is called as
    each of the ``seeds + 2`` stages ends, naming the next one."""
    torch.set_num_threads(threads)
    snapshots = synthetic_snapshots(SNAPSHOTS, positions, seed)
    started = time.perf_counter()
    data = build_data(snapshots, scenarios, seed)
    labelled_s = time.perf_counter() - started
    config = TrainConfig(epochs=epochs)
    per_seed = []
    for k in range(seeds):
        step(f"training seed {k + 1} of {seeds}")
        per_seed.append(one_seed(data, seed + k, config))
    step("timing the engines and models")
    document = summarise(data, per_seed)
    latest = snapshots[-1]
    check = label_set(latest, "severe", seed=98, scenarios=10)
    found: dict[str, Any] = finite(
        {
            "benchmark": "gnn",
            "machine": machine(),
            "threads": threads,
            "positions": positions,
            "scenarios_per_set": scenarios,
            "seeds": seeds,
            "config": config.__dict__,
            "labelling_seconds": labelled_s,
            "fit_seconds": [s["fit_seconds"] for s in per_seed],
            "held_out": document["held_out"],
            "models": document["models"],
            "fast_path": fast_path(document),
            "labels_vs_exact": exact_agreement(latest, check, scenarios=10),
            "speed": speed(
                latest
                if speed_positions in (None, positions)
                else synthetic_snapshot(SNAPSHOTS - 1, speed_positions, seed),
                per_seed[0]["fitted"],
                speed_scenarios,
                5,
                3,
            ),
            "targets": targets(document),
        }
    )
    return found


def targets(document: dict[str, Any]) -> dict[str, Any]:
    """The product targets, met or not, on the severe held-out sets."""
    severe = document["models"]["severe"]
    boot = severe["bootstrap_gnn_vs_tree"]
    margin = severe["gnn"]["auprc_cascade"]["mean"] - severe["tree"]["auprc_cascade"]["mean"]
    best_var = min(
        (severe[m]["var95_relative_error"]["mean"], m) for m in ("tree", "gnn", "gnn+tree", "analytic")
        if np.isfinite(severe[m]["var95_relative_error"]["mean"])
    )  # fmt: skip
    return {
        "gnn_minus_tree_auprc_cascade": margin,
        "gnn_beats_tree_by_0.02_with_intervals_above_0": margin >= 0.02
        and boot["intervals_excluding_zero"] == len(boot["intervals"]),
        "best_var95_relative_error": {"model": best_var[1], "error": best_var[0]},
        "var95_within_10_percent": best_var[0] <= 0.10,
    }
