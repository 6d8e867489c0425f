"""One liquidation-cascade scenario on an indexed chain: the markets, pools and oracles at a block, shocked.

    inputs = load_inputs(conn, chain_id=None, block=None, rules="3.0", oracle="feed")
    shock = parse_shocks(["WETH=-30%"], inputs.symbols, list(inputs.oracles))  # {asset: Fraction(7, 10)}
    result = simulate(inputs, shock)

Every indexed Aave v3 pool becomes a :class:`graph.cascade.LendingMarket` rebuilt from its events at the
block; every indexed Uniswap v3 pool is rebuilt from its events at the same block. Oracles start at the
markets' AaveOracle prices. With ``feed`` oracles, prices flow from the dollar outwards along the pools:
an asset priced within 2% of 1 USD stays fixed (the numeraire), an asset with a pool to such an asset
follows that pool as a Chainlink-style feed (50 bps deviation, 3600 s heartbeat), and so on outwards
(wstETH follows its WETH pool once WETH follows USDC). Assets that no pool reaches stay fixed.

The liquidation protocol fee is not among the indexed events, so every reserve's is taken as 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Literal

import psycopg

from chainrisk.inputs import OptionError
from graph.cascade import (
    CascadeResult,
    LendingMarket,
    OracleModel,
    PoolKey,
    market_from_state,
    run_cascade,
)
from graph.liquidation import Rules
from graph.univ3_pool import Pool
from graph.univ3_state import pool_state_at
from indexer.lending.health import indexed_head
from indexer.lending.positions import MarketState, market_state

Conn = psycopg.Connection[tuple[object, ...]]
OracleChoice = Literal["feed", "fixed"]

DEVIATION_BPS = 50
HEARTBEAT_S = 3_600
USD = 10**8  # AaveOracle prices: USD with 8 decimals
# How far from 1 USD an asset may be priced and still count as the dollar the feeds are quoted in.
PEG_TOLERANCE = Fraction(2, 100)


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a scenario runs on: the chain and block, the markets, pools and oracles, the token symbols."""

    chain_id: int
    block: int
    markets: tuple[LendingMarket, ...]
    labels: dict[str, str]  # market (Aave pool address) → its label in the address book, where it has one
    pools: dict[PoolKey, Pool]
    pool_addresses: dict[PoolKey, str]
    oracles: dict[str, OracleModel]
    symbols: dict[str, str]  # token address → symbol


def load_inputs(
    conn: Conn, chain_id: int | None, block: int | None, rules: Rules = "3.0", oracle: OracleChoice = "feed"
) -> Inputs:
    """Markets, pools and oracles of ``chain_id`` (default: the one chain with Aave pools) at ``block``
    (default: the indexed head). Raises :class:`OptionError` for a chain or block with nothing to run."""
    chain = _chain(conn, chain_id)
    head = indexed_head(conn, chain)
    if head is None:
        raise OptionError(f"--chain-id {chain}: nothing indexed on this chain; run `chainrisk index` first")
    if block is not None and block > head:
        raise OptionError(
            f"--block {block}: above the indexed head {head} of chain {chain}; expected <= {head}"
        )
    at = head if block is None else block
    live = _aave_pools(conn, chain, at)
    if not live:
        first = min(_aave_pools(conn, chain, head), key=lambda p: p[1])[1]
        raise OptionError(
            f"--block {at}: no Aave v3 pool indexed on chain {chain} yet; expected {first} or later"
        )
    states = [market_state(conn, chain, pool, at) for pool, _ in live]
    markets = tuple(market_from_state(s.pool, s, rules=rules, protocol_fees={}) for s in states)
    dex, addresses = _dex_pools(conn, chain, at)
    if not dex:
        raise OptionError(
            f"--chain-id {chain}: no Uniswap v3 pool indexed up to block {at}; expected the factory and its"
            ' pools indexed (abi = "uniswap_v3_factory" and "uniswap_v3_pool" in chainrisk.toml)'
        )
    prices = _prices(states)
    held = {r.asset for m in markets for rs in m.positions.values() for r in rs}
    oracles = _oracles(prices, dex, held) if oracle == "feed" else _fixed(prices)
    return Inputs(chain, at, markets, _labels(conn, chain), dex, addresses, oracles, _symbols(conn, chain))


