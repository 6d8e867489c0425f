"""The schema: migrations equal the declared tables, on every available PostgreSQL server."""

from __future__ import annotations

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from chainrisk.migrate import check
from chainrisk.settings import SettingsError, load_settings


def test_migrations_match_declared_tables(any_db_url: str) -> None:
    check(any_db_url)


def test_uint256_columns_are_numeric_78_0(any_db_url: str) -> None:
    with psycopg.connect(to_libpq_url(any_db_url)) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, numeric_precision, numeric_scale FROM information_schema.columns"
            " WHERE table_name IN ('erc20_transfers', 'aave_v3_borrow') AND data_type = 'numeric'"
            " ORDER BY 1, 2"
        ).fetchall()
    assert ("erc20_transfers", "value", 78, 0) in rows
    assert ("aave_v3_borrow", "amount", 78, 0) in rows
    assert ("aave_v3_borrow", "borrow_rate", 78, 0) in rows


def test_bad_config_value_names_field_and_form(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "chainrisk.toml"
    config.write_text(
        '[[chains]]\nname = "mainnet"\nchain_id = 1\nrpc_urls = ["ftp://x"]\n'
        '[[contracts]]\nname = "pool"\naddress = "0x1234"\n'
    )
    monkeypatch.setenv("CHAINRISK_CONFIG", str(config))
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    # One line: the first error, and how many more there are.
    assert "chains.0.rpc_urls" in message and "http:// or https://" in message
    assert "(and 1 more)" in message and "\n" not in message


def test_env_var_overrides_config(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "chainrisk.toml"
    config.write_text('log_level = "DEBUG"\nmetrics_port = 9100\n')
    monkeypatch.setenv("CHAINRISK_CONFIG", str(config))
    monkeypatch.setenv("CHAINRISK_METRICS_PORT", "9200")
    settings = load_settings()
    assert settings.log_level == "DEBUG"
    assert settings.metrics_port == 9200
