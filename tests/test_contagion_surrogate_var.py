"""`chainrisk contagion var --engine surrogate` on an indexed devnet with a trained tree surrogate: with every
scenario replayed it is the exact engine; with the default share the replayed scenarios are the exact
engine's outcomes, the others the surrogate's bad debt, and the stored run loads; without a stored model,
or with --exact-worst on the exact engine, one error line and exit 2. The service's job runs it too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import psycopg
import pytest
from typer.testing import CliRunner, Result

from chainrisk.cli import app
from chainrisk.db import to_libpq_url
from tests.devnet_index import index_devnet_with_pools

pytestmark = pytest.mark.slow

CHAIN = 31337
ARGS = ("--scenarios", "40", "--seed", "9", "--vol", "WETH=0.2", "--json")


@pytest.fixture(scope="module")
def indexed(
    templates: dict[str, str], node_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database indexed from the devnet (markets, Uniswap pools, a short scenario) holding one trained
    pair of surrogates (tiny synthetic books, two epochs)."""
    from devnet.anvil import Anvil
    from tests.conftest import _fresh_database

    home = tmp_path_factory.mktemp("surrogate_var")
    (home / "chainrisk.toml").write_text("")
    for db in _fresh_database(templates["embedded"]):
        # Training reads synthetic books only: it runs while the devnet is indexed.
        training = subprocess.Popen(
            [sys.executable, "-m", "chainrisk", "contagion", "train", "--scenarios", "12",
             "--positions", "120", "--epochs", "2", "--seed", "3", "--json"],
            env={**os.environ, "CHAINRISK_DATABASE_URL": db, "CHAINRISK_HOME": str(home / "home"),
                 "CHAINRISK_CONFIG": str(home / "chainrisk.toml"), "CHAINRISK_LOG_LEVEL": "WARNING",
                 "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            with Anvil(node_home) as node:
                index_devnet_with_pools(db, node, node_home, days=1, wallets=20, seed=3)
            out, err = training.communicate(timeout=300)
        finally:
            training.kill()  # no-op once it has exited
            training.wait()
        assert training.returncode == 0, err
        assert json.loads(out)["stored"]["tree"] == 1
        yield db


def _cli(db: str, tmp_path: Path, *args: str) -> Result:
    (tmp_path / "chainrisk.toml").write_text("")
    env: dict[str, str | None] = {
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
        "CHAINRISK_METRICS_PORT": None,
    }
    return CliRunner().invoke(app, ["contagion", "var", *args], env=env)


def _var(db: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    result = _cli(db, tmp_path, *ARGS, *args)
    assert result.exit_code == 0, (result.output, result.exception)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _refused(result: Result, needle: str) -> None:
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr


def test_the_surrogate_engine_replays_its_worst_exactly(indexed: str, tmp_path: Path) -> None:
    """Every scenario replayed: the exact engine's document. The default share: the 20 replayed scenarios
    are the exact engine's outcomes whole (bad debt per asset and wallet, liquidations, depth); the others
    carry the surrogate's bad debt alone; the stored run reads back as reported."""
    from chainrisk.contagion.store import load_run

    exact = _var(indexed, tmp_path)
    assert exact["scenarios_with_bad_debt"] > 0  # so the comparisons below are of real tails
    everything = _var(indexed, tmp_path, "--engine", "surrogate", "--exact-worst", "40", "--no-store")
    for measure in ("bad_debt_usd", "bad_debt_by_market_usd", "liquidations_at_risk_usd", "depth_histogram"):
        assert everything[measure] == exact[measure], measure
    learned = everything["surrogate_path"]
    assert (learned["model"], learned["version"], learned["exact_scenarios"]) == ("tree", 1, 40)
    assert learned["replayed"] == list(range(40)) and everything["inputs"]["engine"] == "surrogate"
    assert learned["bad_debt_max_abs_error_usd"] >= learned["bad_debt_mean_abs_error_usd"] >= 0

    default = _var(indexed, tmp_path, "--engine", "surrogate")
    replayed = default["surrogate_path"]["replayed"]
    assert default["surrogate_path"]["exact_scenarios"] == len(replayed) == 20  # at least 20, else 6 %
    with psycopg.connect(to_libpq_url(indexed)) as conn:
        mine, theirs = load_run(conn, default["run_id"]), load_run(conn, exact["run_id"])
        row = conn.execute(
            "SELECT scenarios, seed, var99_usd, es99_usd FROM contagion_run_results WHERE run_id = %s",
            (default["run_id"],),
        ).fetchone()
    assert row == (40, 9, pytest.approx(default["bad_debt_usd"]["VaR99"]["point"]),
                   pytest.approx(default["bad_debt_usd"]["ES99"]["point"]))  # fmt: skip
    assert mine.summary["surrogate_path"] == default["surrogate_path"]
    assert (mine.factors == theirs.factors).all()  # the same seed drew the same scenarios
    for i, (got, want) in enumerate(zip(mine.outcomes, theirs.outcomes, strict=True)):
        if i in replayed:
            assert got == want, i
        else:
            assert got.bad_debt >= 0 and not got.by_asset and not got.by_wallet and not got.liquidations
            assert (got.liquidated, got.depth) == (0.0, 0)
    assert default["max_bad_debt_usd"] == max(o.bad_debt for o in mine.outcomes)

    table = _cli(indexed, tmp_path, "--scenarios", "5", "--seed", "3", "--engine", "surrogate", "--no-store")
    assert table.exit_code == 0, (table.output, table.exception)
    printed = " ".join(table.stdout.split())  # however the console wraps it
    assert "surrogate engine (tree v1): 5 worst scenarios replayed exactly" in printed


def test_without_a_stored_model_the_surrogate_engine_is_one_error_line(db_url: str, tmp_path: Path) -> None:
    result = _cli(db_url, tmp_path, *ARGS, "--engine", "surrogate")
    _refused(result, "no tree surrogate stored; run `chainrisk contagion train` first")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--exact-worst", "5"], "--exact-worst: only with --engine fast or surrogate"),
        (["--engine", "exact", "--exact-worst", "5"], "--exact-worst: only with --engine fast or surrogate"),
        (
            ["--engine", "surrogate", "--exact-worst", "41"],
            "--exact-worst 41: expected 0 to --scenarios (40)",
        ),
        (["--engine", "learned"], "--engine 'learned': expected exact, fast or surrogate"),
    ],
)
def test_bad_engine_options_are_one_error_line(
    db_url: str, tmp_path: Path, args: list[str], needle: str
) -> None:
    _refused(_cli(db_url, tmp_path, *ARGS, *args), needle)


def test_the_service_job_runs_the_surrogate_engine(indexed: str) -> None:
    """`[contagion] engine = "surrogate"` is a valid setting, and the job stores a run with its section."""
    from pydantic import ValidationError

    from chainrisk.contagion.config import ContagionConfig
    from chainrisk.contagion.job import run_job
    from chainrisk.serve.jobs import JobRun

    with pytest.raises(ValidationError):
        ContagionConfig(engine="learned")  # type: ignore[arg-type]
    config = ContagionConfig(engine="surrogate", scenarios=30, stress_days=False)
    service = SimpleNamespace(settings=SimpleNamespace(contagion=config))
    period = datetime(2024, 1, 2, tzinfo=UTC)
    with psycopg.connect(to_libpq_url(indexed)) as conn:
        run = JobRun("contagion", period, conn, cast(Any, service), None, period)
        result = run_job(run)
        stored = conn.execute(
            "SELECT scenarios, seed, var99_usd, summary -> 'surrogate_path' ->> 'exact_scenarios',"
            " summary #>> '{inputs,engine}' FROM contagion_run_results WHERE run_id = %s",
            (result["run_id"],),
        ).fetchone()
    assert stored == (30, int(period.timestamp()), pytest.approx(result["var99_usd"]), "20", "surrogate")


def _train(db: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (home / "chainrisk.toml").write_text("")
    env = {
        **os.environ, "CHAINRISK_DATABASE_URL": db, "CHAINRISK_HOME": str(home / "home"),
        "CHAINRISK_CONFIG": str(home / "chainrisk.toml"), "CHAINRISK_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", "contagion", "train", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _predict(db: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, "CHAINRISK_DATABASE_URL": db, "CHAINRISK_HOME": str(home / "home"),
        "CHAINRISK_CONFIG": str(home / "chainrisk.toml"), "CHAINRISK_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", "contagion", "predict", "--shock", "ETH=-30%", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_training_on_the_indexed_history_splits_it_by_block(indexed: str, tmp_path: Path) -> None:
    """`train --book indexed`: books of the indexed chain at evenly spaced blocks from its first borrow to
    the head, the two latest held out; the stored models say so, predict refuses the synthetic book for
    them, and the surrogate engine runs on the newest."""
    from chainrisk.contagion.surrogate import indexed_snapshots
    from indexer.lending.health import indexed_head

    args = ("--book", "indexed", "--snapshots", "5", "--scenarios", "12", "--epochs", "2", "--seed", "4")
    done = _train(indexed, tmp_path, *args, "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    data_range = document["data_range"]
    with psycopg.connect(to_libpq_url(indexed)) as conn:
        head = indexed_head(conn, CHAIN)
        snapshots, (chain, blocks) = indexed_snapshots(conn, 5)
        assert chain == CHAIN
        stored = conn.execute(
            "SELECT kind, version, data_range ->> 'book', data_range -> 'blocks'"
            " FROM contagion_surrogate_models WHERE version = 2 ORDER BY kind"
        ).fetchall()
    assert (data_range["book"], data_range["chain_id"], data_range["blocks"]) == ("indexed", CHAIN, blocks)
    assert blocks == sorted(set(blocks)) and blocks[-1] == head and len(blocks) >= 4
    assert stored == [("gnn", 2, "indexed", blocks), ("tree", 2, "indexed", blocks)]
    # The latest two books test; the earlier ones train; each book is the index at its block.
    assert {k[0] for k in data_range["test"]} == {len(blocks) - 2, len(blocks) - 1}
    assert max(k[0] for k in data_range["train"]) < len(blocks) - 2
    assert [len(s.markets) for s in snapshots][-1] >= 1 and all(s.moving for s in snapshots)
    accounts = [int(data_range["accounts"][str(t)]) for t in range(len(blocks))]
    assert accounts[-1] >= accounts[0] > 0
    refused = _predict(indexed, tmp_path, "--book", "synthetic")
    assert refused.returncode == 2 and "trained on the indexed book" in refused.stderr, refused.stderr
    # On the indexed book the model's own chain is the default; another chain is one error line.
    predicted = _predict(indexed, tmp_path, "--book", "indexed", "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["version"] == 2
    elsewhere = _predict(indexed, tmp_path, "--chain-id", "5")
    assert elsewhere.returncode == 2 and elsewhere.stderr.count("\n") == 1
    assert "--chain-id 5" in elsewhere.stderr, elsewhere.stderr
    run = _var(indexed, tmp_path, "--engine", "surrogate", "--no-store")
    assert run["surrogate_path"]["version"] == 2


def test_snapshot_blocks_span_the_first_borrow_to_the_head() -> None:
    from chainrisk.contagion.surrogate import snapshot_blocks

    assert snapshot_blocks(100, 200, 5) == [100, 125, 150, 175, 200]
    assert snapshot_blocks(100, 103, 6) == [100, 101, 102, 103]  # fewer blocks than books asked
    assert snapshot_blocks(100, 100, 6) == [100]