def simulate(inputs: Inputs, shock: Mapping[str, Fraction], max_rounds: int = 20) -> CascadeResult:
    """The cascade the shock sets off (see :mod:`graph.cascade`)."""
    return run_cascade(inputs.markets, inputs.pools, inputs.oracles, shock, max_rounds=max_rounds)


# ------------------------------------------------------------------------------------------- shocks


def split_shock(shock: str) -> tuple[str, Fraction]:
    """``SYMBOL=-30%`` → (symbol, price factor 0.7); checked before the database is opened."""
    name, sep, value = shock.partition("=")
    text = value.strip()
    if not sep or not name.strip() or not text.endswith("%"):
        raise OptionError(f"--shock {shock!r}: expected SYMBOL=PERCENT, e.g. ETH=-30%")
    try:
        percent = Fraction(Decimal(text[:-1]))
    except (InvalidOperation, ValueError, OverflowError):  # also NaN and Infinity
        raise OptionError(f"--shock {shock!r}: {text!r} is not a percentage; expected e.g. -30%") from None
    if percent <= -100:
        raise OptionError(f"--shock {shock!r}: a price move must lie in (-100%, +inf), e.g. -30% or 10%")
    return name.strip(), 1 + percent / 100


def parse_shocks(
    shocks: Sequence[str], symbols: Mapping[str, str], priced: Sequence[str]
) -> dict[str, Fraction]:
    """``SYMBOL=PERCENT`` → {asset address: factor}; SYMBOL is a tracked token's symbol (any case; ETH and
    BTC also name WETH and WBTC), and the asset must be a reserve of an indexed market."""
    by_symbol = {symbol.lower(): token for token, symbol in symbols.items() if token in priced}
    parsed: dict[str, Fraction] = {}
    for shock in shocks:
        name, factor = split_shock(shock)
        token = _token(by_symbol, name)
        if token is None:
            known = ", ".join(sorted(symbols[t] for t in priced if t in symbols)) or "none"
            raise OptionError(f"--shock {shock!r}: unknown symbol {name!r}; expected one of {known}")
        if token in parsed:
            raise OptionError(f"--shock {shock!r}: {symbols[token]} is shocked twice; give each asset once")
        parsed[token] = factor
    return parsed


def _token(by_symbol: Mapping[str, str], name: str) -> str | None:
    return by_symbol.get(name.lower()) or by_symbol.get(f"w{name.lower()}")


# ------------------------------------------------------------------------------------------- loading


def _chain(conn: Conn, chain_id: int | None) -> int:
    rows = conn.execute("SELECT DISTINCT chain_id FROM aave_v3_reserve_data_updated ORDER BY 1").fetchall()
    chains = [int(str(r[0])) for r in rows]
    if chain_id is not None and chain_id not in chains:
        raise OptionError(
            f"--chain-id {chain_id}: no Aave v3 pool indexed on this chain; expected one of"
            f" {', '.join(map(str, chains)) or 'none (index an Aave v3 Pool first)'}"
        )
    if chain_id is None and len(chains) != 1:
        found = ", ".join(map(str, chains)) if chains else "none (index an Aave v3 Pool first)"
        raise OptionError(f"--chain-id: expected one of the chains with indexed Aave v3 pools: {found}")
    return chain_id if chain_id is not None else chains[0]


def _aave_pools(conn: Conn, chain_id: int, block: int) -> list[tuple[str, int]]:
    """Aave pools with reserve updates indexed up to ``block`` and the block of each one's first."""
    rows = conn.execute(
        "SELECT address, min(block_number) FROM aave_v3_reserve_data_updated"
        " WHERE chain_id = %s AND block_number <= %s GROUP BY address ORDER BY 1",
        (chain_id, block),
    ).fetchall()
    return [(str(address), int(str(first))) for address, first in rows]


