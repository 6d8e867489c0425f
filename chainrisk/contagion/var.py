"""Monte Carlo value at risk of bad debt: many shocked scenarios through the cascade, summarised.

    request = var_request(scenarios=1000, seed=7, vols=["ETH=0.06"], method="t", horizon="1d")
    assets, factors = draw_factors(inputs, request)
    document = var_report(inputs, request, scenario_outcomes(inputs, assets, factors))

How a run is driven end to end (engines, Dask, storage) is :mod:`chainrisk.contagion.runs`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from chainrisk.contagion.inputs import Inputs
from chainrisk.contagion.report import simulate, usd
from chainrisk.inputs import OptionError
from graph.cascade import CascadeLiquidation

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from chainrisk.contagion.scenarios import ScenarioModel

    FloatArray = NDArray[np.float64]
else:
    FloatArray = Any

MAX_SCENARIOS = 1_000_000
BOOTSTRAP_B = 1_000


@dataclass(frozen=True, slots=True)
class VarRequest:
    """What a Monte Carlo run draws: everything needed, with the inputs' block, to repeat it exactly.
    ``model`` is the scenarios' inputs once read (chainrisk.contagion.scenarios), None until then."""

    scenarios: int
    seed: int
    vols: tuple[tuple[str, float], ...]  # (symbol as given, daily volatility) from --vol
    corr: float | None  # one correlation for every pair; None: estimated from the price history
    df: float | None  # Student-t degrees of freedom; None: estimated (method t)
    method: str = "t"  # t or fhs
    horizon_days: int = 1
    stress_days: tuple[str, ...] = ()
    history_days: int = 3 * 365
    regimes: bool = True
    model: ScenarioModel | None = None


def var_request(
    scenarios: int,
    seed: int | None,
    vols: Sequence[str],
    corr: float | None = None,
    df: float | None = None,
    *,
    method: str = "t",
    horizon: str = "1d",
    stress_days: Sequence[str] = (),
    history_days: int = 3 * 365,
    regimes: bool = True,
) -> VarRequest:
    """The options checked before the database is opened; a missing seed is drawn and recorded."""
    import secrets

    from chainrisk.contagion.scenarios import check_options

    if not 1 <= scenarios <= MAX_SCENARIOS:
        raise OptionError(f"--scenarios {scenarios}: expected 1 to {MAX_SCENARIOS:,}")
    if df is not None and not (math.isfinite(df) and df > 2):
        raise OptionError(f"--df {df}: expected degrees of freedom above 2 (finite variance), e.g. 4")
    if corr is not None and not (math.isfinite(corr) and 0 <= corr < 1):
        raise OptionError(f"--corr {corr}: expected a correlation in [0, 1), e.g. 0.8")
    if seed is not None and not 0 <= seed < 2**63:
        raise OptionError(f"--seed {seed}: expected 0 to {2**63 - 1}")
    parsed = tuple(_split_vol(v) for v in vols)
    days, stress = check_options(method, horizon, df, history_days, stress_days)
    drawn = secrets.randbits(63) if seed is None else seed
    return VarRequest(scenarios, drawn, parsed, corr, df, method, days, stress, history_days, regimes)


def _split_vol(given: str) -> tuple[str, float]:
    name, sep, value = given.partition("=")
    try:
        vol = float(value)
    except ValueError:
        vol = math.nan
    if not sep or not name.strip() or not (math.isfinite(vol) and 0 < vol < 1):
        raise OptionError(
            f"--vol {given!r}: expected SYMBOL=VOL, a daily volatility in (0, 1), e.g. ETH=0.05"
        )
    return name.strip(), vol


def shocked_assets(inputs: Inputs, request: VarRequest) -> dict[str, float]:
    """{asset: one-day volatility} of every non-stable priced asset, as the scenarios draw it (the day's
    forecast, or --vol). Stablecoins are the dollar the feeds are quoted in and stay fixed, so they are not
    drawn (a --vol for one is an error)."""
    from chainrisk.contagion.scenarios import model_for

    return model_for(inputs, request).daily_vols()


@dataclass(frozen=True, slots=True)
class WalletLiquidation:
    """One liquidation in one scenario, in USD at the oracle prices of its round."""

    round: int
    market: str
    wallet: str
    collateral_asset: str
    debt_asset: str
    debt_repaid_usd: float
    collateral_seized_usd: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """One scenario's cascade in USD: bad debt in total, per market, per (market, asset) and per
    (market, wallet), value liquidated, depth, and every liquidation."""

    bad_debt: float
    by_market: dict[str, float]
    by_asset: dict[tuple[str, str], float]
    by_wallet: dict[tuple[str, str], float]
    liquidated: float
    depth: int
    liquidations: tuple[WalletLiquidation, ...]


