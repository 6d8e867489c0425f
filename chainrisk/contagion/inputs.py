"""What a contagion scenario runs on: the markets, pools and oracles of an indexed chain at a block.

    inputs = load_inputs(conn, chain_id=None, block=None, rules="3.0", oracle="feed")
    shock = parse_shocks(["WETH=-30%"], inputs.symbols, list(inputs.oracles))  # {asset: Fraction(7, 10)}

Every indexed Aave v3 pool becomes a :class:`graph.cascade.LendingMarket` rebuilt from its events at the
block; every indexed Uniswap v3 pool is rebuilt from its events at the same block. Oracles start at the
markets' AaveOracle prices. With ``feed`` oracles, prices flow from the dollar outwards along the pools:
an asset priced within 2% of 1 USD stays fixed (the numeraire), an asset with a pool to such an asset
follows that pool as a Chainlink-style feed (50 bps deviation, 3600 s heartbeat), and so on outwards
(wstETH follows its WETH pool once WETH follows USDC). Assets that no pool reaches stay fixed.

Each reserve's liquidation protocol fee is the last ``LiquidationProtocolFeeChanged`` its configurator
emitted up to the block (0 when none was indexed: index the pool's configurator to have them).

Every indexed Morpho Blue market (:func:`indexer.lending.morpho.morpho_markets`, rebuilt from its events at
the block) whose two tokens the cascade prices becomes a :class:`graph.cascade.MorphoBook` with its
borrowers. Its oracle in the cascade is the ratio of the two tokens' oracles above, with the
``SCALE_FACTOR`` of two 8-decimal USD feeds, ``10^(36 + loan decimals − collateral decimals)``: the
market's own oracle where it reads those feeds (as the devnet's do). The stored totals are taken as they
are: interest since the market's last accruing event is not added (no rate model is indexed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Literal

import psycopg

from chainrisk.inputs import OptionError
from graph.cascade import (
    LendingMarket,
    MorphoBook,
    OracleModel,
    PoolKey,
    market_from_state,
)
from graph.liquidation import Rules
from graph.morpho import MorphoMarket, MorphoPosition, scale_factor
from graph.univ3_pool import Pool
from graph.univ3_state import pool_state_at
from indexer.lending.health import indexed_head
from indexer.lending.morpho import MorphoMarketState, morpho_markets, usd_prices
from indexer.lending.positions import MarketState, PositionsError, market_state
from indexer.lending.read import protocol_fees

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
    decimals: dict[str, int]  # token address → decimals, of every asset a position holds
    morpho: tuple[MorphoBook, ...] = ()  # Morpho Blue markets with their borrowers

    @property
    def books(self) -> list[LendingMarket | MorphoBook]:
        """What :func:`graph.cascade.run_cascade` takes: the Aave markets, then the Morpho books."""
        return [*self.markets, *self.morpho]

    @property
    def market_names(self) -> list[str]:
        """Every market: Aave pools, then Morpho market ids."""
        return [m.name for m in self.markets] + [b.market.id for b in self.morpho]


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
    markets = tuple(
        market_from_state(s.pool, s, rules=rules, protocol_fees=protocol_fees(conn, chain, s.pool, at))
        for s in states
    )
    dex, addresses = _dex_pools(conn, chain, at)
    if not dex:
        raise OptionError(
            f"--chain-id {chain}: no Uniswap v3 pool indexed up to block {at}; expected the factory and its"
            ' pools indexed (abi = "uniswap_v3_factory" and "uniswap_v3_pool" in chainrisk.toml)'
        )
    prices = _prices(states)
    books = morpho_books(conn, chain, at, prices)
    held = {r.asset for m in markets for rs in m.positions.values() for r in rs}
    held |= {t for b in books for t in (b.market.loan_token, b.market.collateral_token)}
    oracles = _oracles(prices, dex, held) if oracle == "feed" else _fixed(prices)
    decimals = {r.asset: r.decimals for m in markets for rs in m.positions.values() for r in rs}
    for book in books:
        decimals[book.market.loan_token] = book.market.loan_decimals
        decimals[book.market.collateral_token] = book.market.collateral_decimals
    labels, symbols = _labels(conn, chain), token_symbols(conn, chain)
    for book in books:
        pair = (symbols.get(book.market.collateral_token), symbols.get(book.market.loan_token))
        labels[book.market.id] = f"morpho {pair[0]}/{pair[1]}" if all(pair) else "morpho"
    return Inputs(chain, at, markets, labels, dex, addresses, oracles, symbols, decimals, books)


# ------------------------------------------------------------------------------------------- Morpho


def morpho_books(conn: Conn, chain_id: int, block: int, prices: Mapping[str, int]) -> tuple[MorphoBook, ...]:
    """Every indexed Morpho Blue market at ``block`` whose tokens both have a price in ``prices`` (the
    cascade's oracles), with its borrowers; none where no Morpho Blue table exists."""
    found = conn.execute("SELECT to_regclass('morpho_blue_create_market')").fetchone()
    if found is None or found[0] is None:
        return ()
    books = []
    for state in morpho_markets(conn, chain_id, block):
        if state.params.collateral_token in prices and state.params.loan_token in prices:
            try:
                collateral, loan = usd_prices(conn, state)
            except PositionsError:  # a token without decimals: not a market the cascade can run
                continue
            books.append(morpho_book(state, collateral.decimals, loan.decimals))
    return tuple(books)


def morpho_book(state: MorphoMarketState, collateral_decimals: int, loan_decimals: int) -> MorphoBook:
    """The cascade's book of one indexed market: params, stored totals, borrowers' positions."""
    params, totals = state.params, state.totals
    market = MorphoMarket(
        id=state.id.lower(),
        loan_token=params.loan_token.lower(),
        collateral_token=params.collateral_token.lower(),
        lltv=params.lltv,
        loan_decimals=loan_decimals,
        collateral_decimals=collateral_decimals,
        total_supply_assets=totals.total_supply_assets,
        total_supply_shares=totals.total_supply_shares,
        total_borrow_assets=totals.total_borrow_assets,
        total_borrow_shares=totals.total_borrow_shares,
        last_update=totals.last_update,
        fee=totals.fee,
        oracle=params.oracle.lower(),
        irm=params.irm.lower(),
    )
    positions = {
        user.lower(): MorphoPosition(p.supply_shares, p.borrow_shares, p.collateral)
        for user, p in sorted(state.positions.items())
        if p.borrow_shares
    }
    return MorphoBook(market, positions, scale_factor(collateral_decimals, loan_decimals))


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
        token = symbol_token(by_symbol, name)
        if token is None:
            known = ", ".join(sorted(symbols[t] for t in priced if t in symbols)) or "none"
            raise OptionError(f"--shock {shock!r}: unknown symbol {name!r}; expected one of {known}")
        if token in parsed:
            raise OptionError(f"--shock {shock!r}: {symbols[token]} is shocked twice; give each asset once")
        parsed[token] = factor
    return parsed


def symbol_token(by_symbol: Mapping[str, str], name: str) -> str | None:
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


def token_symbols(conn: Conn, chain_id: int) -> dict[str, str]:
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


def pegged(price: int) -> bool:
    return abs(Fraction(price, USD) - 1) <= PEG_TOLERANCE


def _oracles(
    prices: Mapping[str, int], dex: Mapping[PoolKey, Pool], held: set[str]
) -> dict[str, OracleModel]:
    """Fixed dollars, then feeds breadth-first along the pools (see the module docstring). A feed needs
    both its assets held in some market: the cascade knows decimals only of what positions hold."""
    oracles = _fixed(prices)
    reached = [asset for asset in sorted(prices) if pegged(prices[asset])]
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
