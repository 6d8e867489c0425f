"""`chainrisk bench cascade --json` run small, as a user runs it: the report's shape, the baseline measured
in the same run, and the fast path's figures beside the exact replay of its worst scenarios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# The replayed worst scenarios of this small run: fast and exact agree this closely (measured: 0 on
# bad debt, under 1e-3 on liquidated value); the bound leaves room for the fitted curves.
REPLAY_TOLERANCE = 0.05


def test_bench_cascade_reports_fast_and_exact_figures(tmp_path: Path) -> None:
    (tmp_path / "chainrisk.toml").write_text("")
    env = {
        **os.environ,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    args = ["bench", "cascade", "--positions", "600", "--scenarios", "200", "--worst", "3"]
    args += ["--baseline-scenarios", "2", "--seed", "1", "--scaling", "4", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "chainrisk", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["benchmark"] == "cascade" and report["scenarios"] == 200
    assert report["positions"] >= 600 and report["accounts"] > 0
    assert report["seconds_end_to_end"] > 0 and report["fast_path_seconds_median"] > 0
    baseline = report["baseline"]
    assert baseline["measured_scenarios"] == 2 and baseline["extrapolated"] is True
    assert baseline["extrapolated_seconds"] > 0 and report["speedup_vs_baseline"] > 0
    assert len(report["fit"]) == 8  # four pools, two directions
    for fit in report["fit"]:
        assert 0 <= fit["median_output_error"] <= fit["max_output_error"] < 0.01
    compared = report["fast_vs_exact"]["replayed_scenarios"]
    assert len(compared) == 3
    for row in compared:
        for figure in ("bad_debt", "liquidated"):
            fast, exact = row[f"fast_{figure}_usd"], row[f"exact_{figure}_usd"]
            assert abs(fast - exact) <= REPLAY_TOLERANCE * max(exact, 1.0)
    assert report["machine"]["cores"] >= 1
    scaling = report["scaling"]  # the exact engine in process and on a real two-worker LocalCluster
    assert scaling["scenarios"] == 4 and scaling["same_outcomes"] is True
    assert scaling["in_process_seconds"] > 0 and scaling["local_cluster_2_workers_seconds"] > 0
