"""`chainrisk bench cascade`: the vectorised cascade on a synthetic book over the devnet's markets and
pools, many scenarios end to end, with the exact per-scenario loop measured in the same run.

The book is built in memory (no anvil, no database): the devnet's five assets at their deploy prices, its
two markets (``aave``, ``spark``) with their reserve parameters, eMode category and 10 % protocol fee, and
its four Uniswap v3 pools with the same full-range liquidity and six concentrated ranges each, drawn as
``devnet.uniswap`` draws them. Oracles: the stablecoins fixed at $1, WETH and WBTC as feeds on their USDC
pools, wstETH on its WETH pool (50 bps, 3,600 s), as ``contagion`` builds them for the devnet.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from chainrisk.bench import machine
from devnet.aave import ASSETS, EMODE_ETH, MARKETS, MarketSpec
from devnet.uniswap import PAIRS, RANGE_HALF_WIDTH, RANGE_LIQUIDITY, RANGE_OFFSET, TICK_SPACING
from graph.cascade import LendingMarket, OracleModel, PoolKey, run_cascade
from graph.fastcascade import FastCascade, FastOutcomes, replay_worst
from graph.liquidation import ReserveTerms
from graph.univ3 import MAX_TICK, MIN_TICK, tick_at_sqrt_ratio
from graph.univ3_pool import Pool
from indexer.protocols.aave_math import RAY, EModeCategory, UserReserve

TARGET_SECONDS = 300.0  # 100,000 positions × 10,000 scenarios on two cores
SHOCKED = ("WETH", "WBTC", "wstETH")
VOLS = (0.05, 0.05, 0.05)  # one-day volatilities: the default of `contagion var`
CORRELATION, DF = 0.8, 4.0
DEVIATION_BPS, HEARTBEAT_S = 50, 3_600
NOW = 1_000
# Collateral choice per position line and debt choice per account (devnet symbols).
COLLATERAL_MIX = {"WETH": 0.4, "WBTC": 0.2, "wstETH": 0.2, "USDC": 0.1, "DAI": 0.1}
DEBT_MIX = {"USDC": 0.5, "DAI": 0.2, "WETH": 0.3}
EMODE_SHARE = 0.3
# A collateral line's median value: 100,000 lines hold about $60M, a few times the pools' depth, so that
# a bad day moves the pools and the feeds without emptying them.
COLLATERAL_MEDIAN_USD = 400.0  # of accounts with only ETH-correlated collateral and WETH debt


def address(symbol: str) -> str:
    """A stable synthetic token address per symbol."""
    return "0x" + hashlib.sha256(symbol.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class DevnetBook:
    """What both cascades run on, and the symbols of the assets."""

    markets: tuple[LendingMarket, ...]
    pools: dict[PoolKey, Pool]
    oracles: dict[str, OracleModel]
    symbols: dict[str, str]
    positions: int


def _spec(symbol: str) -> Any:
    return next(a for a in ASSETS if a.symbol == symbol)


def devnet_pools(seed: int = 0) -> dict[PoolKey, Pool]:
    """The devnet's pools at its deploy prices: full range plus concentrated ranges as it draws them."""
    draw = random.Random(seed)
    pools: dict[PoolKey, Pool] = {}
    for pair in PAIRS:
        a, b = _spec(pair.base), _spec(pair.quote)
        first, second = (a, b) if address(a.symbol) < address(b.symbol) else (b, a)
        sqrt_price = math.isqrt(
            first.price * 10**second.decimals * 2**192 // (second.price * 10**first.decimals)
        )
        spacing = TICK_SPACING[pair.fee]
        pool = Pool(pair.fee, spacing, sqrt_price, tick_at_sqrt_ratio(sqrt_price))
        reserve0 = int(pair.liquidity_usd * 10**8 * 10**first.decimals // first.price)
        full = reserve0 * sqrt_price >> 96  # full range: liquidity = token0 reserve × sqrt(price)
        pool.update_position(-(-MIN_TICK // spacing) * spacing, (MAX_TICK // spacing) * spacing, full)
        for _ in range(pair.ranges):
            centre = (pool.tick // spacing + draw.randint(*RANGE_OFFSET)) * spacing
            half = draw.randint(*RANGE_HALF_WIDTH) * spacing
            pool.update_position(centre - half, centre + half, int(full * draw.uniform(*RANGE_LIQUIDITY)))
        pools[(address(first.symbol), address(second.symbol))] = pool
    return pools


def devnet_oracles() -> dict[str, OracleModel]:
    """Stablecoins fixed; WETH and WBTC follow their USDC pools, wstETH its WETH pool."""
    quotes = {"WETH": "USDC", "WBTC": "USDC", "wstETH": "WETH"}
    found = {}
    for spec in ASSETS:
        quote = quotes.get(spec.symbol)
        found[address(spec.symbol)] = (
            OracleModel(spec.price, "feed", address(quote), DEVIATION_BPS, HEARTBEAT_S)
            if quote
            else OracleModel(spec.price)
        )
    return found


def _reserve(symbol: str, market: MarketSpec, supplied: int, borrowed: int) -> UserReserve:
    spec, params = _spec(symbol), market.reserves[symbol]
    in_emode = any(symbol in e.assets for e in market.emodes)
    return UserReserve(
        asset=address(symbol),
        decimals=spec.decimals,
        price=spec.price,
        scaled_atoken_balance=supplied,
        scaled_vdebt_balance=borrowed,
        liquidity_index=RAY,
        variable_borrow_index=RAY,
        liquidity_rate=0,
        variable_borrow_rate=0,
        last_update_timestamp=NOW,
        now_timestamp=NOW,
        ltv_bps=params.ltv,
        liquidation_threshold_bps=params.liquidation_threshold,
        usage_as_collateral_enabled=supplied > 0,
        emode_category=EMODE_ETH if in_emode else 0,
    )


def _draw(rng: np.random.Generator, mix: dict[str, float], size: int) -> list[str]:
    names = list(mix)
    weights = np.array([mix[n] for n in names])
    return [names[i] for i in rng.choice(len(names), size=size, p=weights / weights.sum())]


def _account(
    rng: np.random.Generator, market: MarketSpec, lines: int
) -> tuple[tuple[UserReserve, ...], bool]:
    """One account of ``lines`` position lines: collateral lines and one debt line, HF mostly 1.05–3."""
    collateral = sorted(set(_draw(rng, COLLATERAL_MIX, max(1, lines - 1))))
    debt = _draw(rng, {k: v for k, v in DEBT_MIX.items() if k not in collateral}, 1)[0]
    emode_spec = market.emodes[0]
    emode = set(collateral) <= set(emode_spec.assets) and debt == "WETH" and rng.random() < EMODE_SHARE
    usd = rng.lognormal(math.log(COLLATERAL_MEDIAN_USD), 1.2, len(collateral))
    weighted = 0.0
    amounts = {}
    for symbol, value in zip(collateral, usd, strict=True):
        spec = _spec(symbol)
        lt = emode_spec.liquidation_threshold if emode else market.reserves[symbol].liquidation_threshold
        weighted += value * lt / 10_000
        amounts[symbol] = int(value * 10**8 / spec.price * 10**spec.decimals)
    health = 1.0 + float(rng.lognormal(-1.0, 0.8))
    spec = _spec(debt)
    borrowed = int(weighted / health * 10**8 / spec.price * 10**spec.decimals)
    reserves = [_reserve(s, market, amounts[s], 0) for s in collateral]
    reserves.append(_reserve(debt, market, 0, max(1, borrowed)))
    return tuple(reserves), emode


def devnet_book(positions: int, seed: int = 0) -> DevnetBook:
    """``positions`` position lines (collateral or debt per account and asset) over both devnet markets."""
    rng = np.random.default_rng(seed)
    books: dict[str, dict[str, tuple[UserReserve, ...]]] = {m.name: {} for m in MARKETS}
    emodes: dict[str, dict[str, tuple[EModeCategory, int]]] = {m.name: {} for m in MARKETS}
    made, index = 0, 0
    while made < positions:
        market = MARKETS[index % len(MARKETS)]
        lines = min(int(rng.integers(2, 4)), positions - made)
        reserves, emode = _account(rng, market, max(2, lines))
        user = f"0x{index:040x}"
        books[market.name][user] = reserves
        if emode:
            spec = market.emodes[0]
            category = EModeCategory(spec.category_id, spec.ltv, spec.liquidation_threshold)
            emodes[market.name][user] = (category, spec.liquidation_bonus)
        made += len(reserves)
        index += 1
    markets = tuple(
        LendingMarket(
            m.name,
            "3.0",
            books[m.name],
            {
                address(s): ReserveTerms(p.liquidation_bonus, p.liquidation_protocol_fee)
                for s, p in m.reserves.items()
            },
            emodes[m.name],
        )
        for m in MARKETS
    )
    return DevnetBook(
        markets, devnet_pools(seed), devnet_oracles(), {address(a.symbol): a.symbol for a in ASSETS}, made
    )


def scenarios(n: int, seed: int) -> tuple[list[str], np.ndarray[Any, np.dtype[np.float64]]]:
    """Student-t one-day price factors of the non-stable assets (as ``contagion var`` draws them)."""
    from graph.tail import student_t_scenarios

    k = len(SHOCKED)
    corr = np.full((k, k), CORRELATION) + np.eye(k) * (1 - CORRELATION)
    drawn = student_t_scenarios(corr, list(VOLS), df=DF, n=n, rng=np.random.default_rng([seed, 2]))
    return [address(s) for s in SHOCKED], np.asarray(drawn.factors, dtype=np.float64)


# ------------------------------------------------------------------------------------------- exact


@dataclass(frozen=True)
class ExactFigures:
    bad_debt_usd: float
    liquidated_usd: float
    depth: int


def exact_figures(book: DevnetBook, assets: list[str], row: np.ndarray[Any, Any]) -> ExactFigures:
    """One scenario through :func:`graph.cascade.run_cascade`, summed as the fast path reports it."""
    shock = {a: Fraction(float(f)).limit_denominator(10**12) for a, f in zip(assets, row, strict=True)}
    result = run_cascade(book.markets, book.pools, book.oracles, shock)
    decimals = {r.asset: r.decimals for m in book.markets for rs in m.positions.values() for r in rs}
    bad = sum(
        amount * result.oracle_prices[asset] / 10 ** decimals[asset] / 1e8
        for (_, asset), amount in result.bad_debt.items()
    )
    liquidated = sum(x.debt_repaid_usd for r in result.rounds for x in r.liquidations) / 1e8
    return ExactFigures(float(bad), float(liquidated), result.depth)


# ------------------------------------------------------------------------------------------- bench


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = run()
    return time.perf_counter() - start, value


def _relative(fast: float, exact: float) -> float | None:
    return None if exact == 0 and fast == 0 else abs(fast - exact) / max(abs(exact), 1.0)


def _fast_path(book: DevnetBook, assets: list[str], factors: np.ndarray[Any, Any]) -> dict[str, Any]:
    """The LM fit and the fast cascade over every scenario, each timed."""
    fit_s, fast = _timed(lambda: FastCascade.build(book.markets, book.pools, book.oracles))
    run_s, outcomes = _timed(lambda: fast.run(assets, factors))
    return {"fit_seconds": fit_s, "fast_seconds": run_s, "fast": fast, "outcomes": outcomes}


def _comparison(outcomes: FastOutcomes, picked: np.ndarray[Any, Any], exact: list[ExactFigures]) -> list[Any]:
    rows = []
    for i, figures in zip(picked, exact, strict=True):
        fast_bad, fast_liq = float(outcomes.bad_debt_usd[i]), float(outcomes.liquidated_usd[i])
        rows.append(
            {
                "scenario": int(i),
                "fast_bad_debt_usd": fast_bad,
                "exact_bad_debt_usd": figures.bad_debt_usd,
                "bad_debt_relative_error": _relative(fast_bad, figures.bad_debt_usd),
                "fast_liquidated_usd": fast_liq,
                "exact_liquidated_usd": figures.liquidated_usd,
                "liquidated_relative_error": _relative(fast_liq, figures.liquidated_usd),
                "fast_depth": int(outcomes.depth[i]),
                "exact_depth": figures.depth,
            }
        )
    return rows


def _baseline(book: DevnetBook, assets: list[str], factors: np.ndarray[Any, Any], n: int, full: int) -> Any:
    """The exact per-scenario loop on the first ``n`` scenarios, extrapolated to all of them."""
    rows = factors[:n]
    seconds, _ = _timed(lambda: [exact_figures(book, assets, row) for row in rows])
    return {
        "label": "exact: graph.cascade.run_cascade per scenario (Python ints, exact swaps), measured on the"
        " first scenarios of the same book and extrapolated linearly to all scenarios",
        "measured_scenarios": int(rows.shape[0]),
        "measured_seconds": seconds,
        "extrapolated_seconds": seconds * full / max(1, rows.shape[0]),
        "extrapolated": True,
    }


def benchmark(
    positions: int = 100_000,
    n_scenarios: int = 10_000,
    seed: int = 0,
    repeats: int = 1,
    worst: int = 2,
    baseline_scenarios: int = 5,
    scaling_scenarios: int = 0,
) -> dict[str, Any]:
    """End to end on ``positions`` × ``n_scenarios``: LM fit and fast cascade (median of ``repeats``), then
    the exact replay of the ``worst`` scenarios (once); the exact loop on the first
    ``baseline_scenarios`` scenarios, extrapolated, as the baseline."""
    load = os.getloadavg()[0]
    build_s, book = _timed(lambda: devnet_book(positions, seed))
    assets, factors = scenarios(n_scenarios, seed)
    runs = [_fast_path(book, assets, factors) for _ in range(repeats)]
    fast: FastCascade = runs[-1]["fast"]
    outcomes: FastOutcomes = runs[-1]["outcomes"]
    # The replay is exact and deterministic: timed once, after the repeats of the fast path.
    picked = replay_worst(outcomes, worst)
    replay_s, exact = _timed(lambda: [exact_figures(book, assets, factors[i]) for i in picked])
    fast_s = float(np.median([r["fit_seconds"] + r["fast_seconds"] for r in runs]))
    total = fast_s + replay_s
    per_replay = replay_s / max(1, len(picked))
    baseline = _baseline(book, assets, factors, min(baseline_scenarios, n_scenarios), n_scenarios)
    compared = _comparison(outcomes, picked, exact)
    errors = [r["bad_debt_relative_error"] for r in compared if r["bad_debt_relative_error"] is not None]
    liq_errors = [
        r["liquidated_relative_error"] for r in compared if r["liquidated_relative_error"] is not None
    ]
    return {
        "benchmark": "cascade",
        "positions": book.positions,
        "accounts": len(fast.book.accounts),
        "scenarios": n_scenarios,
        "seed": seed,
        "repeats": repeats,
        "book_seconds": build_s,
        "seconds_end_to_end": total,
        "fast_path_seconds_median": fast_s,
        "fast_path_seconds_all": [r["fit_seconds"] + r["fast_seconds"] for r in runs],
        "fit_seconds_median": float(np.median([r["fit_seconds"] for r in runs])),
        "fast_seconds_median": float(np.median([r["fast_seconds"] for r in runs])),
        "replayed": len(picked),
        "replay_seconds": replay_s,
        "replay_seconds_per_scenario": per_replay,
        "seconds_with_10_replays_extrapolated": fast_s + 10 * per_replay,
        "scenarios_per_s_fast_path": n_scenarios / fast_s,
        "target_seconds": TARGET_SECONDS,
        "meets_target": total <= TARGET_SECONDS,
        "baseline": baseline,
        "speedup_vs_baseline": baseline["extrapolated_seconds"] / fast_s,
        "speedup_end_to_end_vs_baseline": baseline["extrapolated_seconds"] / total,
        "fit": [
            {
                "pool": [book.symbols[key[0]], book.symbols[key[1]]],
                "zero_for_one": r.zero_for_one,
                "max_output_error": r.max_output_error,
                "median_output_error": r.median_output_error,
                "max_price_error": r.max_price_error,
                "median_price_error": r.median_price_error,
            }
            for key, curves in zip(fast.pool_keys, fast.curves, strict=True)
            for r in curves.reports
        ],
        "fast_vs_exact": {
            "replayed_scenarios": compared,
            "max_bad_debt_relative_error": max(errors, default=0.0),
            "max_liquidated_relative_error": max(liq_errors, default=0.0),
        },
        "summary": {
            "scenarios_with_bad_debt": int((outcomes.bad_debt_usd > 0).sum()),
            "max_bad_debt_usd": float(outcomes.bad_debt_usd.max(initial=0.0)),
            "mean_liquidated_usd": float(outcomes.liquidated_usd.mean()) if n_scenarios else 0.0,
            "max_depth": int(outcomes.depth.max(initial=0)),
            "liquidations": int(outcomes.liquidation_round.size),
        },
        "scaling": scaling(book, assets, factors[:scaling_scenarios]) if scaling_scenarios else None,
        "scaling_note": "the exact engine's scenario batches in process and on a LocalCluster of two worker"
        " processes (the fast path runs in one process)",
        "machine": {**machine(), "load_average_1m_at_start": load},
    }


def scaling(book: DevnetBook, assets: list[str], factors: np.ndarray[Any, Any]) -> dict[str, Any]:
    """The exact cascade of ``factors``' scenarios in process, then on a real LocalCluster of two worker
    processes (one batch per scenario, inputs broadcast once; the cluster's start is not timed), and
    whether both gave the same outcomes."""
    import logging

    import distributed

    from chainrisk.contagion.distributed import scenario_outcomes_on
    from chainrisk.contagion.inputs import Inputs

    decimals = {r.asset: r.decimals for m in book.markets for rs in m.positions.values() for r in rs}
    inputs = Inputs(0, 0, book.markets, {}, book.pools, {}, book.oracles, book.symbols, decimals)
    local_s, local = _timed(lambda: scenario_outcomes_on(inputs, assets, factors, address=None))
    dask: Any = distributed  # untyped
    with dask.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,  # its INFO lines would bury the JSON
    ) as cluster:
        address = cluster.scheduler_address
        cluster_s, remote = _timed(
            lambda: scenario_outcomes_on(inputs, assets, factors, address=address, batch_size=1)
        )
    return {
        "scenarios": len(factors),
        "in_process_seconds": local_s,
        "local_cluster_2_workers_seconds": cluster_s,
        "speedup": local_s / cluster_s if cluster_s else None,
        "same_outcomes": local == remote,
    }
