"""Refused input, as the CLI answers it: exit 2, one `error:` line naming the field and the value, and
nothing written. Most cases run against an unreachable database URL: a command that touched the database
before refusing would fail differently, and CHAINRISK_HOME (where the embedded server would live) must not
appear either."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from chainrisk.cli import app
from chainrisk.db import to_libpq_url

UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:9/none"
POOL = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"  # Aave v3 Pool, EIP-55 form
BAD_CHECKSUM = POOL[:-1] + "e"  # one letter's case flipped
CHAIN = '[[chains]]\nname = "mainnet"\nchain_id = 1\nrpc_urls = ["http://127.0.0.1:9"]\n'


def cli(tmp_path: Path, *args: str, config: str = "", **env: str | None) -> Result:
    """Run the CLI in-process with its own HOME and config file; env values override (None unsets)."""
    path = tmp_path / "chainrisk.toml"
    path.write_text(config)
    base: dict[str, str | None] = {
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(path),
        "CHAINRISK_DATABASE_URL": UNREACHABLE_DB,
        "CHAINRISK_LOG_LEVEL": "WARNING",
        "CHAINRISK_METRICS_PORT": None,
    }
    return CliRunner().invoke(app, list(args), env={**base, **env})


def refused(result: Result, tmp_path: Path, *named: str) -> str:
    """Exit 2, exactly one `error:` line on stderr containing every `named` part, nothing under HOME."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for part in named:
        assert part in lines[0], (part, lines[0])
    assert result.stdout == ""
    assert not (tmp_path / "home").exists(), "the refused command created CHAINRISK_HOME"
    return lines[0]


# ---------------------------------------------------------------------------------------------- config


def test_config_that_is_not_toml(tmp_path: Path) -> None:
    result = cli(tmp_path, "labels", "list", config="[[chains]\nname = ")
    refused(result, tmp_path, "chainrisk.toml", "not valid TOML", "line 1")


@pytest.mark.parametrize(
    ("config", "field", "suggestion"),
    [
        ('[[contracts]]\nname = "x"\nchian = "mainnet"\n', "contracts.0.chian", "did you mean 'chain'?"),
        (CHAIN.replace("chain_id", "chainid"), "chains.0.chainid", "did you mean 'chain_id'?"),
        ('log_levle = "INFO"\n', "log_levle", "did you mean 'log_level'?"),
        ("metrics_prot = 9108\n", "metrics_prot", "did you mean 'metrics_port'?"),
    ],
)
def test_unknown_key_suggests_the_closest(tmp_path: Path, config: str, field: str, suggestion: str) -> None:
    refused(cli(tmp_path, "labels", "list", config=config), tmp_path, field, "unknown key", suggestion)


@pytest.mark.parametrize(
    ("table", "entry"),
    [
        ("contracts", f'name = "pool"\naddress = "{POOL}"\n'),
        ("tokens", f'address = "{POOL}"\nsymbol = "X"\ndecimals = 18\n'),
        ("labels", f'address = "{POOL}"\nlabel = "pool"\ncategory = "protocol"\n'),
    ],
)
@pytest.mark.parametrize("chains", ["", CHAIN.replace('"mainnet"', '"main"')])
def test_entry_naming_an_undefined_chain(tmp_path: Path, table: str, entry: str, chains: str) -> None:
    config = f"{chains}\n[[{table}]]\n{entry}"
    refused(cli(tmp_path, "index", config=config), tmp_path, f"{table}.0.chain = 'mainnet'", "[[chains]]")


@pytest.mark.parametrize(
    ("second", "field"),
    [
        ('name = "other"\nchain_id = 1\n', "chains.1.chain_id = 1"),
        ('name = "mainnet"\nchain_id = 5\n', "chains.1.name = 'mainnet'"),
    ],
)
def test_two_chains_with_the_same_id_or_name(tmp_path: Path, second: str, field: str) -> None:
    config = f'{CHAIN}\n[[chains]]\n{second}rpc_urls = ["http://127.0.0.1:9"]\n'
    refused(cli(tmp_path, "index", config=config), tmp_path, field, "chains.0")