_DEX_SQL = """
SELECT c.pool, c.token0, c.token1 FROM uniswap_v3_pool_created c
WHERE c.chain_id = %(c)s AND c.block_number <= %(b)s AND EXISTS (
  SELECT 1 FROM uniswap_v3_initialize i
  WHERE i.chain_id = %(c)s AND i.address = c.pool AND i.block_number <= %(b)s)
ORDER BY 1
"""


def _dex_pools(conn: Conn, chain_id: int, block: int) -> tuple[dict[PoolKey, Pool], dict[PoolKey, str]]:
    """Every pool with an indexed Initialize, rebuilt at ``block``; of two pools on one pair the deeper
    one (active liquidity), since the cascade sells into one pool per pair."""
    found: dict[PoolKey, Pool] = {}
    addresses: dict[PoolKey, str] = {}
    for address, token0, token1 in conn.execute(_DEX_SQL, {"c": chain_id, "b": block}).fetchall():
        key = (str(token0).lower(), str(token1).lower())
        pool = pool_state_at(conn, chain_id, str(address), block).pool
        if key not in found or pool.liquidity > found[key].liquidity:
            found[key], addresses[key] = pool, str(address)
    return found, addresses


def _prices(states: Sequence[MarketState]) -> dict[str, int]:
    """Each reserve's AaveOracle price; the first market (by address) that prices it decides."""
    prices: dict[str, int] = {}
    for state in sorted(states, key=lambda s: s.pool):
        for asset in state.reserves:
            price = state.prices.get(asset)
            if price and asset not in prices:
                prices[asset] = price
    return prices


def _symbols(conn: Conn, chain_id: int) -> dict[str, str]:
    rows = conn.execute(
        "SELECT token, symbol FROM tracked_tokens WHERE chain_id = %s", (chain_id,)
    ).fetchall()
    return {str(token).lower(): str(symbol) for token, symbol in rows}


def _labels(conn: Conn, chain_id: int) -> dict[str, str]:
    rows = conn.execute(
        "SELECT l.address, l.label FROM address_labels l WHERE l.chain_id = %s AND l.address IN"
        " (SELECT DISTINCT address FROM aave_v3_reserve_data_updated WHERE chain_id = %s)",
        (chain_id, chain_id),
    ).fetchall()
    return {str(address): str(label) for address, label in rows}


def _fixed(prices: Mapping[str, int]) -> dict[str, OracleModel]:
    return {asset: OracleModel(price) for asset, price in sorted(prices.items())}


def _pegged(price: int) -> bool:
    return abs(Fraction(price, USD) - 1) <= PEG_TOLERANCE


def _oracles(
    prices: Mapping[str, int], dex: Mapping[PoolKey, Pool], held: set[str]
) -> dict[str, OracleModel]:
    """Fixed dollars, then feeds breadth-first along the pools (see the module docstring). A feed needs
    both its assets held in some market: the cascade knows decimals only of what positions hold."""
    oracles = _fixed(prices)
    reached = [asset for asset in sorted(prices) if _pegged(prices[asset])]
    seen = set(reached)
    while reached:
        quote = reached.pop(0)
        for token0, token1 in sorted(dex):
            other = token1 if token0 == quote else token0 if token1 == quote else None
            if other is None or other in seen or other not in prices or {other, quote} - held:
                continue
            oracles[other] = OracleModel(prices[other], "feed", quote, DEVIATION_BPS, HEARTBEAT_S)
            seen.add(other)
            reached.append(other)
    return oracles


# ------------------------------------------------------------------------------------------- report


