"""The pieces behind the refusals: the error roots and their exit codes, address checksums, repeated rows
in price and label files, repeated shocks, the RPC timeout setting."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import pytest
import typer
from eth_utils.address import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from analytics.errors import AnalyticsError
from analytics.loaders import PriceDataError, load_ohlcv
from chainrisk.commands.graph import parse_shocks
from chainrisk.errors import ChainriskError
from chainrisk.exits import new_app, one_line
from chainrisk.indexing import IndexRequest
from chainrisk.indexing import plans as index_plans
from chainrisk.settings import Settings
from devnet.errors import DevnetError
from graph.errors import GraphError, ShockError
from indexer.catalog import SEED_FILE, CatalogError, read_labels_csv
from indexer.config import ChainConfig, ConfigError, IndexConfig, normalise_address
from indexer.errors import IndexerError, InputError

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------------------ error roots


def _raising(error: Exception) -> typer.Typer:
    app = new_app()

    @app.command()
    def boom() -> None:
        raise error

    @app.command()
    def other() -> None:  # two commands make `boom` a subcommand, as in the real CLI
        pass

    return app


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ChainriskError("bad flag"), 2),
        (InputError("bad input"), 2),
        (IndexerError("node failed"), 1),
        (AnalyticsError("bad window"), 2),
        (GraphError("bad matrix"), 2),
        (DevnetError("anvil died"), 1),
        (PriceDataError("bad file"), 2),
    ],
)
def test_each_root_leaves_as_one_line_and_its_exit_code(error: Exception, code: int) -> None:
    result = CliRunner().invoke(_raising(error), ["boom"])
    assert result.exit_code == code
    assert result.stderr == f"error: {error}\n"


def test_anything_else_is_a_bug_and_keeps_its_traceback() -> None:
    result = CliRunner().invoke(_raising(KeyError("surprise")), ["boom"])
    assert isinstance(result.exception, KeyError)
    assert "error:" not in result.stderr


def test_messages_are_one_line_without_url_secrets() -> None:
    text = one_line(
        "solc failed:\n  a.sol:1: bad\n\n  b.sol:2: worse at https://node.example/v2/KEY1234?key=s3cr3t"
    )
    assert "\n" not in text and text.startswith("solc failed:; a.sol:1: bad; b.sol:2: worse")
    assert "KEY1234" not in text and "s3cr3t" not in text and "node.example" in text
    assert one_line("see https://node.example:8545 or `chainrisk index`") == (
        "see https://node.example:8545 or `chainrisk index`"
    )


def test_package_errors_hang_under_their_roots() -> None:
    from analytics.backtest import BacktestError
    from analytics.baselines import InsufficientHistoryError
    from analytics.onchain import OnchainError
    from chainrisk.inputs import OptionError
    from chainrisk.settings import SettingsError
    from devnet.aave import AaveDeployError
    from devnet.anvil import AnvilError, RpcError
    from devnet.deploy import DeployError
    from devnet.governance import GovernanceError
    from devnet.npm import NodeToolsError
    from devnet.scenario import ScenarioError
    from devnet.serve import ManifestError
    from devnet.solc import SolcError
    from devnet.uniswap import UniswapError
    from graph.errors import GraphInputError

    cls: type[Exception]
    for cls in (BacktestError, InsufficientHistoryError, OnchainError, PriceDataError):
        assert issubclass(cls, AnalyticsError) and issubclass(cls, ValueError)
    for cls in (ShockError, GraphInputError):
        assert issubclass(cls, GraphError) and issubclass(cls, ValueError)
    for cls in (AaveDeployError, SolcError, GovernanceError, AnvilError, RpcError, DeployError):
        assert issubclass(cls, DevnetError) and issubclass(cls, RuntimeError) and cls.exit_code == 1
    for cls in (UniswapError, NodeToolsError):
        assert issubclass(cls, DevnetError) and cls.exit_code == 1
    for cls in (ScenarioError, ManifestError):
        assert issubclass(cls, DevnetError) and issubclass(cls, ValueError) and cls.exit_code == 2
    for cls in (SettingsError, OptionError):
        assert issubclass(cls, ChainriskError) and cls.exit_code == 2
    assert issubclass(ConfigError, InputError) and issubclass(CatalogError, InputError)


def test_graph_input_checks_raise_a_graph_error() -> None:
    from graph.debtrank import debtrank

    with pytest.raises(GraphError, match="exposures: expected a square 2-D array"):
        debtrank([[1.0, 2.0]], [1.0], [1.0], [0.0])


# ------------------------------------------------------------------------------------------- addresses


@given(st.binary(min_size=20, max_size=20))
def test_checksummed_lowercase_and_uppercase_addresses_pass(raw: bytes) -> None:
    lower = "0x" + raw.hex()
    assert normalise_address(to_checksum_address(lower)) == lower
    assert normalise_address(lower) == lower
    assert normalise_address("0x" + raw.hex().upper()) == lower


@given(st.binary(min_size=20, max_size=20), st.integers(min_value=0, max_value=39))
def test_one_flipped_letter_is_refused_naming_the_address(raw: bytes, position: int) -> None:
    good = to_checksum_address("0x" + raw.hex())
    digits = list(good[2:])
    letters = [i for i, c in enumerate(digits) if c.isalpha()]
    if not letters:
        return
    i = letters[position % len(letters)]
    digits[i] = digits[i].swapcase()
    flipped = "0x" + "".join(digits)
    if flipped[2:] in (flipped[2:].lower(), flipped[2:].upper()):
        return  # a single-case address carries no checksum
    with pytest.raises(ConfigError, match="EIP-55") as refused:
        normalise_address(flipped)
    assert flipped in str(refused.value)


@pytest.mark.parametrize("value", ["0x1234", "87870bca3f3fd6335c3f4ce8392d69350b4fa4e2", "0x" + "g" * 40, ""])
def test_malformed_addresses_are_named(value: str) -> None:
    with pytest.raises(ConfigError, match="20-byte hex address") as refused:
        normalise_address(value)
    assert repr(value) in str(refused.value)


# ---------------------------------------------------------------------------------------------- config


def test_rpc_timeout_is_a_per_chain_setting_and_a_flag() -> None:
    assert ChainConfig(rpc_urls=["http://node.example"]).rpc_timeout_s == 30.0
    assert ChainConfig(rpc_urls=["http://node.example"], rpc_timeout_s=2.5).rpc_timeout_s == 2.5
    settings = Settings(chains=[ChainConfig(rpc_urls=["http://node.example"])])
    request = IndexRequest(["http://node.example"], [], 1, None, False, 1, 64, 2000, None, 7.5)
    plans = index_plans(settings, request)
    assert plans[0].job.chain.rpc_timeout_s == 7.5


def test_index_config_refuses_what_settings_refuse() -> None:
    chain = {"name": "a", "chain_id": 1, "rpc_urls": ["http://node.example"]}
    with pytest.raises(ValueError, match=re.escape("chains.1.chain_id = 1: chains.0 has the same chain_id")):
        IndexConfig.model_validate({"chains": [chain, {**chain, "name": "b"}]})
    with pytest.raises(ValueError, match=re.escape("labels.0.chain = 'mainnet'")):
        IndexConfig.model_validate(
            {"labels": [{"address": "0x" + "12" * 20, "label": "x", "category": "fund"}]}
        )


# ------------------------------------------------------------------------------------------ label files


def test_seed_labels_still_load() -> None:
    assert len(read_labels_csv(SEED_FILE)) > 0


def test_one_address_twice_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    address = "0x" + "ab" * 20
    path.write_text(
        "chain_id,address,label,category\n"
        f"1,{address},a,fund\n10,{address},other chain,fund\n1,{address.upper().replace('0X', '0x')},b,fund\n"
    )
    with pytest.raises(
        CatalogError, match=f"line 4: address {address} on chain 1 is already labelled on line 2"
    ):
        read_labels_csv(path)


def test_labels_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="is a directory"):
        read_labels_csv(tmp_path)


# ------------------------------------------------------------------------------------------ price files


def _daily(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text("date,open,high,low,close\n" + "\n".join(rows) + "\n")
    return path


def _days(n: int) -> list[str]:
    return [f"2021-02-{d:02d},100,110,90,{100 + d}" for d in range(1, n + 1)]


def test_a_repeated_day_with_other_prices_is_refused(tmp_path: Path) -> None:
    rows = _days(10)
    rows.append("2021-02-03,100,110,90,180")
    with pytest.raises(PriceDataError, match=r"2021-02-03 appears on lines 4 and 12 .*close 103 and 180"):
        load_ohlcv(_daily(tmp_path, rows))


def test_a_repeated_day_within_rounding_keeps_the_later_row_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = _days(10)
    rows.append("2021-02-03,100.2,110,90,103.1")
    with caplog.at_level(logging.WARNING, logger="analytics.loaders"):
        data = load_ohlcv(_daily(tmp_path, rows))
    assert data.duplicates == 1
    assert data.bars.loc[pd.Timestamp("2021-02-03", tz="UTC"), "close"] == 103.1
    assert "1 bar times appear more than once (2021-02-03 … 2021-02-03)" in caplog.text
    assert "keeps the row further down the file" in caplog.text


def test_price_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PriceDataError, match="is a directory"):
        load_ohlcv(tmp_path)


def _recorded(name: str) -> Path:
    for base in (ROOT / "data" / "prices", ROOT.parent / "shared" / "data" / "prices"):
        if (base / name).is_file():
            return base / name
    pytest.skip(f"recorded price file {name} not present")


def test_recorded_hourly_file_still_loads_with_its_overlap_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="analytics.loaders"):
        data = load_ohlcv(_recorded("binance-ethusdt-hourly.csv"))
    assert data.duplicates == 2649 and data.bars.index.is_unique
    assert "2649 bar times appear more than once (2020-08-01 23:00 … 2020-11-20 07:00)" in caplog.text


@pytest.mark.parametrize("name", ["binance-btcusdt-daily.csv", "binance-ethusdt-daily.csv"])
def test_recorded_daily_files_have_no_repeats(name: str) -> None:
    assert load_ohlcv(_recorded(name)).duplicates == 0


# ---------------------------------------------------------------------------------------------- shocks


def test_one_market_shocked_under_two_names_is_refused() -> None:
    with pytest.raises(ShockError, match="market 'aave-pool' is shocked twice \\(also as 'aave'\\)"):
        parse_shocks(["aave=0.1", "aave-pool=0.3"], ["0xaa"], {"0xaa": "aave-pool"})
    with pytest.raises(ShockError, match="market 'aave' is shocked twice"):
        parse_shocks(["aave=0.1", "Aave=0.1"], ["0xaa"], {"0xaa": "aave-pool"})
