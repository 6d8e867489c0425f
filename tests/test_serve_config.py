"""`chainrisk serve` refuses a wrong configuration in one line before touching anything; schedules name
their periods the same way in every process."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from chainrisk.cli import app
from chainrisk.serve.config import ServeJobs
from chainrisk.serve.jobs import JOBS
from chainrisk.serve.schedule import Schedule
from tests.conftest import data_file

UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:9/none"
CHAIN = '[[chains]]\nname = "main"\nchain_id = 1\nrpc_urls = ["http://127.0.0.1:9"]\n'
CONTRACT = (
    '[[contracts]]\nname = "pool"\nchain = "main"\naddress = "0x87870bca3f3fd6335c3f4ce8392d69350b4fa4e2"\n'
)
TOKEN = (
    '[[tokens]]\nchain = "main"\naddress = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"\nsymbol = "WETH"\n'
)
TOKEN += "decimals = 18\n"
ETH = data_file("prices/binance-ethusdt-daily.csv")


def serve(tmp_path: Path, config: str, **env: str) -> Result:
    path = tmp_path / "chainrisk.toml"
    path.write_text(config)
    base = {
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(path),
        "CHAINRISK_DATABASE_URL": UNREACHABLE_DB,
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    return CliRunner().invoke(app, ["serve"], env={**base, **env})


def refused(result: Result, tmp_path: Path, *named: str) -> str:
    """Exit 2, one `error:` line naming every part, nothing under HOME (and the database, unreachable,
    was never asked: asking it would have failed differently)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in named:
        assert part in lines[0], (part, lines[0])
    assert not (tmp_path / "home").exists()
    return lines[0]


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ('[serve.jobs.hearbeat]\ninterval = "5s"\n', ("serve.jobs.hearbeat", "did you mean 'heartbeat'?")),
        (
            '[serve.jobs.heartbeat]\nintervall = "5s"\n',
            ("unknown key 'intervall'", "did you mean 'interval'?"),
        ),
        ("[serve]\njobz = 1\n", ("serve.jobz", "did you mean 'jobs'?")),
        ('[serve.jobs.heartbeat]\ninterval = "5 minutes"\n', ("serve.jobs.heartbeat.interval", "'15m'")),
        ('[serve.jobs.heartbeat]\ninterval = "0s"\n', ("serve.jobs.heartbeat.interval", "from 1s")),
        ("[serve.jobs.heartbeat]\ninterval = true\n", ("serve.jobs.heartbeat.interval",)),
        ('[serve.jobs.forecast]\ncron = "61 * * * *"\n', ("serve.jobs.forecast.cron", "not a crontab line")),
        ('[serve.jobs.forecast]\ncron = "0 0 30 2 *"\n', ("serve.jobs.forecast.cron", "never fires")),
        ('[serve.jobs.forecast]\ncron = "0 0 * *"\n', ("serve.jobs.forecast.cron", "five fields")),
        ('[serve.jobs.forecast]\ncron = "0 * * * *"\ninterval = "1h"\n', ("serve.jobs.forecast", "not both")),
        ("[serve]\nstandby_poll_s = 0\n", ("serve.standby_poll_s", "greater than 0")),
        ("serve_port = 70000\n", ("serve_port = 70000", "less than or equal to 65535")),
        ("serve_prot = 9108\n", ("serve_prot", "did you mean 'serve_port'?")),
    ],
)
def test_a_wrong_schedule_is_one_line(tmp_path: Path, config: str, named: tuple[str, ...]) -> None:
    refused(serve(tmp_path, config), tmp_path, *named)


