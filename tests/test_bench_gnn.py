"""`chainrisk bench gnn --json` run small, as a user runs it: one JSON document on stdout holding every
model's held-out scores, the trees' per-account answers, the targets and the speed of both engines and
both surrogates measured in the same run, on the training book and on a larger one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MODELS = ("analytic", "tree", "mlp", "gnn", "gnn+tree")
RATES = ("exact", "fast", "tree", "tree_accounts", "tree_var", "gnn")


def test_bench_gnn_reports_accuracy_targets_and_speed(tmp_path: Path) -> None:
    (tmp_path / "chainrisk.toml").write_text("")
    env = {
        **os.environ,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }
    args = ["bench", "gnn", "--positions", "120", "--scenarios", "16", "--seeds", "1", "--epochs", "1"]
    args += ["--speed-scenarios", "8", "--speed-positions", "240", "--threads", "1", "--seed", "2", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "chainrisk", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["benchmark"] == "gnn" and report["seeds"] == 1
    severe = report["models"]["severe"]
    for model in MODELS:
        assert 0.0 <= severe[model]["auprc"]["mean"] <= 1.0
    tree = severe["tree"]
    assert {"account_bad_debt", "round"} <= set(tree)
    assert 0.0 <= tree["round"]["exact_share"]["mean"] <= 1.0
    assert set(report["targets"]) >= {"gnn_minus_tree_auprc_cascade", "var95_within_10_percent"}
    assert report["labels_vs_exact"]["label_agreement"] >= 0.98
    speed = report["speed"]
    # The larger book of --speed-positions, not the training book, is the one timed.
    assert speed["accounts"] > max(h["accounts"] for h in report["held_out"].values())
    for name in RATES:
        assert speed["rates"][name]["scenarios_per_second"] > 0
    assert speed["ratios"]["tree_var_vs_exact"] == (
        speed["rates"]["tree_var"]["scenarios_per_second"] / speed["rates"]["exact"]["scenarios_per_second"]
    )
