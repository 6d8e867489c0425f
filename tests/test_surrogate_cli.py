"""`chainrisk contagion train` stores both surrogates with their metrics; `predict` ranks accounts with
either; bad input exits 2 with one line naming what is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chainrisk.db import to_libpq_url

pytestmark = pytest.mark.slow


def _run(db: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (home / "chainrisk.toml").write_text("")
    env = {
        **os.environ,
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_HOME": str(home / "home"),
        "CHAINRISK_CONFIG": str(home / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", "contagion", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def trained(
    templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A database holding one trained pair of surrogates (tiny books, two epochs)."""
    from tests.conftest import _fresh_database

    home = tmp_path_factory.mktemp("surrogate")
    for db in _fresh_database(templates["embedded"]):
        args = ("train", "--scenarios", "12", "--positions", "120", "--epochs", "2", "--seed", "3", "--json")
        done = _run(db, home, *args)
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert document["stored"] == {"tree": 1, "gnn": 1}
        assert document["fast_path"] in ("tree", "gnn")
        yield db, home


def test_train_stores_both_models_with_range_metrics_and_checksum(trained: tuple[str, Path]) -> None:
    db, _ = trained
    with psycopg.connect(to_libpq_url(db)) as conn:
        rows = conn.execute(
            "SELECT kind, version, seed, scenarios, data_range, metrics,"
            " sha256 = encode(sha256(weights), 'hex') FROM contagion_surrogate_models ORDER BY kind"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("gnn", 1, 3, 12), ("tree", 1, 3, 12)]
    for row in rows:
        data_range, metrics, checksum_ok = row[4], row[5], row[6]
        assert checksum_ok
        assert data_range["test"] and max(k[0] for k in data_range["train"]) < min(
            k[0] for k in data_range["test"]
        )
        assert 0.0 <= metrics["models"]["severe"]["analytic"]["auprc"]["mean"] <= 1.0


@pytest.mark.parametrize("model", ["tree", "gnn"])
def test_predict_ranks_accounts_under_the_shock(trained: tuple[str, Path], model: str) -> None:
    db, home = trained
    done = _run(db, home, "predict", "--shock", "ETH=-35%", "--model", model, "--book", "synthetic", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["model"] == model and document["version"] == 1
    assert list(document["shock"].values()) == [0.65]
    probabilities = [a["probability"] for a in document["accounts"]]
    assert len(probabilities) == 10 and all(0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)
    assert document["below_one"] > 0 and document["bad_debt_usd"] >= 0.0
    values = [a["expected_liquidated_usd"] for a in document["accounts"]]
    owed = [a["expected_bad_debt_usd"] for a in document["accounts"]]
    rounds = [a["first_round"] for a in document["accounts"]]
    if model == "tree":  # the trees also say what each liquidation would repay, leave owing, and when
        assert all(v >= 0.0 for v in values) and sum(values) > 0.0
        assert document["expected_liquidated_usd"] >= sum(values)
        assert all(v >= 0.0 for v in owed) and document["expected_account_bad_debt_usd"] >= sum(owed)
        assert all(r >= 1.0 for r in rounds)
    else:
        assert values == [None] * 10 and document["expected_liquidated_usd"] is None
        assert owed == [None] * 10 and rounds == [None] * 10


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("predict", "--shock", "ETH=abc"), "--shock 'ETH=abc'"),
        (("predict", "--shock", "ETH=-30%", "--model", "xgb"), "--model 'xgb'"),
        (("predict", "--shock", "ETH=-30%", "--book", "csv"), "--book 'csv'"),
        (("predict", "--shock", "DOGE=-30%", "--book", "synthetic"), "unknown symbol 'DOGE'"),
        (("train", "--scenarios", "5"), "--scenarios"),
        (("train", "--device", "tpu"), "--device 'tpu'"),
        (("train", "--book", "csv"), "--book 'csv'"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    trained: tuple[str, Path], args: tuple[str, ...], named: str
) -> None:
    db, home = trained
    done = _run(db, home, *args)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_predict_without_a_stored_model_says_to_train(db_url: str, tmp_path: Path) -> None:
    done = _run(db_url, tmp_path, "predict", "--shock", "ETH=-30%", "--book", "synthetic")
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines()
        == ["error: no tree surrogate stored; run `chainrisk contagion train` first"]
        or "no tree surrogate stored" in done.stderr.strip()
    )


def test_the_training_device_is_a_gpu_only_when_torch_sees_one() -> None:
    import torch

    from chainrisk.contagion.surrogate import training_device
    from chainrisk.inputs import OptionError

    cuda = torch.cuda.is_available()
    assert training_device("auto") == ("cuda" if cuda else "cpu")
    assert training_device("cpu") == "cpu"
    if not cuda:
        for asked in ("cuda", "cuda:0"):
            with pytest.raises(OptionError, match="no such GPU"):
                training_device(asked)
    with pytest.raises(OptionError, match="cuda:N"):
        training_device("gpu")
