"""`[[alerts]]` rules without a chain: their validation (one error line naming the rule, the key and the
known choices), the registry, the cooldown period, and the distance to liquidation against the
health-factor engine."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from chainrisk.alerts.rules import kinds, period_of
from chainrisk.alerts.rules.health_factor import Reserve, drop_to_liquidation
from chainrisk.alerts.rules_config import AlertRuleConfig
from chainrisk.cli import app

UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:9/none"
CHANNEL = '[[channels]]\nname = "risk"\nkind = "discord"\nurl_env = "RISK_DISCORD_URL"\n'
CHAIN = '[[chains]]\nname = "main"\nchain_id = 1\nrpc_urls = ["http://127.0.0.1:9"]\n'
BUILT_IN = {
    "health_factor",
    "liquidations",
    "bad_debt",
    "collateral_at_risk",
    "contagion_var",
    "whale_transfer",
    "exchange_netflow",
    "regime",
    "volatility",
    "operations",
}


def _serve(tmp_path: Path, config: str) -> Result:
    path = tmp_path / "chainrisk.toml"
    path.write_text(config)
    env = {
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(path),
        "CHAINRISK_DATABASE_URL": UNREACHABLE_DB,
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    return CliRunner().invoke(app, ["serve"], env=env)


def _refused(result: Result, *named: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in named:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def test_every_kind_is_registered_with_its_parameter_model() -> None:
    assert set(kinds()) >= BUILT_IN
    rule = AlertRuleConfig.model_validate(
        {"name": "hf", "kind": "health_factor", "below": 1.2, "cooldown": "2h"}
    )
    assert rule.params == {"below": 1.2} and rule.cooldown_s == 7_200
    assert rule.typed_params.model_dump() == {"below": 1.2, "min_debt_usd": 0.0, "max_accounts": 50}


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ('kind = "helth_factor"', ["'r1'", "unknown kind 'helth_factor'", "health_factor", "operations"]),
        ('kind = "health_factor"\nbelow = 1.1\nbelo = 2', ["'r1'", "unknown key 'belo'", "'below'"]),
        ('kind = "health_factor"', ["'r1'", "below: missing", "'health_factor'"]),
        ('kind = "health_factor"\nbelow = "low"', ["'r1'", "below = 'low'", "valid number"]),
        ('kind = "liquidations"\nwindow = "soon"', ["'r1'", "window = 'soon'", "'15m'"]),
        ('kind = "regime"\nabove = 1.5', ["'r1'", "above = 1.5", "less than 1"]),
        ('kind = "operations"', ["'r1'", "max_lag_blocks, stalled_after, failures"]),
        ('kind = "collateral_at_risk"\nmove = -0.2\nmin_usd = 1', ["'r1'", "needs assets"]),
        ('kind = "volatility"\nabove = 1\ncooldown = "1y"', ["alerts.0.cooldown", "'1h'"]),
        (
            'kind = "volatility"\nabove = 1\nwallets = ["0x12"]',
            ["alerts.0.wallets", "'0x12' is not an address"],
        ),
        (
            'kind = "volatility"\nabove = 1\nchannels = ["risk", "pager"]',
            ["'r1'", "'pager'", "channels: risk"],
        ),
        ('kind = "volatility"\nabove = 1\nchain = "side"', ["'r1'", "unknown chain 'side'", "main"]),
    ],
)
def test_a_bad_rule_is_one_error_line_naming_it(tmp_path: Path, rule: str, named: list[str]) -> None:
    channels = "" if "channels" in rule else 'channels = ["risk"]\n'
    config = f'{CHAIN}\n{CHANNEL}\n[[alerts]]\nname = "r1"\n{channels}{rule}\n'
    _refused(_serve(tmp_path, config), *named)


def test_two_rules_with_one_name_are_refused(tmp_path: Path) -> None:
    rule = '[[alerts]]\nname = "r1"\nkind = "volatility"\nabove = 1\n'
    _refused(_serve(tmp_path, rule + rule), "'r1'", "two rules")


def test_two_channels_with_one_name_are_refused(tmp_path: Path) -> None:
    _refused(_serve(tmp_path, f"{CHANNEL}\n{CHANNEL}\n"), "[[channels]]", "two channels have this name")


def test_a_rule_naming_a_channel_when_none_is_configured(tmp_path: Path) -> None:
    config = '[[alerts]]\nname = "r1"\nkind = "volatility"\nabove = 1\nchannels = ["risk"]\n'
    _refused(_serve(tmp_path, config), "'r1'", "unknown channel 'risk'", "add a [[channels]] entry")


def test_a_chain_by_name_or_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chainrisk.settings import Settings

    rule = '[[alerts]]\nname = "{name}"\nkind = "volatility"\nabove = 1\nchain = {chain}\n'
    path = tmp_path / "chainrisk.toml"
    path.write_text(CHAIN + rule.format(name="by-name", chain='"main"') + rule.format(name="by-id", chain=7))
    monkeypatch.setenv("CHAINRISK_CONFIG", str(path))
    assert [r.chain_id for r in Settings().alerts] == [1, 7]


def test_the_period_is_the_cooldown_window() -> None:
    rule = AlertRuleConfig.model_validate({"name": "v", "kind": "volatility", "above": 1, "cooldown": "15m"})
    at = datetime(2026, 11, 30, 14, 29, 59, tzinfo=UTC)
    assert period_of(rule, at) == "2026-11-30T14:15:00Z/15m"
    assert period_of(rule, at.replace(minute=15, second=0)) == period_of(rule, at)
    assert period_of(rule, at.replace(minute=30, second=0)) == "2026-11-30T14:30:00Z/15m"


def _hf(reserves: list[Reserve], falling: set[str], drop: float) -> float:
    """The health factor after `falling` assets fall by `drop`, by graph.hf_engine."""
    from graph.hf_engine import Positions, user_health

    assets = sorted({r.asset for r in reserves})
    positions = Positions(
        user=np.zeros(len(reserves), dtype=np.int64),
        asset=np.array([assets.index(r.asset) for r in reserves], dtype=np.int64),
        collateral=np.array([r.collateral_usd for r in reserves]),
        debt=np.array([r.debt_usd for r in reserves]),
        liquidation_threshold_bps=np.array([r.liquidation_threshold_bps for r in reserves], dtype=np.int64),
        collateral_enabled=np.array([r.collateral_enabled for r in reserves]),
        n_users=1,
    )
    prices = [1.0 - drop if a in falling else 1.0 for a in assets]
    return float(user_health(positions, prices).health_factor[0])


def test_the_distance_to_liquidation_brings_the_health_factor_to_one() -> None:
    # WETH and WBTC collateral, USDC and some WETH debt: the WETH debt falls with WETH.
    reserves = [
        Reserve("weth", "WETH", 10_000, 2_000, True, 8_250, 2_000),
        Reserve("wbtc", "WBTC", 5_000, 0, True, 7_500, 60_000),
        Reserve("usdc", "USDC", 0, 7_000, False, 0, 1),
    ]
    for falling in ({"weth"}, {"wbtc"}, {"weth", "wbtc"}):
        drop = drop_to_liquidation(reserves, falling)
        assert drop is not None and 0 < drop < 1
        assert _hf(reserves, falling, drop) == pytest.approx(1.0, abs=1e-12)
        assert _hf(reserves, falling, drop - 1e-6) > 1 > _hf(reserves, falling, drop + 1e-6)
    # WBTC alone can fall to zero without liquidation when WETH covers the debt.
    safe = [Reserve("weth", "WETH", 20_000, 0, True, 8_250, 2_000), *reserves[1:]]
    assert drop_to_liquidation(safe, {"wbtc"}) is None
    assert drop_to_liquidation(safe, {"weth", "wbtc"}) is not None
    # Already under 1: no fall needed.
    under = [
        Reserve("weth", "WETH", 1_000, 0, True, 8_000, 2_000),
        Reserve("usdc", "USDC", 0, 900, False, 0, 1),
    ]
    assert drop_to_liquidation(under, {"weth"}) == 0.0


def test_the_configuration_example_in_the_docs_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chainrisk.settings import Settings

    text = (Path(__file__).parents[2] / "docs" / "ALERTS.md").read_text()
    rules_part = text[text.index("\n## Rules") :]
    example = rules_part[rules_part.index("```toml\n") + len("```toml\n") :]
    example = example[: example.index("```")]
    path = tmp_path / "chainrisk.toml"
    path.write_text(example)
    monkeypatch.setenv("CHAINRISK_CONFIG", str(path))
    settings = Settings()
    assert {r.kind for r in settings.alerts} >= BUILT_IN
    assert settings.serve.jobs.alerts.interval == "30s"
