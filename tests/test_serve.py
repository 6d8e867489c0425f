"""`chainrisk serve` as it runs in production: subprocesses on real PostgreSQL and a real anvil devnet.

One service follows the devnet while the market scenario runs and keeps the lending history equal to a
from-scratch index and to the node; two services on one database elect one leader, run every period of a
forecast job once, survive a SIGKILL of the leader mid-job and stop on SIGTERM with exit 0.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from chainrisk.indexing import ChainIndexer
from devnet.aave import deploy_markets
from devnet.anvil import Anvil
from devnet.scenario import simulate
from devnet.serve import indexer_toml
from indexer.chain import HttpChainClient
from indexer.config import IndexConfig
from indexer.lending.reconcile import Wallet, chain_account_data
from indexer.runner import config_plan
from tests.conftest import data_file

pytestmark = pytest.mark.slow

CHAIN = 31337
HISTORY = ("account_health_history", "position_reserves_history")
FORECAST_S = 10
HEARTBEAT_S = 4


# ------------------------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """One `python -m chainrisk serve` subprocess with its own status port and log file."""

    def __init__(self, tmp_path: Path, name: str, config: Path, db_url: str, *args: str) -> None:
        self.port = _free_port()
        self.log = tmp_path / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINRISK_")}
        env |= {
            "CHAINRISK_HOME": str(tmp_path / "home"),
            "CHAINRISK_CONFIG": str(config),
            "CHAINRISK_DATABASE_URL": db_url,
            "CHAINRISK_SERVE_PORT": str(self.port),
            "CHAINRISK_LOG_LEVEL": "INFO",
        }
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chainrisk", "serve", *args], env=env, stdout=out, stderr=out
            )

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as answer:
                body: dict[str, Any] = json.load(answer)
                return body
        except urllib.error.HTTPError as exc:
            failing: dict[str, Any] = json.load(exc)
            return failing
        except OSError:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())

    def role(self) -> str | None:
        body = self.health()
        return None if body is None else str(body["role"])

    def wait_role(self, role: str, timeout_s: float = 60) -> float:
        """Seconds until /healthz says `role`."""
        started = time.monotonic()
        _wait(lambda: self.role() == role, timeout_s, f"{self.log.name}: role {role}", self)
        return time.monotonic() - started

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _wait(done: Callable[[], bool], timeout_s: float, what: str, *served: Served) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        for one in served:
            assert one.proc.poll() is None, f"{one.log.name} exited {one.proc.returncode}:\n{one.output()}"
        time.sleep(0.02)
    logs = "\n".join(one.output()[-3000:] for one in served)
    pytest.fail(f"timed out waiting for {what}\n{logs}")


@pytest.fixture
def services() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for one in started:
        one.kill()


def _rows(db_url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        return conn.execute(query, params).fetchall()


def _runs(db_url: str, job: str) -> list[tuple[Any, ...]]:
    return _rows(
        db_url,
        "SELECT period, status, leader, attempts, error FROM service_runs WHERE job = %s ORDER BY period",
        (job,),
    )


def _contiguous(periods: list[Any], step_s: int) -> bool:
    return all(b - a == timedelta(seconds=step_s) for a, b in itertools.pairwise(periods))


# ------------------------------------------------------------------------------ following the devnet


def _index_from_scratch(url: str, db: str, manifest: dict[str, Any]) -> None:
    """What `chainrisk index` does with the same chain config, in one run to the head."""
    config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": url})))
    plan = config_plan(config.chains[0], config.contracts, None, False)
    ChainIndexer([plan], to_libpq_url(db)).run()


def _history(db: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: _rows(db, f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4, 5") for t in HISTORY}


def _health_at(db: str, pool: str, block: int) -> dict[tuple[str, str], tuple[int, ...]]:
    """getUserAccountData fields of every account `health_at(block)` answers for the pool: the function
    picks the rows, the history table holds them exactly (the view divides to USD and wads)."""
    rows = _rows(
        db,
        "SELECT h.pool, h.user_address, a.total_collateral_base, a.total_debt_base, a.available_borrows_base,"
        " a.liquidation_threshold_bps, a.ltv_bps, a.health_factor, h.health_factor * 1e18"
        " FROM health_at(%s) h JOIN account_health_history a ON a.chain_id = h.chain_id AND a.pool = h.pool"
        " AND a.user_address = h.user_address AND a.block_number = h.valid_from"
        " WHERE h.chain_id = %s AND h.pool = %s ORDER BY h.pool, h.user_address",
        (block, CHAIN, pool),
    )
    for row in rows:  # the view's health factor is the wad, to the view's precision
        assert abs(float(row[8]) - float(row[7])) <= 1e-9 * float(row[7]), row
    return {(str(r[0]), str(r[1])): tuple(int(v) for v in r[2:8]) for r in rows}


def test_serve_follows_the_devnet_while_the_scenario_runs(
    node_home: Path, db_url: str, second_db_url: str, tmp_path: Path, services: list[Served]
) -> None:
    with Anvil(node_home, prune_history=False) as node:
        deployment = deploy_markets(node, node_home)
        manifest = deployment.to_manifest()
        config = tmp_path / "chainrisk.toml"
        config.write_text(
            indexer_toml({**manifest, "rpc_url": node.url})
            + '\n[serve.jobs.heartbeat]\ninterval = "2s"\n\n[serve.jobs.forecast]\ninterval = "1h"\n\n'
            '[[serve.assets]]\nasset = "WETH"\nchain = "devnet"\ntoken = "WETH"\n'
        )
        served = Served(tmp_path, "serve", config, db_url)
        services.append(served)
        served.wait_role("leader")
        simulate(deployment, 2, 20, 11)  # while the service follows
        head = _head(node.url)
        caught_up = {"indexed": head, "head": head, "lag": 0}  # positions kept through the head too
        _wait(lambda: _chain_health(served) == caught_up, 120, f"indexed through {head}", served)
        health = served.health()
        assert health is not None and health["status"] == "ok" and health["role"] == "leader"
        metrics = served.metrics()
        assert f'chainrisk_local_head{{chain="devnet"}} {float(head)}' in metrics
        assert 'chainrisk_job_last_success_timestamp_seconds{job="heartbeat"}' in metrics
        assert served.stop() == 0, served.output()  # SIGTERM: the batch in hand finishes
        _index_from_scratch(node.url, second_db_url, manifest)
        kept = _history(db_url)
        assert kept == _history(second_db_url)
        pool, blocks = _busiest_pool(db_url)
        chosen = [blocks[len(blocks) // 3], blocks[2 * len(blocks) // 3], blocks[-1]]
        expected = {block: _health_at(db_url, pool, block) for block in chosen}
        with HttpChainClient([node.url]) as client:
            for block, accounts in expected.items():
                on_chain = chain_account_data(client, [Wallet(p, u) for p, u in accounts], block)
                assert [tuple(a) for a in on_chain] == list(accounts.values()), block
    assert all(len(accounts) > 5 for accounts in expected.values())
    heartbeats = _runs(db_url, "heartbeat")
    assert heartbeats and all(status == "succeeded" for _, status, *_ in heartbeats)
    recorded = _rows(db_url, "SELECT result FROM service_runs WHERE job = 'heartbeat' ORDER BY period")
    lags = [r[0]["chains"]["devnet"]["lag"] for r in recorded]  # None: before the first cursor
    assert all(lag is None or lag >= 0 for lag in lags) and isinstance(lags[-1], int), lags
    # Two days of oracle prices are too few for the models: the run fails, recorded in one line.
    [(_, status, _, _, error)] = _runs(db_url, "forecast:WETH")
    assert status == "failed" and "needs" in error and "days" in error and "\n" not in error, error
    exported = (tmp_path / "home" / "serve" / "oracle-prices-WETH.csv").read_text().splitlines()
    assert exported[0] == "time,open,high,low,close" and len(exported) >= 3


def _head(url: str) -> int:
    with HttpChainClient([url]) as client:
        return client.head()


def _chain_health(served: Served) -> dict[str, Any] | None:
    body = served.health()
    return None if body is None else dict(body["chains"]["devnet"])


def _busiest_pool(db: str) -> tuple[str, list[int]]:
    """The pool with the most recorded blocks, and those blocks: the ones its events moved."""
    [(pool, blocks)] = _rows(
        db,
        "SELECT pool, array_agg(DISTINCT block_number ORDER BY block_number) FROM account_health_history"
        " GROUP BY pool ORDER BY count(DISTINCT block_number) DESC LIMIT 1",
    )
    return str(pool), [int(b) for b in blocks]


# ------------------------------------------------------------------------------- leader and standby


def _forecast_config(tmp_path: Path) -> Path:
    config = tmp_path / "chainrisk.toml"
    config.write_text(
        f'[serve]\nstandby_poll_s = 0.5\n\n[serve.jobs.heartbeat]\ninterval = "{HEARTBEAT_S}s"\n\n'
        f'[serve.jobs.forecast]\ninterval = "{FORECAST_S}s"\n\n'
        f'[[serve.assets]]\nasset = "ETH"\nprices = "{data_file("prices/binance-ethusdt-daily.csv")}"\n'
    )
    return config


def _running(db_url: str, job: str, leader_of: Served) -> bool:
    body = leader_of.health()
    term = body["term"] if body else ""
    return bool(
        _rows(
            db_url,
            "SELECT 1 FROM service_runs WHERE job = %s AND status = 'running' AND leader = %s",
            (job, term),
        )
    )


def test_one_leader_runs_each_period_once_and_a_standby_takes_over(
    db_url: str, tmp_path: Path, services: list[Served]
) -> None:
    config = _forecast_config(tmp_path)
    first = Served(tmp_path, "first", config, db_url)
    services.append(first)
    first.wait_role("leader")
    second = Served(tmp_path, "second", config, db_url)
    services.append(second)
    second.wait_role("standby")
    assert first.role() == "leader"  # exactly one leader
    # Two forecast periods done by the first leader, then SIGKILL while it works on the next.
    _wait(lambda: len(_runs(db_url, "forecast:ETH")) >= 2, 90, "two forecast periods", first, second)
    _wait(lambda: _running(db_url, "forecast:ETH", first), 60, "a forecast in progress", first, second)
    first.proc.kill()
    first.proc.wait()
    assert second.wait_role("leader", timeout_s=10) < 5  # takes over within seconds
    killed = [r for r in _runs(db_url, "forecast:ETH") if r[1] == "running"]
    done_before = len(_runs(db_url, "forecast:ETH"))
    _wait(lambda: len(_runs(db_url, "forecast:ETH")) >= done_before + 2, 60, "two more periods", second)
    # SIGTERM while the new leader works: it finishes the run, records it, and exits 0.
    _wait(lambda: _running(db_url, "forecast:ETH", second), 60, "a forecast in progress", second)
    assert second.stop() == 0, second.output()
    runs = _runs(db_url, "forecast:ETH")
    assert [status for _, status, *_ in runs] == ["succeeded"] * len(runs), runs
    assert _contiguous([period for period, *_ in runs], FORECAST_S), runs  # none skipped
    forecasts = _rows(db_url, "SELECT count(*) FROM forecast_runs WHERE asset = 'ETH'")[0][0]
    assert forecasts == len(runs)  # and none written twice
    [(period, *_)] = killed
    [retried] = [r for r in runs if r[0] == period]
    assert retried[3] == 2 and retried[2] != killed[0][2]  # run again, by the new leader
    beats = _runs(db_url, "heartbeat")
    assert all(status == "succeeded" for _, status, *_ in beats)
    assert _contiguous([period for period, *_ in beats], HEARTBEAT_S), beats
    assert not _rows(db_url, "SELECT 1 FROM service_runs WHERE status <> 'succeeded'")


def test_sigterm_finishes_the_job_in_hand_and_exits_0(
    db_url: str, tmp_path: Path, services: list[Served]
) -> None:
    leader = Served(tmp_path, "leader", _forecast_config(tmp_path), db_url)
    services.append(leader)
    leader.wait_role("leader")
    standby = Served(tmp_path, "standby", _forecast_config(tmp_path), db_url)
    services.append(standby)
    standby.wait_role("standby")
    assert standby.stop(timeout_s=10) == 0, standby.output()  # a standby just leaves
    # Stop the leader while a forecast runs: the run finishes and is recorded, nothing is left running.
    _wait(lambda: _running(db_url, "forecast:ETH", leader), 60, "a forecast in progress", leader)
    [in_progress] = [period for period, status, *_ in _runs(db_url, "forecast:ETH") if status == "running"]
    assert leader.stop() == 0, leader.output()
    runs = _runs(db_url, "forecast:ETH")
    assert [status for _, status, *_ in runs] == ["succeeded"] * len(runs), leader.output()
    assert [attempts for period, _, _, attempts, _ in runs if period == in_progress] == [1]
    assert _rows(db_url, "SELECT count(*) FROM forecast_runs WHERE asset = 'ETH'") == [(len(runs),)]
    assert not _rows(db_url, "SELECT 1 FROM service_runs WHERE status = 'running'")
