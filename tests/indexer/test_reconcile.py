"""`chainrisk reconcile` on a devnet: account data rebuilt from indexed events against eth_call, per wallet.

One module-scoped devnet (both Aave v3 markets, a 2-day scenario of 20 wallets) is indexed into a fresh
database; the command then runs as a user runs it, in a subprocess with the config `chainrisk devnet
config` would write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from devnet.anvil import Anvil
from indexer.chain import HttpChainClient
from indexer.lending.health import pools as indexed_pools
from indexer.lending.reconcile import Wallet, chain_account_data, plan_sample, sample_wallets

pytestmark = pytest.mark.slow

GENESIS = 1_700_000_000
SECRET = "SECRETKEY123"


@dataclass(frozen=True)
class Devnet:
    node: Anvil
    db_url: str
    server_url: str
    env: dict[str, str]
    head: int


@pytest.fixture(scope="module")
def devnet(
    templates: dict[str, str], node_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Devnet]:
    from devnet.aave import deploy_markets
    from devnet.scenario import simulate
    from devnet.serve import indexer_toml
    from indexer.config import IndexConfig
    from indexer.runner import config_plan, run_plan
    from tests.conftest import _fresh_database

    tmp = tmp_path_factory.mktemp("reconcile")
    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home, extra_args=["--timestamp", str(GENESIS)]) as node:
            node.rpc("anvil_setBlockTimestampInterval", [12])
            deployment = deploy_markets(node, node_home)
            simulate(deployment, 2, 20, 7)
            toml = indexer_toml({**deployment.to_manifest(), "rpc_url": node.url})
            config = IndexConfig(**tomllib.loads(toml))
            cursor = run_plan(config_plan(config.chains[0], config.contracts, None, False), to_libpq_url(db))
            (tmp / "chainrisk.toml").write_text(toml)
            env = {
                **os.environ,
                "CHAINRISK_DATABASE_URL": db,
                "CHAINRISK_HOME": str(tmp / "home"),
                "CHAINRISK_CONFIG": str(tmp / "chainrisk.toml"),
                "CHAINRISK_LOG_LEVEL": "WARNING",
            }
            yield Devnet(node, db, templates["embedded"], env, cursor.block_number)


def _reconcile(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", "reconcile", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    return body


def _drifting(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(w["pool"], w["user"]) for w in report["wallets"] if not w["within_tolerance"]]


def test_indexed_health_equals_the_chain_to_the_wei(devnet: Devnet) -> None:
    result = _reconcile(devnet.env, "--sample", "12", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = _json(result)
    summary = report["summary"]
    assert report["block"] == devnet.head and report["chain"] == "devnet" and len(report["pools"]) == 2
    assert report["population"] > 12
    assert summary["wallets_compared"] == summary["wallets_equal"] == 12
    assert summary["wallets_drifting"] == 0 and set(summary["max_drift"].values()) == {"0"}
    borrowers = 0
    for wallet in report["wallets"]:
        values = wallet["values"]
        assert list(values) == [
            "total_collateral_base", "total_debt_base", "available_borrows_base",
            "current_liquidation_threshold", "ltv", "health_factor",
        ]  # fmt: skip
        assert all(v["ours"] == v["chain"] and v["drift"] == "0" for v in values.values())
        assert values["health_factor"]["relative_drift"] == 0.0
        borrowers += values["total_debt_base"]["chain"] != "0"
    assert borrowers, "the sample must hold wallets with debt, not only suppliers"
    # The same seed picks the same wallets; the human table covers them with a summary.
    wide = {**devnet.env, "COLUMNS": "200"}  # full addresses, unfolded
    again = _reconcile(wide, "--sample", "12", "--seed", "3", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "12 equal to the wei, 0 drifting" in again.stdout
    assert all(w["user"] in again.stdout for w in report["wallets"])


def test_batched_eth_calls_equal_single_calls(devnet: Devnet) -> None:
    with psycopg.connect(to_libpq_url(devnet.db_url)) as conn:
        pools = indexed_pools(conn, 31337)
        plan = plan_sample(
            conn, 31337, pools, devnet.head, _timestamp(devnet), sample=13, seed=1, version="3.0"
        )
    batches: list[int] = []
    with HttpChainClient([devnet.node.url]) as client:
        batched = chain_account_data(client, plan.wallets, devnet.head, batches.append, batch_size=5)
        singles = [chain_account_data(client, [w], devnet.head)[0] for w in plan.wallets]
    assert batches == [5, 5, 3]
    assert batched == singles == plan.ours


def test_sample_is_deterministic_per_seed() -> None:
    population = [Wallet("0xpool", f"0x{i:040x}") for i in range(40)]
    first = sample_wallets(population, 10, 5)
    assert first == sample_wallets(population, 10, 5) and len(set(first)) == 10
    assert first != sample_wallets(population, 10, 6)
    assert sample_wallets(population, 100, 5) == population


def test_a_deleted_event_row_shows_as_drift_of_that_wallet(devnet: Devnet) -> None:
    every = _json(_reconcile(devnet.env, "--sample", "1000", "--json"))
    supplied = {
        (w["pool"], w["user"])
        for w in every["wallets"]
        if w["values"]["total_collateral_base"]["chain"] != "0"
    }
    with psycopg.connect(to_libpq_url(devnet.db_url)) as conn:
        once = conn.execute(
            "SELECT address, user_address FROM aave_v3_collateral_enabled"
            " GROUP BY 1, 2 HAVING count(*) = 1 ORDER BY 1, 2"
        ).fetchall()
    pool, user = next((p, u) for p, u in once if (p, u) in supplied)
    for clone in _clone(devnet):
        with psycopg.connect(to_libpq_url(clone)) as conn:
            deleted = conn.execute(
                "DELETE FROM aave_v3_collateral_enabled WHERE address = %s AND user_address = %s",
                (pool, user),
            ).rowcount
        assert deleted == 1
        result = _reconcile({**devnet.env, "CHAINRISK_DATABASE_URL": clone}, "--sample", "1000", "--json")
        assert result.returncode == 1, result.stderr
        report = _json(result)
        assert _drifting(report) == [(pool, user)]
        wallet = next(w for w in report["wallets"] if w["user"] == user and w["pool"] == pool)
        collateral = wallet["values"]["total_collateral_base"]
        assert int(collateral["drift"]) == int(collateral["chain"]) - int(collateral["ours"]) > 0
        assert report["summary"]["wallets_equal"] == report["summary"]["wallets_compared"] - 1
        assert int(report["summary"]["max_drift"]["total_collateral_base"]) == int(collateral["drift"])


def test_other_rounding_version_drifts_and_tolerance_decides(devnet: Devnet) -> None:
    result = _reconcile(devnet.env, "--sample", "1000", "--aave-version", "3.5", "--json")
    assert result.returncode == 1, result.stderr
    report = _json(result)
    assert report["aave_version"] == "3.5" and _drifting(report)
    # Rounding, not missing data: health factors agree to far better than a millionth.
    assert report["summary"]["max_health_factor_relative_drift"] < 1e-6
    widest = max(int(v) for v in report["summary"]["max_drift"].values())
    loose = _reconcile(
        devnet.env, "--sample", "1000", "--aave-version", "3.5", "--tolerance-wei", str(widest), "--json"
    )
    assert loose.returncode == 0, loose.stderr
    assert _json(loose)["summary"]["wallets_drifting"] == 0


def test_unreachable_node_exits_2_without_the_key(devnet: Devnet) -> None:
    url = f"http://127.0.0.1:9/v2/{SECRET}"
    env = {**devnet.env, "CHAINRISK_LOG_LEVEL": "DEBUG"}
    result = _reconcile(env, "--sample", "5", "--rpc-url", url)
    assert result.returncode == 2
    assert "the node does not answer" in result.stderr and "127.0.0.1:9/v2/***" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_node_without_state_at_the_block_is_named(devnet: Devnet) -> None:
    # anvil --prune-history keeps only the head's state, like a pruned node far behind.
    result = _reconcile(devnet.env, "--sample", "5", "--block", str(devnet.head - 1))
    assert result.returncode == 2
    assert f"cannot serve state at block {devnet.head - 1}" in result.stderr
    assert "archive node" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pool", "0x1234"], "--pool: expected a 20-byte hex address"),
        (["--pool", "0x" + "12" * 20], "is not an indexed pool"),
        (["--block", "99999999"], "above the indexed head"),
        (["--aave-version", "3.9"], "--aave-version: expected 3.0 or 3.5"),
        (["--chain", "nope"], "--chain: no chain named 'nope'"),
    ],
)
def test_bad_input_exits_2_naming_it(devnet: Devnet, args: list[str], message: str) -> None:
    result = _reconcile(devnet.env, "--sample", "5", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def _timestamp(devnet: Devnet) -> int:
    block = devnet.node.rpc("eth_getBlockByNumber", [hex(devnet.head), False])
    return int(block["timestamp"], 16)


def _clone(devnet: Devnet) -> Iterator[str]:
    """A copy of the indexed database, so that a test may damage it without touching the others."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    source = psycopg.conninfo.conninfo_to_dict(to_libpq_url(devnet.db_url))["dbname"]
    with psycopg.connect(devnet.server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    try:
        yield devnet.db_url.replace(f"/{source}", f"/{name}")
    finally:
        with psycopg.connect(devnet.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
