"""The seeded market scenario: price paths, liquidations in the crash, the same chain for the same seed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devnet.aave import ASSETS, USD, Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.scenario import STEP_S, ScenarioError, ScenarioResult, price_path, read_price_csv, simulate
from tests.conftest import data_file
from tests.devnet.fixtures import devnet_home  # noqa: F401

GENESIS = 1_700_000_000
DAYS, WALLETS, SEED = 4, 40, 7
START = {a.symbol: a.price for a in ASSETS}


def _fresh_devnet(home: Path) -> tuple[Anvil, Deployment]:
    node = Anvil(home, extra_args=["--timestamp", str(GENESIS)]).start()
    node.rpc("anvil_setBlockTimestampInterval", [12])
    return node, deploy_markets(node, home)


def _hashes(node: Anvil) -> list[str]:
    return [node.rpc("eth_getBlockByNumber", [hex(n), False])["hash"] for n in range(node.block_number() + 1)]


@pytest.fixture(scope="module")
def runs(devnet_home: Path) -> Iterator[list[tuple[ScenarioResult, list[str], dict[str, Any]]]]:  # noqa: F811
    """The same scenario twice, each on its own fresh devnet."""
    done = []
    for _ in range(2):
        node, deployment = _fresh_devnet(devnet_home)
        try:
            result = simulate(deployment, DAYS, WALLETS, SEED)
            borrower = next(a for a, label in sorted(result.labels.items()) if label == "borrower-0")
            accounts: dict[str, Any] = {
                m: deployment.pool(m).call("getUserAccountData", borrower) for m in deployment.markets
            }
            accounts["automine"] = node.rpc("anvil_getAutomine")
            done.append((result, _hashes(node), accounts))
        finally:
            node.stop()
    yield done


@pytest.mark.slow
def test_same_seed_gives_the_same_chain(runs: list[tuple[ScenarioResult, list[str], dict[str, Any]]]) -> None:
    (first, hashes_a, accounts_a), (second, hashes_b, accounts_b) = runs
    assert len(hashes_a) == first.last_block + 1 > first.first_block
    assert hashes_a == hashes_b
    assert accounts_a == accounts_b
    assert accounts_a["automine"] is True  # restored after the batched run
    assert first.blocks < first.transactions and first.reverted == 0
    assert first.wall_s > 0 and second.wall_s > 0
    assert {**first.to_dict(), "wall_s": 0} == {**second.to_dict(), "wall_s": 0}


@pytest.mark.slow
def test_liquidations_happen_in_the_crash(
    runs: list[tuple[ScenarioResult, list[str], dict[str, Any]]],
) -> None:
    result = runs[0][0]
    path = price_path(DAYS, SEED, START)
    crash = [step for step, regime in enumerate(path.regimes) if regime == "crash"]
    assert crash, "the default path always has a crash"
    assert result.liquidations
    steps = [(liq.timestamp - result.start_timestamp) // STEP_S for liq in result.liquidations]
    assert any(step >= crash[0] for step in steps)
    assert all(liq.health_factor < 1 for liq in result.liquidations)
    assert {liq.market for liq in result.liquidations} <= {"aave", "spark"}
    assert result.positions["aave"] > 0 and result.positions["spark"] > 0
    assert result.transactions > result.price_updates > 0


def test_price_path_is_seeded_fat_tailed_and_crashes() -> None:
    one, again, other = (price_path(10, seed, START) for seed in (1, 1, 2))
    assert one == again and one.prices != other.prices
    assert one.steps == 240 and set(one.prices) == set(START)
    eth = one.prices["WETH"]
    worst = min(eth[j] / max(eth[: j + 1]) for j in range(len(eth)))
    assert worst < 0.85  # at least a 15 % drawdown from the running peak
    assert all(0.98 * USD < p < 1.02 * USD for p in one.prices["USDC"])
    ratio = [w / e for w, e in zip(one.prices["wstETH"], eth, strict=True)]
    assert max(ratio) <= START["wstETH"] / START["WETH"] * 1.001


def test_price_path_replays_a_real_csv() -> None:
    csv_path = data_file("prices/binance-ethusdt-hourly.csv")
    closes = read_price_csv(csv_path)
    path = price_path(3, 0, START, csv_path)
    assert path.steps == 72 and path.source == str(csv_path)
    assert path.prices["WETH"][:3] == pytest.approx([c * USD for c in closes[:3]], abs=2)


def test_bad_input_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="days must be positive"):
        price_path(0, 1, START)
    bad = tmp_path / "prices.csv"
    bad.write_text("time,price\n1,2\n")
    with pytest.raises(ScenarioError, match="'close' column"):
        read_price_csv(bad)
    bad.write_text("unix,close\n1,2\n2,3\n")
    with pytest.raises(ScenarioError, match="2 hourly closes; 1 days need 24"):
        price_path(1, 1, START, bad)
    with pytest.raises(ScenarioError, match="does not exist"):
        read_price_csv(tmp_path / "missing.csv")