def report(inputs: Inputs, shock: Mapping[str, Fraction], result: CascadeResult) -> dict[str, object]:
    """The result as one JSON-able document: amounts exact (integers as the chain has them), USD values
    in dollars, assets by address with their symbols, prices as USD (oracles) or sqrtPriceX96 (pools)."""
    name = inputs.symbols.get
    decimals = {r.asset: r.decimals for m in inputs.markets for rs in m.positions.values() for r in rs}
    rounds = [
        {
            "round": r.index,
            "liquidations": [
                {
                    "wallet": x.user,
                    "market": x.market,
                    "market_label": inputs.labels.get(x.market),
                    "collateral_asset": x.collateral_asset,
                    "collateral_symbol": name(x.collateral_asset),
                    "debt_asset": x.debt_asset,
                    "debt_symbol": name(x.debt_asset),
                    "debt_repaid": str(x.debt_repaid),
                    "collateral_seized": str(x.collateral_seized),
                    "debt_repaid_usd": _usd(x.debt_repaid_usd),
                    "collateral_seized_usd": _usd(x.collateral_seized_usd),
                }
                for x in r.liquidations
            ],
        }
        for r in result.rounds
    ]
    return {
        "chain_id": inputs.chain_id,
        "block": inputs.block,
        "shock": {asset: {"symbol": name(asset), "factor": str(f)} for asset, f in sorted(shock.items())},
        "depth": result.depth,
        "rounds": rounds,
        "bad_debt": [
            {
                "market": m,
                "market_label": inputs.labels.get(m),
                "asset": a,
                "symbol": name(a),
                "amount": str(v),
                "usd": _usd(v * result.oracle_prices[a] // 10 ** decimals[a]),
            }
            for (m, a), v in sorted(result.bad_debt.items())
        ],
        "oracle_prices": {a: {"symbol": name(a), "usd": _usd(p)} for a, p in result.oracle_prices.items()},
        "pool_prices": [
            {
                "pool": inputs.pool_addresses.get(k),
                "token0": k[0],
                "token1": k[1],
                "symbols": [name(k[0]) or k[0], name(k[1]) or k[1]],
                "sqrt_price_x96": str(v),
                "price": _pool_price(v, decimals.get(k[0]), decimals.get(k[1])),
            }
            for k, v in sorted(result.pool_prices.items())
        ],
    }


def _usd(base: int) -> float:
    return base / USD


def _pool_price(sqrt_price_x96: int, decimals0: int | None, decimals1: int | None) -> float | None:
    """Whole token1 per whole token0 (None when a token's decimals are unknown: no market holds it)."""
    if decimals0 is None or decimals1 is None:
        return None
    return float(Fraction(sqrt_price_x96**2 * 10**decimals0, (1 << 192) * 10**decimals1))


# ------------------------------------------------------------------------------------------- tail risk

MAX_SCENARIOS = 1_000_000
DEFAULT_VOL = 0.05  # one-day volatility of log returns for a non-stable asset without --vol
BOOTSTRAP_B = 1_000


@dataclass(frozen=True, slots=True)
class VarRequest:
    """What a Monte Carlo run draws: everything needed, with the inputs' block, to repeat it exactly."""

    scenarios: int
    seed: int
    vols: tuple[tuple[str, float], ...]  # (symbol as given, daily volatility) from --vol
    corr: float
    df: float


def var_request(scenarios: int, seed: int | None, vols: Sequence[str], corr: float, df: float) -> VarRequest:
    """The options checked before the database is opened; a missing seed is drawn and recorded."""
    import secrets

    if not 1 <= scenarios <= MAX_SCENARIOS:
        raise OptionError(f"--scenarios {scenarios}: expected 1 to {MAX_SCENARIOS:,}")
    if not (math.isfinite(df) and df > 2):
        raise OptionError(f"--df {df}: expected degrees of freedom above 2 (finite variance), e.g. 4")
    if not (math.isfinite(corr) and 0 <= corr < 1):
        raise OptionError(f"--corr {corr}: expected a correlation in [0, 1), e.g. 0.8")
    if seed is not None and not 0 <= seed < 2**63:
        raise OptionError(f"--seed {seed}: expected 0 to {2**63 - 1}")
    parsed = tuple(_split_vol(v) for v in vols)
    return VarRequest(scenarios, secrets.randbits(63) if seed is None else seed, parsed, corr, df)


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
    """{asset: daily volatility} of every non-stable priced asset. Stablecoins are the dollar the feeds
    are quoted in and stay fixed, so they are not drawn (a --vol for one is an error)."""
    moving = [a for a, o in sorted(inputs.oracles.items()) if not _pegged(o.price)]
    vols = dict.fromkeys(moving, DEFAULT_VOL)
    by_symbol = {symbol.lower(): token for token, symbol in inputs.symbols.items() if token in vols}
    for name, vol in request.vols:
        asset = _token(by_symbol, name)
        if asset is None:
            known = ", ".join(sorted(inputs.symbols.get(a, a) for a in moving)) or "none"
            raise OptionError(
                f"--vol '{name}={vol}': unknown or stable asset {name!r}; expected one of {known}"
            )
        vols[asset] = vol
    return vols


@dataclass(frozen=True, slots=True)
class Outcome:
    """One scenario's cascade in USD: bad debt in total and per market, value liquidated, depth."""

    bad_debt: float
    by_market: dict[str, float]
    liquidated: float
    depth: int


def run_var(inputs: Inputs, request: VarRequest, show_progress: bool = False) -> dict[str, object]:
    """Draw the scenarios, run the cascade on each and summarise the tails as one JSON-able document."""
    import numpy as np

    from graph.tail import student_t_scenarios

    vols = shocked_assets(inputs, request)
    assets = list(vols)
    outcomes: list[Outcome] = []
    if assets:
        corr = np.full((len(assets), len(assets)), request.corr) + np.eye(len(assets)) * (1 - request.corr)
        sigma = [vols[a] for a in assets]
        rng = np.random.default_rng(request.seed)
        drawn = student_t_scenarios(corr, sigma, df=request.df, n=request.scenarios, rng=rng).factors
        rows = [dict(zip(assets, map(float, row), strict=True)) for row in drawn]
    else:  # nothing moves: every scenario is today
        rows = [{} for _ in range(request.scenarios)]
    for row in _progress(rows, show_progress):
        outcomes.append(_outcome(inputs, {a: Fraction(f).limit_denominator(10**12) for a, f in row.items()}))
    return _var_report(inputs, request, vols, outcomes)


def _progress(rows: list[dict[str, float]], show: bool) -> Iterable[dict[str, float]]:
    if not show:
        return rows
    from rich.console import Console
    from rich.progress import track

    # On stderr, so that a table (or a pipe) on stdout holds the results only.
    return track(rows, description="scenarios", console=Console(stderr=True), transient=True)


def _outcome(inputs: Inputs, shock: Mapping[str, Fraction]) -> Outcome:
    # run_cascade deep-copies the pools it mutates, so every scenario starts from the same state.
    result = simulate(inputs, shock)
    decimals = {r.asset: r.decimals for m in inputs.markets for rs in m.positions.values() for r in rs}
    by_market: dict[str, float] = {m.name: 0.0 for m in inputs.markets}
    for (market, asset), amount in result.bad_debt.items():
        by_market[market] += _usd(amount * result.oracle_prices[asset] // 10 ** decimals[asset])
    liquidated = sum(x.debt_repaid_usd for r in result.rounds for x in r.liquidations)
    return Outcome(sum(by_market.values()), by_market, _usd(liquidated), result.depth)


def _var_report(
    inputs: Inputs, request: VarRequest, vols: Mapping[str, float], outcomes: Sequence[Outcome]
) -> dict[str, object]:
    import numpy as np

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
            "df": request.df,
            "corr": request.corr,
            "horizon_days": 1,
            "bootstrap_resamples": BOOTSTRAP_B,
            "rules": inputs.markets[0].rules,
            "oracle": "feed",
            "vol": {a: {"symbol": inputs.symbols.get(a), "daily": v} for a, v in vols.items()},
        },
        "bad_debt_usd": {
            name: {"point": t.point, "low": t.low, "high": t.high, "confidence": t.confidence}
            for name, t in tails.items()
        },
        "bad_debt_by_market_usd": [
            {
                "market": m.name,
                "market_label": inputs.labels.get(m.name),
                "VaR99": value_at_risk([o.by_market[m.name] for o in outcomes], 0.99),
                "max": max(o.by_market[m.name] for o in outcomes),
            }
            for m in inputs.markets
        ],
        "scenarios_with_bad_debt": int((losses > 0).sum()),
        "max_bad_debt_usd": float(losses.max()),
        "liquidations_at_risk_usd": liquidations_at_risk([o.liquidated for o in outcomes], 0.95),
        "depth_histogram": depth_histogram(np.array([o.depth for o in outcomes], dtype=np.int64)).tolist(),
    }
