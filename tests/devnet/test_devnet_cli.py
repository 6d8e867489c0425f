"""`chainrisk devnet up` and `chainrisk devnet config` as a user runs them (subprocesses, env vars)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from devnet.aave import Deployment
from devnet.serve import manifest_path
from indexer.config import IndexConfig
from tests.devnet.fixtures import devnet_home  # noqa: F401

UP_TIMEOUT_S = 120.0


def _env(home: Path, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "empty.toml").write_text("")  # CHAINRISK_CONFIG must name a file that exists
    return {
        **os.environ,
        "CHAINRISK_HOME": str(home),
        "CHAINRISK_CONFIG": str(tmp_path / "empty.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }


def _chainrisk(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "chainrisk", "devnet", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + UP_TIMEOUT_S
    while not path.is_file():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"devnet up exited with {process.returncode}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no manifest at {path} after {UP_TIMEOUT_S} s")
        time.sleep(0.1)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_up_deploys_writes_the_manifest_and_stops_on_ctrl_c(
    devnet_home: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "manifest.json"
    command = [sys.executable, "-m", "chainrisk", "devnet", "up", "--port", "0", "--manifest", str(manifest)]
    env = _env(devnet_home, tmp_path)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = 0
    try:
        _wait_for(manifest, process)
        body = json.loads(manifest.read_text())
        deployment = Deployment.from_manifest(body, body["rpc_url"], devnet_home)
        assert len(deployment.pool("spark").call("getReservesList")) == 5
        port = int(body["rpc_url"].rsplit(":", 1)[1])
        assert _port_open(port)

        config = _chainrisk(["config", "--manifest", str(manifest)], env)
        assert config.returncode == 0, config.stderr
        parsed = IndexConfig.model_validate(tomllib.loads(config.stdout))
        assert [c.rpc_urls for c in parsed.chains] == [[body["rpc_url"]]]
        governors = [c.address for c in parsed.contracts if c.abi == "governor"]
        assert governors == [body["governance"]["governor"]]
        # Morpho Blue is deployed last, after the Uniswap pools.
        assert body["end_block"] > body["uniswap"]["end_block"] > body["governance"]["end_block"]
        assert sorted(body["morpho"]["markets"]) == ["WBTC/USDC", "WETH/USDC", "wstETH/WETH"]
        assert set(body["uniswap"]["pools"]) == {"WETH/USDC", "WBTC/USDC", "wstETH/WETH", "WBTC/WETH"}
        code = httpx.post(body["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).json()
        assert int(code["result"], 16) == parsed.chains[0].chain_id == 31337

        (tmp_path / "bad.csv").write_text("unix,open\n1,2\n")
        refused = _chainrisk(
            ["simulate", "--manifest", str(manifest), "--prices", str(tmp_path / "bad.csv")], env
        )
        assert refused.returncode == 2 and "'close'" in refused.stderr
        assert deployment.rpc.rpc("eth_blockNumber") == hex(body["end_block"])  # nothing was sent
        args = [
            "simulate",
            "--manifest",
            str(manifest),
            "--days",
            "1",
            "--wallets",
            "8",
            "--seed",
            "3",
            "--feedback",
            "0.3",
            "--json",
        ]
        simulated = _chainrisk(args, env)
        assert simulated.returncode == 0, simulated.stderr
        summary = json.loads(simulated.stdout)
        assert summary["first_block"] == body["end_block"] + 1 and summary["transactions"] > 24
        assert summary["days"] == 1 and summary["wallets"] == 8
        assert [p["state"] for p in summary["proposals"]] == ["Executed", "Executed", "Executed"]
        assert summary["arbitrage_swaps"] > 0 and summary["reverted"] == 0
        record = json.loads((tmp_path / "scenario.json").read_text())
        assert "liquidator-1" in record["labels"].values() and "binance-hot-14" in record["labels"].values()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopping devnet" in out and "manifest:" in out
    assert port and not _port_open(port)


def test_config_lists_every_pool_token_and_asset_from_the_manifest(
    devnet_home: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from devnet.aave import deploy_markets
    from devnet.anvil import Anvil
    from devnet.serve import write_manifest

    with Anvil(devnet_home) as node:
        deployment = deploy_markets(node, devnet_home)
        home = tmp_path / "home"
        write_manifest(deployment.to_manifest(), manifest_path(home), node.url)
    done = _chainrisk(["config", "--chain", "local"], _env(home, tmp_path))
    assert done.returncode == 0, done.stderr
    parsed = IndexConfig.model_validate(tomllib.loads(done.stdout))
    assert [(c.name, c.chain_id, c.finality_depth) for c in parsed.chains] == [("local", 31337, 64)]
    by_abi: dict[str, set[str]] = {}
    for contract in parsed.contracts:
        assert contract.chain == "local" and contract.start_block == deployment.start_block
        by_abi.setdefault(contract.abi, set()).add(contract.address)
    assert by_abi["aave_v3_pool"] == {m.pool for m in deployment.markets.values()}
    tokens = {
        t for m in deployment.markets.values() for r in m.reserves.values() for t in (r.a_token, r.v_token)
    }
    assert by_abi["aave_v3_token"] == tokens and len(tokens) == 20
    assert by_abi["erc20"] == {a.token for a in deployment.assets.values()}
    assert by_abi["price_aggregator"] == {a.price_feed for a in deployment.assets.values()}
    assert by_abi["aave_v3_configurator"] == {m.pool_configurator for m in deployment.markets.values()}
    assert "governor" not in by_abi  # no governance section in this manifest
    assert by_abi["aave_oracle"] == {m.oracle for m in deployment.markets.values()}
    assert len({c.name for c in parsed.contracts}) == len(parsed.contracts) == 36


def test_config_without_a_manifest_says_how_to_get_one(tmp_path: Path) -> None:
    done = _chainrisk(["config"], _env(tmp_path / "home", tmp_path))
    assert done.returncode == 2
    assert "no devnet manifest at" in done.stderr and "chainrisk devnet up" in done.stderr
    (tmp_path / "bad.json").write_text("[1, 2]")
    done = _chainrisk(["config", "--manifest", str(tmp_path / "bad.json")], _env(tmp_path / "home", tmp_path))
    assert done.returncode == 2 and "not a devnet manifest" in done.stderr


def test_up_on_a_busy_port_fails_with_a_clear_message(devnet_home: Path, tmp_path: Path) -> None:  # noqa: F811
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _chainrisk(["up", "--port", str(port)], _env(devnet_home, tmp_path))
    assert done.returncode == 2
    assert f"port {port} is in use" in done.stderr
