"""The devnet indexed after the market scenario, with one small Monte Carlo run stored, and a report of
it written by the CLI: shared by the report, browser and job tests (built once per session)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.db import to_libpq_url

SCENARIOS, SEED = 50, 11
CHAIN = 31337


@pytest.fixture(scope="session")
def indexed(templates: dict[str, str], node_home: Path) -> Iterator[tuple[str, int]]:
    """A database indexed from a devnet with markets, Uniswap pools and governance after a short seeded
    scenario, the positions kept while indexing and refreshed at the head."""
    import tomllib

    from devnet.aave import deploy_markets
    from devnet.anvil import Anvil
    from devnet.governance import default_holders, deploy_governance, manifest_with_governance
    from devnet.scenario import simulate
    from devnet.serve import indexer_toml
    from devnet.uniswap import deploy_uniswap, manifest_with_uniswap
    from indexer.catalog import sync_config
    from indexer.config import IndexConfig
    from indexer.lending.health import indexed_head, pools, refresh
    from indexer.lending.keeper import PositionKeeper
    from indexer.runner import config_plan, run_plan
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            deployment = deploy_markets(node, node_home)
            uniswap = deploy_uniswap(deployment, node_home)
            governance = deploy_governance(deployment, node_home, default_holders())
            simulate(deployment, 1, 20, 3, uniswap=uniswap, governance=governance)
            manifest = manifest_with_governance(
                manifest_with_uniswap(deployment.to_manifest(), uniswap), governance
            )
            config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": node.url})))
            with psycopg.connect(to_libpq_url(db)) as conn:
                sync_config(conn, config.chains, config.tokens, config.labels)
            plan = config_plan(config.chains[0], config.contracts, None, False)
            with PositionKeeper(to_libpq_url(db), CHAIN) as keeper:
                run_plan(plan, to_libpq_url(db), listener=keeper)
        with psycopg.connect(to_libpq_url(db)) as conn:
            head = indexed_head(conn, CHAIN)
            assert head is not None
            for pool in pools(conn, CHAIN):
                refresh(conn, CHAIN, pool, head)
        yield db, head


@dataclass(frozen=True)
class Written:
    db: str
    head: int
    run_id: int
    out: Path
    document: dict[str, Any]


def cli(db: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "chainrisk.toml").write_text("")
    env = {
        **os.environ,
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_HOME": str(home / "home"),
        "CHAINRISK_CONFIG": str(home / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", *args], env=env, capture_output=True, text=True, timeout=300
    )


def store_run(db: str) -> int:
    """A seeded Monte Carlo run on the devnet's head: WETH and WBTC moves at 8% a day, correlated, through
    the exact cascade, stored as `contagion var` stores its runs."""
    import numpy as np

    from chainrisk.contagion.curve import moving_assets
    from chainrisk.contagion.inputs import load_inputs
    from chainrisk.contagion.store import save_run
    from chainrisk.contagion.var import scenario_outcomes
    from graph.tail import tail_summary

    with psycopg.connect(to_libpq_url(db)) as conn:
        inputs = load_inputs(conn, None, None)
        assets = moving_assets(inputs, [])
        rng = np.random.default_rng(SEED)
        common = rng.standard_normal((SCENARIOS, 1))
        moves = 0.08 * (0.8 * common + 0.6 * rng.standard_normal((SCENARIOS, len(assets)))) * 2.5
        factors = np.exp(moves)
        outcomes = scenario_outcomes(inputs, assets, factors)
        losses = np.array([o.bad_debt for o in outcomes])
        tails = tail_summary(losses, b=50, rng=np.random.default_rng([SEED, 1]))
        summary = {
            "bad_debt_usd": {k: {"point": t.point, "low": t.low, "high": t.high} for k, t in tails.items()},
            "scenarios_with_bad_debt": int((losses > 0).sum()),
            "max_bad_debt_usd": float(losses.max()),
        }
        return save_run(
            conn, inputs=inputs, kind="var", seed=SEED, method="student_t", inputs_record={"seed": SEED},
            summary=summary, assets=assets, factors=factors, outcomes=outcomes,
        )  # fmt: skip


@pytest.fixture(scope="session")
def written(indexed: tuple[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    db, head = indexed
    run_id = store_run(db)
    base = tmp_path_factory.mktemp("report")
    out = base / "out"
    result = cli(db, base, "report", "contagion", "--period", "weekly", "--out", str(out))
    assert result.returncode == 0, result.stderr
    yield Written(db, head, run_id, out, json.loads((out / "report.json").read_text()))
