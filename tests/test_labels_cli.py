"""`chainrisk labels` as a user runs it: seeded on migrate, edited, imported all-or-nothing, exported."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

BINANCE_14 = "0x28c6c06298d514db089934071355e5743bf21d60"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", "labels", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "chainrisk.toml").write_text("")  # CHAINRISK_CONFIG must name a file that exists
    return {
        **os.environ,
        "CHAINRISK_DATABASE_URL": db_url,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "chainrisk.toml"),
        "COLUMNS": "200",
    }


def _exported(env: dict[str, str]) -> dict[str, dict[str, str]]:
    result = _run(["export"], env)
    assert result.returncode == 0, result.stderr
    return {row["address"]: row for row in csv.DictReader(io.StringIO(result.stdout))}


def test_seeded_then_edited_by_the_user(env: dict[str, str]) -> None:
    before = _exported(env)
    assert before[BINANCE_14]["category"] == "exchange" and before[BINANCE_14]["source"] == "seed"
    added = _run(
        ["add", BINANCE_14.upper().replace("0X", "0x"), "Binance hot 14", "--category", "exchange"], env
    )
    assert added.returncode == 0, added.stderr
    after = _exported(env)
    assert after[BINANCE_14]["label"] == "Binance hot 14" and after[BINANCE_14]["source"] == "user"
    listed = _run(["list", "--category", "exchange"], env)
    assert "Binance hot 14" in listed.stdout and "Arbitrum" not in listed.stdout


def test_a_bad_row_rejects_the_whole_import(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "desks.csv"
    good = "1,0x" + "12" * 20 + ",desk one,fund"
    path.write_text("chain_id,address,label,category\n" + good + "\n1,0x" + "34" * 20 + ",desk two,casino\n")
    result = _run(["import", str(path)], env)
    assert result.returncode == 2
    assert "line 3: category 'casino'" in result.stderr
    assert "0x" + "12" * 20 not in _exported(env)
    path.write_text("chain_id,address,label,category\n" + good + "\n")
    assert _run(["import", str(path)], env).returncode == 0
    assert _exported(env)["0x" + "12" * 20]["label"] == "desk one"


def test_bad_input_is_named(env: dict[str, str]) -> None:
    bad_address = _run(["add", "0xnope", "x", "--category", "exchange"], env)
    assert bad_address.returncode == 2 and "address" in bad_address.stderr
    bad_category = _run(["add", BINANCE_14, "x", "--category", "casino"], env)
    assert bad_category.returncode == 2 and "category 'casino' is not one of" in bad_category.stderr
    missing = _run(["remove", "0x" + "99" * 20], env)
    assert missing.returncode == 1 and "no label" in missing.stderr
