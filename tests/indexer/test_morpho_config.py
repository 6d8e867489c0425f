"""[[morpho_oracles]] in chainrisk.toml: accepted forms, and one clear line for each mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from chainrisk.settings import SettingsError, load_settings
from indexer.config import IndexConfig

CHAIN = '[[chains]]\nname = "devnet"\nchain_id = 31337\nrpc_urls = ["http://127.0.0.1:8545"]\n'
ORACLE = "0x" + "ab" * 20
FEED = "0x" + "cd" * 20


def _oracle(scale: str, chain: str = "devnet", address: str = ORACLE) -> str:
    return (
        f'\n[[morpho_oracles]]\nchain = "{chain}"\naddress = "{address}"\nbase_feed = "{FEED}"\n'
        f"scale_factor = {scale}\n"
    )


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    config = tmp_path / "chainrisk.toml"
    config.write_text(text)
    monkeypatch.setenv("CHAINRISK_CONFIG", str(config))
    with pytest.raises(SettingsError) as err:
        load_settings()
    return str(err.value)


def test_scale_factor_as_a_decimal_string_or_an_integer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "chainrisk.toml"
    config.write_text(CHAIN + _oracle('"1000000000000000000000000"') + _oracle("1000", address=FEED))
    monkeypatch.setenv("CHAINRISK_CONFIG", str(config))
    oracles = load_settings().morpho_oracles
    assert [(o.address, o.base_feed, o.quote_feed, o.scale_factor) for o in oracles] == [
        (ORACLE, FEED, None, "1000000000000000000000000"),
        (FEED, FEED, None, "1000"),
    ]


@pytest.mark.parametrize("scale", ['"0"', '"1e24"', "-5", '"12x"', "true", f'"{2**256}"'])
def test_a_bad_scale_factor_names_the_field_and_the_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scale: str
) -> None:
    message = _load(tmp_path, monkeypatch, CHAIN + _oracle(scale))
    assert "morpho_oracles.0.scale_factor" in message and "decimal string" in message and "\n" not in message


def test_an_unknown_chain_or_a_repeated_oracle_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = _load(tmp_path, monkeypatch, CHAIN + _oracle('"1"', chain="mainnet"))
    assert "morpho_oracles.0.chain = 'mainnet'" in message
    message = _load(tmp_path, monkeypatch, CHAIN + _oracle('"1"') + _oracle('"2"'))
    assert "morpho_oracles.1.address" in message and "morpho_oracles.0" in message
    with pytest.raises(ValidationError, match="already listed"):
        IndexConfig.model_validate(
            {
                "chains": [{"name": "devnet", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:8545"]}],
                "morpho_oracles": [{"chain": "devnet", "address": ORACLE, "scale_factor": "1"}] * 2,
            }
        )


def test_the_cli_answers_a_bad_oracle_with_exit_2_and_one_line(tmp_path: Path) -> None:
    config = tmp_path / "chainrisk.toml"
    config.write_text(CHAIN + _oracle('"1"', address="0x1234"))
    result = subprocess.run(
        [sys.executable, "-m", "chainrisk", "index", "--no-progress"],
        env={"CHAINRISK_CONFIG": str(config), "CHAINRISK_HOME": str(tmp_path / "home"), "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "morpho_oracles.0.address" in lines[0] and "20-byte hex address" in lines[0]
