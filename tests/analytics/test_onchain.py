"""Daily on-chain features from an indexed devnet: values against the scenario's own record, no look-ahead."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from analytics.features import load_onchain
from analytics.onchain import COLUMNS, OnchainError, day_ends, onchain_features
from chainrisk.db import to_libpq_url
from tests.indexer.test_flows import CHAIN, Indexed, indexed

__all__ = ["indexed"]


def _features(db: str) -> pd.DataFrame:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return onchain_features(conn, CHAIN)


def test_liquidation_features_count_the_scenarios_liquidations_per_day(indexed: Indexed) -> None:
    frame = _features(indexed.db)
    days = Counter(
        datetime.fromtimestamp(liq.timestamp, UTC).strftime("%Y-%m-%d") for liq in indexed.result.liquidations
    )
    got = {
        d.strftime("%Y-%m-%d"): round(math.expm1(v))
        for d, v in zip(frame.index, frame["liq_count"], strict=True)
        if v
    }
    assert got == dict(days) and days
    assert {c.split("_")[0] for c in frame.columns} >= {"liq", "hf", "car", "flow", "gov", "onchain"}
    assert tuple(frame.columns) == COLUMNS
    assert (frame["flow_whale_to_exchange_usd"] > 0).any()


def test_the_last_days_health_features_equal_the_snapshot_at_the_head(indexed: Indexed) -> None:
    frame = _features(indexed.db)
    with psycopg.connect(to_libpq_url(indexed.db)) as conn:
        rows = conn.execute(
            "SELECT total_collateral_base FROM account_health"
            " WHERE total_debt_base > 0 AND health_factor >= 1e18 AND health_factor < 1.1e18"
        ).fetchall()
        last_block = day_ends(conn, CHAIN)[-1][1]
        head = conn.execute("SELECT max(block_number) FROM account_health").fetchone()
    assert head is not None and int(str(head[0])) >= last_block
    near = sum(Decimal(str(r[0])) for r in rows) / 10**8
    assert frame["hf_near1_usd"].iloc[-1] == pytest.approx(math.log1p(float(near)), rel=1e-12)
    assert frame["car_10_usd"].ge(0).all()


def test_the_cli_writes_a_file_the_backtest_reads(indexed: Indexed, tmp_path: Path) -> None:
    out = tmp_path / "onchain.csv"
    (tmp_path / "none.toml").write_text("")  # CHAINRISK_CONFIG must name a file that exists
    env = {
        **os.environ,
        "CHAINRISK_DATABASE_URL": indexed.db,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "none.toml"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chainrisk",
            "forecast",
            "onchain",
            "--chain-id",
            str(CHAIN),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    loaded = load_onchain(out)
    assert list(loaded.index) == list(_features(indexed.db).index)
    assert loaded["liq_count"].equals(_features(indexed.db)["liq_count"])
    empty = subprocess.run(
        [sys.executable, "-m", "chainrisk", "forecast", "onchain", "--chain-id", "5", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert empty.returncode == 2 and "chain 5: no indexed logs" in empty.stderr


def test_an_empty_chain_is_a_clear_error(indexed: Indexed) -> None:
    with psycopg.connect(to_libpq_url(indexed.db)) as conn, pytest.raises(OnchainError, match="chain 7"):
        onchain_features(conn, 7)


# Destructive (rewinds the module's database), so it runs last.
def test_a_day_is_unchanged_when_later_blocks_are_removed(indexed: Indexed) -> None:
    from indexer.runner import rewind

    full = _features(indexed.db)
    with psycopg.connect(to_libpq_url(indexed.db)) as conn:
        ends = day_ends(conn, CHAIN)
    assert len(ends) >= 3
    cut_day, cut_block = ends[-2]
    rewind(to_libpq_url(indexed.db), CHAIN, cut_block)
    cut = _features(indexed.db)
    assert cut.index[-1] == pd.Timestamp(cut_day, tz="UTC")
    pd.testing.assert_frame_equal(cut, full.loc[: pd.Timestamp(cut_day, tz="UTC")])