@pytest.mark.parametrize(
    "url", ["http://", "https:///x", "http://:8545/", "https://user:hunter2@/v2/KEY1234"]
)
def test_rpc_url_without_a_host(tmp_path: Path, url: str) -> None:
    config = f'[[chains]]\nrpc_urls = ["{url}"]\n'
    line = refused(cli(tmp_path, "index", config=config), tmp_path, "chains.0.rpc_urls", "has no host")
    assert "hunter2" not in line and "KEY1234" not in line


def test_rpc_url_secret_never_shown_whatever_the_error(tmp_path: Path) -> None:
    config = '[[chains]]\nrpc_urls = ["ftp://node.example/v2/KEY1234"]\nchain_id = 0\n'
    line = refused(cli(tmp_path, "index", config=config), tmp_path, "chains.0", "(and 1 more)")
    assert "KEY1234" not in line


def test_empty_home(tmp_path: Path) -> None:
    refused(cli(tmp_path, "labels", "list", CHAINRISK_HOME=""), tmp_path, "CHAINRISK_HOME", "empty")


@pytest.mark.parametrize(
    "command",
    [
        ["index"],
        ["migrate"],
        ["labels", "list"],
        ["db", "url"],
        ["graph", "debtrank", "--chain-id", "1"],
        ["rpc", "replay", "x.json"],
        ["devnet", "config"],
        ["reconcile", "--sample", "1"],
        ["forecast", "backtest", "--prices", "x.csv"],
        ["forecast", "onchain", "--out", "x.csv"],
    ],
)
def test_missing_config_file_for_every_command(tmp_path: Path, command: list[str]) -> None:
    missing = str(tmp_path / "nowhere.toml")
    refused(
        cli(tmp_path, *command, CHAINRISK_CONFIG=missing),
        tmp_path,
        f"CHAINRISK_CONFIG={missing}",
        "no such file",
    )


def test_config_path_that_is_a_directory_or_empty(tmp_path: Path) -> None:
    refused(cli(tmp_path, "index", CHAINRISK_CONFIG=str(tmp_path)), tmp_path, str(tmp_path), "is a directory")
    refused(cli(tmp_path, "index", CHAINRISK_CONFIG=""), tmp_path, "CHAINRISK_CONFIG", "empty")


def test_absent_default_config_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["labels", "--help"], env={"CHAINRISK_CONFIG": None})
    assert result.exit_code == 0, result.output


def test_several_errors_make_one_line(tmp_path: Path) -> None:
    config = '[[chains]]\nchain_id = -1\nfinality_depth = -5\nrpc_urls = ["http://a"]\n'
    refused(cli(tmp_path, "index", config=config), tmp_path, "chains.0.chain_id = -1", "(and 1 more)")


@pytest.mark.parametrize("chain_id", ["0", "-7", str(2**53), str(2**64)])
def test_config_chain_id_out_of_range(tmp_path: Path, chain_id: str) -> None:
    config = CHAIN.replace("chain_id = 1", f"chain_id = {chain_id}")
    refused(cli(tmp_path, "index", config=config), tmp_path, f"chains.0.chain_id = {chain_id}")


def test_config_rpc_timeout(tmp_path: Path) -> None:
    config = CHAIN + "rpc_timeout_s = 0\n"
    refused(cli(tmp_path, "index", config=config), tmp_path, "chains.0.rpc_timeout_s = 0", "greater than 0")


def test_config_metrics_port_from_env(tmp_path: Path) -> None:
    result = cli(tmp_path, "labels", "list", CHAINRISK_METRICS_PORT="70000")
    refused(result, tmp_path, "CHAINRISK_METRICS_PORT", "70000", "65535")


# ------------------------------------------------------------------------------------------- addresses


def test_config_address_with_a_wrong_checksum(tmp_path: Path) -> None:
    config = f'{CHAIN}\n[[contracts]]\nname = "pool"\naddress = "{BAD_CHECKSUM}"\n'
    refused(cli(tmp_path, "index", config=config), tmp_path, "contracts.0.address", BAD_CHECKSUM, "EIP-55")


def test_flag_address_with_a_wrong_checksum(tmp_path: Path) -> None:
    result = cli(tmp_path, "index", "--rpc", "http://127.0.0.1:9", "--from", "1", "--address", BAD_CHECKSUM)
    refused(result, tmp_path, "--address", BAD_CHECKSUM, "EIP-55")