def draw_factors(inputs: Inputs, request: VarRequest) -> tuple[list[str], FloatArray]:
    """The scenarios: (assets, factors) with ``factors[i, j]`` the price factor of asset j in scenario i
    (no assets and an (n, 0) array when nothing moves), drawn from the analytics' volatility, regimes and
    price history (chainrisk.contagion.scenarios); the stress days are not among them."""
    from chainrisk.contagion.scenarios import draw, model_for

    model = model_for(inputs, request)
    return list(model.assets), draw(model, request.scenarios, request.seed)


def scenario_outcomes(
    inputs: Inputs,
    assets: Sequence[str],
    factors: FloatArray,
    progress: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """The exact cascade of every scenario (row of ``factors``), in order; ``progress(1)`` after each.
    A factor becomes an exact fraction through its 12-digit rational approximation, so the same float
    always gives the same cascade, on any machine."""
    outcomes = []
    for row in factors:
        shock = {a: Fraction(float(f)).limit_denominator(10**12) for a, f in zip(assets, row, strict=True)}
        outcomes.append(outcome(inputs, shock))
        if progress is not None:
            progress(1)
    return outcomes


@contextmanager
def progress_bar(total: int, show: bool) -> Iterator[Callable[[int], None]]:
    """``advance(n)`` for a bar of ``total`` scenarios on stderr (so stdout holds the results only), or a
    no-op when not ``show``."""
    if not show:
        yield lambda _: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("scenarios", total=total)
        yield lambda n: bar.advance(task, n)


def outcome(inputs: Inputs, shock: Mapping[str, Fraction]) -> Outcome:
    """One scenario's exact cascade, in USD."""
    # run_cascade deep-copies the pools it mutates, so every scenario starts from the same state.
    result = simulate(inputs, shock)
    by_asset = {
        (market, asset): usd(amount * result.oracle_prices[asset] // 10 ** inputs.decimals[asset])
        for (market, asset), amount in result.bad_debt.items()
    }
    by_market: dict[str, float] = {name: 0.0 for name in inputs.market_names}
    for (market, _), value in by_asset.items():
        by_market[market] += value
    liquidations = tuple(_liquidation(x) for r in result.rounds for x in r.liquidations)
    by_wallet: dict[tuple[str, str], float] = {}
    for (market, wallet, asset), amount in result.bad_debt_by_user.items():
        value = usd(amount * result.oracle_prices[asset] // 10 ** inputs.decimals[asset])
        by_wallet[(market, wallet)] = by_wallet.get((market, wallet), 0.0) + value
    liquidated = sum(x.debt_repaid_usd for x in liquidations)
    total = sum(by_market.values())
    return Outcome(total, by_market, by_asset, by_wallet, liquidated, result.depth, liquidations)


def _liquidation(x: CascadeLiquidation) -> WalletLiquidation:
    seized, repaid = usd(x.collateral_seized_usd), usd(x.debt_repaid_usd)
    return WalletLiquidation(x.round, x.market, x.user, x.collateral_asset, x.debt_asset, repaid, seized)


def var_report(inputs: Inputs, request: VarRequest, outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The tails of the outcomes as one JSON-able document, with every input that drew them."""
    import numpy as np

    from chainrisk.contagion.scenarios import model_for
    from graph.tail import depth_histogram, liquidations_at_risk, tail_summary, value_at_risk

    losses = np.array([o.bad_debt for o in outcomes])
    # Its own stream, so the intervals do not depend on how many draws the scenarios took.
    tails = tail_summary(losses, b=BOOTSTRAP_B, rng=np.random.default_rng([request.seed, 1]))
    return {
        "chain_id": inputs.chain_id,
        "block": inputs.block,
        "inputs": {
            "scenarios": request.scenarios,
            "seed": request.seed,
            "bootstrap_resamples": BOOTSTRAP_B,
            "rules": inputs.markets[0].rules,
            "oracle": "feed",
            **model_for(inputs, request).record,
        },
        "bad_debt_usd": {
            name: {"point": t.point, "low": t.low, "high": t.high, "confidence": t.confidence}
            for name, t in tails.items()
        },
        "bad_debt_by_market_usd": [
            {
                "market": name,
                "market_label": inputs.labels.get(name),
                "VaR99": value_at_risk([o.by_market.get(name, 0.0) for o in outcomes], 0.99),
                "max": max(o.by_market.get(name, 0.0) for o in outcomes),
            }
            for name in inputs.market_names
        ],
        "scenarios_with_bad_debt": int((losses > 0).sum()),
        "max_bad_debt_usd": float(losses.max()),
        "liquidations_at_risk_usd": liquidations_at_risk([o.liquidated for o in outcomes], 0.95),
        "depth_histogram": depth_histogram(np.array([o.depth for o in outcomes], dtype=np.int64)).tolist(),
    }