@pytest.mark.parametrize(
    ("assets", "named"),
    [
        ('asset = "ETH"\n', ("serve.assets.0", "give prices (a price file), or chain and token")),
        (
            f'asset = "ETH"\nprices = "{ETH}"\nchain = "main"\ntoken = "WETH"\n',
            ("serve.assets.0", "not both"),
        ),
        ('asset = "ETH/USD"\nprices = "x.csv"\n', ("serve.assets.0.asset = 'ETH/USD'", "letters, digits")),
        ('asset = "ETH"\nprises = "x.csv"\n', ("serve.assets.0.prises", "did you mean 'prices'?")),
        (
            'asset = "ETH"\nchain = "other"\ntoken = "WETH"\n',
            ("serve.assets.0.chain 'other'", "configured: main"),
        ),
        ('asset = "ETH"\nchain = "main"\ntoken = "WBTC"\n', ("serve.assets.0.token 'WBTC'", "[[tokens]]")),
        ('asset = "ETH"\nprices = "missing.csv"\n', ("serve.assets.0.prices 'missing.csv'", "not found")),
        (
            f'asset = "ETH"\nprices = "{ETH}"\nmodels = ["garhc-t"]\n',
            ("'garhc-t'", "did you mean 'garch-t'?"),
        ),
        (
            f'asset = "ETH"\nprices = "{ETH}"\nregime_model = "hmm4"\n',
            ("regime_model", "unknown regime model"),
        ),
        (f'asset = "ETH"\nprices = "{ETH}"\ntarget = "close"\n', ("serve.assets.0.target", "'parkinson'")),
    ],
)
def test_a_wrong_asset_is_one_line(tmp_path: Path, assets: str, named: tuple[str, ...]) -> None:
    config = f"{CHAIN}{CONTRACT}{TOKEN}\n[[serve.assets]]\n{assets}"
    refused(serve(tmp_path, config), tmp_path, *named)


def test_an_asset_given_twice(tmp_path: Path) -> None:
    entry = f'[[serve.assets]]\nasset = "ETH"\nprices = "{ETH}"\n'
    refused(serve(tmp_path, entry + entry), tmp_path, "serve.assets.1.asset 'ETH' is given twice")


def test_a_wrong_nested_env_var_is_named(tmp_path: Path) -> None:
    env = {"CHAINRISK_SERVE__JOBS__FORECAST__CRON": "every day"}
    refused(serve(tmp_path, "", **env), tmp_path, "env CHAINRISK_SERVE__JOBS__FORECAST__CRON", "five fields")


def test_a_chain_without_contracts(tmp_path: Path) -> None:
    refused(serve(tmp_path, CHAIN), tmp_path, "chain 'main' has no [[contracts]] entry")


def test_a_status_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(tmp_path, "", CHAINRISK_SERVE_PORT=str(port))
    refused(result, tmp_path, f"CHAINRISK_SERVE_PORT {port}: port {port} is in use")


def test_every_kind_of_job_has_a_schedule_key() -> None:
    assert set(ServeJobs.model_fields) == set(JOBS)


# ------------------------------------------------------------------------------------------- periods


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_interval_periods_start_on_the_epoch_grid() -> None:
    every = Schedule(interval_s=600)
    assert every.period(_at("2026-01-01T10:17:59")) == _at("2026-01-01T10:10:00")
    assert every.period(_at("2026-01-01T10:10:00")) == _at("2026-01-01T10:10:00")
    assert every.previous(_at("2026-01-01T10:10:00")) == _at("2026-01-01T10:00:00")
    assert every.next_after(_at("2026-01-01T10:10:00")) == _at("2026-01-01T10:20:00")
    assert every.length_s(_at("2026-01-01T10:17:59")) == 600
    assert every.describe() == "every 10m"


def test_cron_periods_are_the_latest_fire_time() -> None:
    daily = Schedule(cron="10 0 * * *")
    assert daily.period(_at("2026-03-05T00:09:59")) == _at("2026-03-04T00:10:00")
    assert daily.period(_at("2026-03-05T00:10:00")) == _at("2026-03-05T00:10:00")
    assert daily.previous(_at("2026-03-05T00:10:00")) == _at("2026-03-04T00:10:00")
    assert daily.length_s(_at("2026-03-05T12:00:00")) == 86_400
    yearly = Schedule(cron="0 0 1 1 *")
    assert yearly.period(_at("2026-12-31T23:59:59")) == _at("2026-01-01T00:00:00")
    assert Schedule(cron="*/5 * * * *").period(_at("2026-03-05T07:14:00")) == _at("2026-03-05T07:10:00")