@pytest.mark.parametrize(
    "command", [["add", BAD_CHECKSUM, "x", "--category", "fund"], ["remove", BAD_CHECKSUM]]
)
def test_labels_address_with_a_wrong_checksum(tmp_path: Path, command: list[str]) -> None:
    refused(cli(tmp_path, "labels", *command), tmp_path, "address", BAD_CHECKSUM, "EIP-55")


def test_labels_file_address_with_a_wrong_checksum(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(f"chain_id,address,label,category\n1,{BAD_CHECKSUM},x,fund\n")
    refused(cli(tmp_path, "labels", "import", str(path)), tmp_path, "line 2", BAD_CHECKSUM, "EIP-55")


def test_labels_category_is_checked_before_the_database(tmp_path: Path) -> None:
    refused(cli(tmp_path, "labels", "list", "--category", "casino"), tmp_path, "--category", "'casino'")


# ----------------------------------------------------------------------------------------------- ports


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_metrics_port_out_of_range(tmp_path: Path, port: str) -> None:
    result = cli(
        tmp_path,
        "index",
        "--rpc",
        "http://127.0.0.1:9",
        "--from",
        "1",
        "--chain-id",
        "1",
        "--metrics-port",
        port,
    )
    refused(result, tmp_path, "--metrics-port", port, "0..65535")


def test_metrics_port_in_use(tmp_path: Path) -> None:
    with _busy_port() as busy:
        port = str(busy.getsockname()[1])
        args = [
            "index",
            "--rpc",
            "http://127.0.0.1:9",
            "--from",
            "1",
            "--chain-id",
            "1",
            "--metrics-port",
            port,
        ]
        refused(cli(tmp_path, *args), tmp_path, "--metrics-port", f"port {port} is in use", "choose another")


def test_metrics_port_in_use_from_the_env(tmp_path: Path) -> None:
    with _busy_port() as busy:
        port = str(busy.getsockname()[1])
        args = ["index", "--rpc", "http://127.0.0.1:9", "--from", "1", "--chain-id", "1"]
        result = cli(tmp_path, *args, CHAINRISK_METRICS_PORT=port)
        refused(result, tmp_path, f"CHAINRISK_METRICS_PORT {port}", f"port {port} is in use")


def test_metrics_port_in_use_from_the_config(tmp_path: Path) -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        config = f"metrics_port = {port}\n"
        args = ["index", "--rpc", "http://127.0.0.1:9", "--from", "1", "--chain-id", "1"]
        refused(cli(tmp_path, *args, config=config), tmp_path, "metrics_port", f"port {port} is in use")


def test_replay_port_out_of_range_and_in_use(tmp_path: Path) -> None:
    recording = tmp_path / "r.json"
    recording.write_text("[]")
    refused(
        cli(tmp_path, "rpc", "replay", str(recording), "--port", "65536"),
        tmp_path,
        "--port 65536",
        "0..65535",
    )
    with _busy_port() as busy:
        port = str(busy.getsockname()[1])
        result = cli(tmp_path, "rpc", "replay", str(recording), "--port", port)
        refused(result, tmp_path, f"--port {port}", f"port {port} is in use")


# ---------------------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("flag", ["--from", "--to", "--rewind-to"])
@pytest.mark.parametrize("value", [str(2**63), str(2**64 + 5)])
def test_absurd_block_numbers(tmp_path: Path, flag: str, value: str) -> None:
    args = ["index", "--rpc", "http://127.0.0.1:9", "--chain-id", "1", flag, value]
    if flag != "--from":
        args += ["--from", "0"]
    refused(cli(tmp_path, *args), tmp_path, f"'{flag}'", value, str(2**63 - 1))


def test_to_below_from(tmp_path: Path) -> None:
    args = ["index", "--rpc", "http://127.0.0.1:9", "--chain-id", "1", "--from", "10", "--to", "9"]
    refused(cli(tmp_path, *args), tmp_path, "--to 9", "--from 10")


def test_rpc_timeout_flag(tmp_path: Path) -> None:
    args = ["index", "--rpc", "http://127.0.0.1:9", "--chain-id", "1", "--from", "1", "--rpc-timeout", "0"]
    refused(cli(tmp_path, *args), tmp_path, "--rpc-timeout 0.0", "greater than 0")


def test_rpc_flag_without_a_host(tmp_path: Path) -> None:
    args = ["index", "--rpc", "https:///v2/KEY1234", "--chain-id", "1", "--from", "1"]
    line = refused(cli(tmp_path, *args), tmp_path, "--rpc", "has no host")
    assert "KEY1234" not in line


# ----------------------------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (["labels", "import", "{dir}"], "is a directory"),
        (["labels", "export", "--out", "{dir}"], "--out"),
        (["forecast", "backtest", "--prices", "{dir}"], "--prices"),
        (["forecast", "onchain", "--out", "{dir}"], "--out"),
        (["forecast", "table", "{dir}"], "RESULTS"),
        (["rpc", "replay", "{dir}"], "is a directory"),
        (["devnet", "config", "--manifest", "{dir}"], "--manifest"),
    ],
)
def test_directory_where_a_file_is_expected(tmp_path: Path, command: list[str], field: str) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    result = cli(tmp_path, *[part.format(dir=folder) for part in command])
    refused(result, tmp_path, field, str(folder))


