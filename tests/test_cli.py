"""The `chainrisk` command as a user runs it: a subprocess with env vars and a config file."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from chainrisk.db import to_libpq_url
from indexer.replay import ReplayServer, load_recording
from tests.conftest import data_file

BLOCK_18M = "chain/mainnet-block-18000000-logs.json"


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "chainrisk.toml").write_text("")  # CHAINRISK_CONFIG must name a file that exists
    return {
        **os.environ,
        "CHAINRISK_DATABASE_URL": db_url,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def replay() -> Iterator[str]:
    with ReplayServer(load_recording([data_file(BLOCK_18M)])) as server:
        yield server.url


def _count(db_url: str, table: str) -> int:
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_help_lists_the_commands_quickly() -> None:
    result = subprocess.run([sys.executable, "-m", "chainrisk", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("index", "migrate", "db", "rpc", "bench", "demo"):
        assert command in result.stdout
    modules = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chainrisk", "--help"], capture_output=True, text=True
    ).stderr
    assert " torch" not in modules and " pandas" not in modules and " web3" not in modules


def test_adhoc_index_through_replay_stores_all_291_logs(
    env: dict[str, str], replay: str, db_url: str
) -> None:
    result = _run(["index", "--rpc", replay, "--from", "18000000", "--to", "18000000", "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    assert "indexed through block 18000000" in result.stdout
    assert _count(db_url, "logs") == 291
    assert _count(db_url, "aave_v3_borrow") == 1


def test_config_file_indexes_configured_contracts(
    env: dict[str, str], replay: str, db_url: str, tmp_path: Path
) -> None:
    Path(env["CHAINRISK_CONFIG"]).write_text(
        f'[[chains]]\nname = "mainnet"\nchain_id = 1\nrpc_urls = ["{replay}"]\n\n'
        '[[contracts]]\nname = "aave-pool"\nchain = "mainnet"\n'
        'address = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"\n'
        'abi = "aave_v3_pool"\nstart_block = 18000000\n'
    )
    result = _run(["index", "--to", "18000000", "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    assert _count(db_url, "logs") == 2
    assert _count(db_url, "aave_v3_borrow") == 1
    assert _count(db_url, "aave_v3_reserve_data_updated") == 1


def test_bad_config_names_the_field(env: dict[str, str]) -> None:
    Path(env["CHAINRISK_CONFIG"]).write_text(
        '[[chains]]\nname = "x"\nchain_id = -1\nrpc_urls = ["http://a"]\n'
    )
    result = _run(["index"], env)
    assert result.returncode == 2
    assert "chains.0.chain_id" in result.stderr and "greater than 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flags_get_clear_errors(env: dict[str, str], replay: str) -> None:
    missing_from = _run(["index", "--rpc", replay, "--no-progress"], env)
    assert missing_from.returncode == 2 and "--from" in missing_from.stderr
    bad_address = _run(["index", "--rpc", replay, "--from", "1", "--address", "0xnope", "--no-progress"], env)
    assert bad_address.returncode == 2 and "20-byte hex address" in bad_address.stderr


def test_api_key_in_rpc_url_never_printed(env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v2/SECRETKEY123abc"
    result = _run(
        ["--log-level", "DEBUG", "index", "--rpc", url, "--from", "1", "--chain-id", "1", "--no-progress"],
        {**env, "CHAINRISK_LOG_LEVEL": "DEBUG"},
        timeout=300,
    )
    assert result.returncode != 0
    assert "SECRETKEY123abc" not in result.stdout + result.stderr
    assert "127.0.0.1" in result.stderr


def test_metrics_endpoint_reports_heads_and_logs(env: dict[str, str], replay: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chainrisk",
            "index",
            "--rpc",
            replay,
            "--from",
            "18000000",
            "--follow",
            "--no-progress",
            "--metrics-port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = _scrape(f"http://127.0.0.1:{port}/metrics", "chainrisk_local_head")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert 'chainrisk_local_head{chain="chain-1"} 1.8e+07' in body
    assert 'chainrisk_remote_head{chain="chain-1"} 1.8e+07' in body
    assert 'chainrisk_logs_total{chain="chain-1"} 291.0' in body
    assert "chainrisk_rpc_errors_total" in body or "chainrisk_rpc_errors" in body


def _scrape(url: str, wanted: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            body = httpx.get(url, timeout=2).text
            if f"{wanted}{{" in body and " 1.8e+07" in body:
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{wanted} never appeared at {url}")


def test_several_chains_index_side_by_side(env: dict[str, str], replay: str, db_url: str) -> None:
    window = load_recording([data_file("chain/mainnet-aave-v3-window-25290309-logs.json")])
    # Each configured chain needs its own chain id: the second replay answers as chain 2.
    with ReplayServer(window, chain_id=2) as second:
        Path(env["CHAINRISK_CONFIG"]).write_text(
            f'[[chains]]\nname = "a"\nchain_id = 1\nrpc_urls = ["{replay}"]\n\n'
            f'[[chains]]\nname = "b"\nchain_id = 2\nrpc_urls = ["{second.url}"]\n\n'
            '[[contracts]]\nname = "usdc"\nchain = "a"\n'
            'address = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"\n'
            'abi = "erc20"\nstart_block = 18000000\n\n'
            '[[contracts]]\nname = "pool"\nchain = "b"\n'
            'address = "0x87870bca3f3fd6335c3f4ce8392d69350b4fa4e2"\n'
            'abi = "aave_v3_pool"\nstart_block = 25290209\n'
        )
        result = _run(["index", "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    assert "config:a: indexed through block 18000000" in result.stdout
    assert "config:b: indexed through block 25290309" in result.stdout
    assert _count(db_url, "logs") == 13 + 115


def test_demo_runs_the_main_job_end_to_end(env: dict[str, str], db_url: str, node_home: Path) -> None:
    result = _run(
        ["demo", "--days", "3", "--wallets", "30", "--seed", "2"],
        {**env, "CHAINRISK_HOME": str(node_home)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "markets deployed" in result.stdout and "indexed the devnet through block" in result.stdout
    assert "liquidatable if ETH -20%" in result.stdout and "health factor under 1.1" in result.stdout
    assert "whale flows and exchange net flows" in result.stdout
    reconciled = re.search(
        r"reconciled (\d+) sampled wallets .* (\d+) equal to the wei", " ".join(result.stdout.split())
    )
    assert reconciled is not None and reconciled[1] == reconciled[2] and int(reconciled[1]) > 0
    assert "contagion: 2,000 one-day scenarios" in " ".join(result.stdout.split())
    assert (node_home / "demo-report" / "report.html").is_file()
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        stored = conn.execute("SELECT scenarios FROM contagion_run_results WHERE chain_id = 31337").fetchall()
        supplies = conn.execute("SELECT count(*) FROM aave_v3_supply WHERE chain_id = 31337").fetchone()
        pools = conn.execute(
            "SELECT count(DISTINCT address) FROM aave_v3_supply WHERE chain_id = 31337"
        ).fetchone()
        mainnet = conn.execute("SELECT count(*) FROM logs WHERE chain_id = 1").fetchone()
    assert supplies is not None and supplies[0] >= 30
    assert pools == (2,)
    assert mainnet == (454,)
    assert stored == [(2_000,)]
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        accounts = conn.execute("SELECT count(*) FROM positions_current WHERE chain_id = 31337").fetchone()
        buckets = conn.execute("SELECT sum(users) FROM hf_distribution WHERE chain_id = 31337").fetchone()
        borrowers = conn.execute("SELECT count(*) FROM positions_current WHERE debt_usd > 0").fetchone()
    assert accounts is not None and accounts[0] >= 30
    assert buckets == borrowers


def test_demo_reads_the_recordings_shipped_in_data() -> None:
    from chainrisk.demo import DEFAULT_DATA, missing_recordings

    assert data_file(BLOCK_18M) == DEFAULT_DATA / BLOCK_18M
    assert missing_recordings(DEFAULT_DATA) == []


def test_demo_fails_before_starting_anything_without_the_recordings(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("")  # CHAINRISK_CONFIG must name a file that exists
    env = {
        **os.environ,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "c.toml"),
    }
    result = _run(["demo", "--data", str(tmp_path / "nowhere")], env)
    assert result.returncode == 2
    assert "recorded mainnet data missing" in result.stderr and "--data" in result.stderr
    assert not (tmp_path / "home").exists()


def test_bench_devnet_reports_transactions_per_second(env: dict[str, str], node_home: Path) -> None:
    result = _run(
        ["bench", "devnet", "--days", "1", "--wallets", "10", "--json"],
        {**env, "CHAINRISK_HOME": str(node_home)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["transactions"] > 0 and figures["transactions_per_s"] > 0
    assert figures["machine"]["cores"] >= 1


def test_bench_flows_reports_the_view_against_pandas(env: dict[str, str]) -> None:
    result = _run(["bench", "flows", "--transfers", "3000", "--repeats", "1", "--json"], env, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["transfers"] == 3000 and figures["transfers_per_s"] > 0
    assert figures["totals_agree"] is True and figures["net_usd"] != 0