@pytest.mark.parametrize(
    "command",
    [
        ["labels", "import", "a\0b.csv"],
        ["forecast", "backtest", "--prices", "a\0b.csv"],
        ["forecast", "onchain", "--out", "a\0b.csv"],
        ["rpc", "replay", "a\0b.json"],
    ],
)
def test_path_with_a_nul_byte(tmp_path: Path, command: list[str]) -> None:
    refused(cli(tmp_path, *command), tmp_path, "null byte", "a\\x00b")


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["labels", "import", "{missing}"], "no such file"),
        (["forecast", "backtest", "--prices", "{missing}"], "price file not found"),
        (["forecast", "backtest", "--prices", "{prices}", "--onchain", "{missing}"], "--onchain"),
        (["forecast", "table", "{missing}"], "not found"),
        (["rpc", "replay", "{missing}"], "cannot be read"),
        (["devnet", "config", "--manifest", "{missing}"], "--manifest"),
        (["devnet", "simulate", "--prices", "{missing}"], "--prices"),
    ],
)
def test_file_that_does_not_exist(tmp_path: Path, command: list[str], named: str) -> None:
    missing = tmp_path / "missing.csv"
    prices = tmp_path / "prices.csv"
    prices.write_text("date,open,high,low,close\n")
    result = cli(tmp_path, *[p.format(missing=missing, prices=prices) for p in command])
    refused(result, tmp_path, named, str(missing))


def test_output_in_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "features.csv"
    refused(
        cli(tmp_path, "forecast", "onchain", "--out", str(out)), tmp_path, "--out", str(out), "does not exist"
    )


@pytest.mark.parametrize("chain_id", ["0", "-1", str(2**53)])
@pytest.mark.parametrize(
    "command",
    [
        ["labels", "add", POOL, "x", "--category", "fund", "--chain-id"],
        ["labels", "remove", POOL, "--chain-id"],
        ["labels", "list", "--chain-id"],
        ["graph", "debtrank", "--chain-id"],
        ["forecast", "onchain", "--out", "x.csv", "--chain-id"],
        ["rpc", "replay", "x.json", "--chain-id"],
        ["index", "--rpc", "http://127.0.0.1:9", "--from", "1", "--chain-id"],
    ],
)
def test_chain_id_out_of_range(tmp_path: Path, command: list[str], chain_id: str) -> None:
    refused(cli(tmp_path, *command, chain_id), tmp_path, "'--chain-id'", chain_id)


def test_labels_file_chain_id_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(f"chain_id,address,label,category\n{2**53},{POOL.lower()},x,fund\n")
    refused(cli(tmp_path, "labels", "import", str(path)), tmp_path, "line 2", "chain_id", str(2**53))


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--start", "2021-13-01"), ("--end", "2021-02-30"), ("--start", "01/02/2021"), ("--end", "20210105")],
)
@pytest.mark.parametrize("command", ["backtest", "ablation", "bench"])
def test_invalid_date(tmp_path: Path, command: str, flag: str, value: str) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("date,open,high,low,close\n")
    args = ["forecast", command, "--prices", str(prices), flag, value]
    if command == "ablation":
        args += ["--onchain", str(prices)]
    refused(cli(tmp_path, *args), tmp_path, f"{flag} {value!r}", "YYYY-MM-DD")


def test_end_before_start(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("date,open,high,low,close\n")
    args = ["forecast", "backtest", "--prices", str(prices), "--start", "2022-01-02", "--end", "2022-01-01"]
    refused(cli(tmp_path, *args), tmp_path, "--end 2022-01-01", "--start 2022-01-02")


@pytest.mark.parametrize("command", ["validate", "tune"])
def test_invalid_until(tmp_path: Path, command: str) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("date,open,high,low,close\n")
    args = ["forecast", command, "--prices", str(prices), "--until", "2019-02-29"]
    if command == "validate":
        args += ["--prices", str(prices)]
    refused(cli(tmp_path, *args), tmp_path, "--until '2019-02-29'", "YYYY-MM-DD")


# ------------------------------------------------------------------------------------------ duplicates


def test_labels_file_with_one_address_twice(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    rows = [
        f"1,{POOL.lower()},pool,protocol",
        "1,0x" + "12" * 20 + ",desk,fund",
        f"1,{POOL},pool v3,protocol",
    ]
    path.write_text("chain_id,address,label,category\n" + "\n".join(rows) + "\n")
    refused(cli(tmp_path, "labels", "import", str(path)), tmp_path, "line 4", "line 2", POOL.lower())


def test_same_market_shocked_twice(tmp_path: Path) -> None:
    args = ["graph", "debtrank", "--chain-id", "1", "--shock", "aave=0.1", "--shock", "AAVE=0.5"]
    refused(cli(tmp_path, *args), tmp_path, "--shock", "'aave'", "twice")


def test_price_file_with_one_day_twice(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    days = [f"2021-01-{d:02d},100,110,90,{100 + d}" for d in range(1, 29)]
    days.insert(10, "2021-01-05,100,110,90,150")
    prices.write_text("date,open,high,low,close\n" + "\n".join(days) + "\n")
    out = tmp_path / "forecasts.csv"
    args = ["forecast", "backtest", "--prices", str(prices), "--save-forecasts", str(out)]
    refused(cli(tmp_path, *args), tmp_path, "2021-01-05", "lines 6 and 12", "close 105 and 150")
    assert not out.exists()


# ----------------------------------------------------------------------------------------- with a database


def _rows(db_url: str, query: str) -> int:
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_index_refuses_an_entry_on_an_undefined_chain_and_writes_nothing(tmp_path: Path, db_url: str) -> None:
    config = f'[[contracts]]\nname = "pool"\naddress = "{POOL}"\nabi = "aave_v3_pool"\n'
    before = _rows(db_url, "SELECT count(*) FROM address_labels")
    result = cli(tmp_path, "index", "--no-progress", config=config, CHAINRISK_DATABASE_URL=db_url)
    refused(result, tmp_path, "contracts.0.chain = 'mainnet'", "no [[chains]] configured")
    assert _rows(db_url, "SELECT count(*) FROM cursors") == 0
    assert _rows(db_url, "SELECT count(*) FROM logs") == 0
    assert _rows(db_url, "SELECT count(*) FROM address_labels") == before


def test_labels_import_with_a_repeat_writes_nothing(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("chain_id,address,label,category\n" + "\n".join([f"1,{POOL},a,fund"] * 2) + "\n")
    result = cli(tmp_path, "labels", "import", str(path), CHAINRISK_DATABASE_URL=db_url)
    refused(result, tmp_path, "line 3", "line 2")
    assert _rows(db_url, "SELECT count(*) FROM address_labels WHERE source = 'user'") == 0


# ------------------------------------------------------------------------------------------ as a process


def test_a_real_process_prints_one_line_without_traceback(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "x.toml"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "chainrisk", "labels", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: CHAINRISK_CONFIG={tmp_path / 'x.toml'}: no such file; expected a TOML file (see"
        " chainrisk.example.toml), or unset CHAINRISK_CONFIG to read ./chainrisk.toml when present"
    ]
    assert not (tmp_path / "home").exists()


def test_finality_depth_help_says_which_wins() -> None:
    result = CliRunner().invoke(app, ["index", "--help"], env={"COLUMNS": "300"})
    text = " ".join(result.stdout.split())
    assert "deeper one wins" in text and "min(finalized, head - N)" in text
    assert "never fewer than N blocks" in text
