"""The cross-market exposure graph, built from the indexed positions in PostgreSQL.

Nodes are ``("wallet", address)``, ``("market", pool)`` and ``("asset", token)``, each with a ``kind``
attribute. Edges carry USD (``position_reserves`` stores base currency, USD·1e8):

- wallet → market: the wallet's ``collateral_usd`` and ``debt_usd`` in that market;
- market → asset: the market's ``collateral_usd`` and ``debt_usd`` in that asset, and
  ``exposure_usd`` = their sum, the gross amount the market holds in or lends out of the asset.

A wallet with positions in several markets connects them: that is the contagion channel.

Morpho Blue markets sit beside the Aave pools: the indexer writes their positions to the same table, the
market being the market id (``protocol`` = ``morpho_blue``): a borrower's collateral row in the collateral
token, its debt (and a lender's supply, as a claim on the market) in the loan token. Market nodes and
wallet → market edges carry the ``protocol``; a wallet borrowing on Aave and on Morpho links the two
protocols' markets exactly as it links two Aave pools. :func:`morpho_positions` makes the same rows from
the cascade's Morpho books, at given prices.

Market-to-market matrix for DebtRank. Aave markets are isolated — collateral in one market never backs
debt in another — so the link runs through the wallets, whose solvency rests on everything they own.
Market i's loan to wallet w is attributed to w's collateral pro rata, wherever it sits:

    A[i, j] = Σ_w debt_i(w) · collateral_j(w) / collateral(w)          (i ≠ j; the diagonal is 0)

the part of market i's loans backed by collateral held in market j. If market j fails and the wallet
loses what it holds there, that part of its debt to market i is left uncovered. The buffer of market i
is its over-collateralisation, ``Σ collateral − Σ debt``: the loss its lenders can absorb before loans
stop being covered. (A market with no such cushion gets a buffer of one base unit, 1e-8 USD, so that any
exposure to it passes on full stress.) The economic weight of a market is its total debt: the lenders'
money at stake. Collateral is taken at market value, not weighted by liquidation thresholds, so buffers
are generous and the stress estimates low in that respect; and only the cross-market channel is counted,
not liquidations within a market.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
import psycopg
from numpy.typing import NDArray

from indexer.lending.read import BASE_UNIT, pool_labels

if TYPE_CHECKING:
    from graph.cascade import MorphoBook

FloatArray = NDArray[np.float64]
# A market without any over-collateralisation passes on full stress from any exposure.
MIN_BUFFER_USD = 1 / BASE_UNIT


@dataclass(frozen=True)
class Position:
    """One (pool, user, asset) row of position_reserves, in USD; ``pool`` is a Morpho market's id where
    ``protocol`` is ``morpho_blue``."""

    pool: str
    user: str
    asset: str
    collateral_usd: float
    debt_usd: float
    protocol: str = "aave_v3"


@dataclass(frozen=True)
class MarketExposure:
    """What DebtRank takes: market order, exposures ``A[i, j]``, buffers and weights, all in USD."""

    markets: list[str]
    exposures: FloatArray
    buffers: FloatArray
    weights: FloatArray
    collateral: FloatArray
    debt: FloatArray


def read_positions(conn: psycopg.Connection[tuple[object, ...]], chain_id: int) -> list[Position]:
    """Every indexed position of the chain (Aave and Morpho Blue) with a non-zero balance, in USD."""
    rows = conn.execute(
        "SELECT pool, user_address, asset, collateral_base, debt_base, protocol FROM position_reserves"
        " WHERE chain_id = %s AND (collateral_base > 0 OR debt_base > 0) ORDER BY pool, user_address, asset",
        (chain_id,),
    ).fetchall()
    return [
        Position(str(p), str(u), str(a), int(str(c)) / BASE_UNIT, int(str(d)) / BASE_UNIT, str(protocol))
        for p, u, a, c, d, protocol in rows
    ]


def morpho_positions(books: Sequence[MorphoBook], prices: Mapping[str, int]) -> list[Position]:
    """The rows of the Morpho books' borrowers at ``prices`` (USD with 8 decimals by token): collateral in
    the collateral token, debt (``toAssetsUp`` of the borrow shares) in the loan token."""
    from graph.morpho import borrowed

    found = []
    for book in books:
        market = book.market
        units = 10**market.collateral_decimals, 10**market.loan_decimals
        for user, position in sorted(book.positions.items()):
            collateral = position.collateral * prices[market.collateral_token] // units[0]
            debt = borrowed(market, position) * prices[market.loan_token] // units[1]
            for asset, c, d in ((market.collateral_token, collateral, 0), (market.loan_token, 0, debt)):
                if c or d:
                    found.append(
                        Position(market.id, user, asset, c / BASE_UNIT, d / BASE_UNIT, "morpho_blue")
                    )
    return found


def market_labels(conn: psycopg.Connection[tuple[object, ...]], chain_id: int) -> dict[str, str]:
    """Pool address → label where the address book names the pool (e.g. 'aave-pool')."""
    return pool_labels(conn, chain_id)


def exposure_graph(positions: Sequence[Position]) -> nx.DiGraph:
    """wallet → market → asset, with collateral and debt in USD and the market's protocol on every edge."""
    graph = nx.DiGraph()
    for pos in positions:
        wallet, market, asset = ("wallet", pos.user), ("market", pos.pool), ("asset", pos.asset)
        for node in (wallet, asset):
            graph.add_node(node, kind=node[0])
        graph.add_node(market, kind="market", protocol=pos.protocol)
        _add_usd(graph, wallet, market, pos)
        _add_usd(graph, market, asset, pos)
    for _, _, data in graph.edges(data=True):
        data["exposure_usd"] = data["collateral_usd"] + data["debt_usd"]
    return graph


def _add_usd(graph: nx.DiGraph, source: tuple[str, str], target: tuple[str, str], pos: Position) -> None:
    if not graph.has_edge(source, target):
        graph.add_edge(source, target, collateral_usd=0.0, debt_usd=0.0, protocol=pos.protocol)
    edge = graph.edges[source, target]
    edge["collateral_usd"] += pos.collateral_usd
    edge["debt_usd"] += pos.debt_usd


def market_exposure(graph: nx.DiGraph) -> MarketExposure:
    """The market-to-market exposure matrix, buffers and weights described in the module docstring."""
    markets = sorted(node[1] for node, kind in graph.nodes(data="kind") if kind == "market")
    wallets = sorted(node[1] for node, kind in graph.nodes(data="kind") if kind == "wallet")
    collateral, debt = _wallet_by_market(graph, wallets, markets)
    held = collateral.sum(axis=1)
    # A wallet with no collateral backs nothing: its share of each market's collateral is zero.
    share = np.divide(collateral, held[:, None], out=np.zeros_like(collateral), where=held[:, None] > 0)
    exposures = debt.T @ share
    np.fill_diagonal(exposures, 0.0)
    market_collateral, market_debt = collateral.sum(axis=0), debt.sum(axis=0)
    return MarketExposure(
        markets=markets,
        exposures=exposures,
        buffers=np.maximum(market_collateral - market_debt, MIN_BUFFER_USD),
        weights=market_debt,
        collateral=market_collateral,
        debt=market_debt,
    )


def _wallet_by_market(
    graph: nx.DiGraph, wallets: list[str], markets: list[str]
) -> tuple[FloatArray, FloatArray]:
    row = {w: i for i, w in enumerate(wallets)}
    column = {m: j for j, m in enumerate(markets)}
    collateral = np.zeros((len(wallets), len(markets)))
    debt = np.zeros_like(collateral)
    for (kind, wallet), (_, market), data in graph.edges(data=True):
        if kind == "wallet":
            collateral[row[wallet], column[market]] = data["collateral_usd"]
            debt[row[wallet], column[market]] = data["debt_usd"]
    return collateral, debt


@dataclass(frozen=True)
class ClearingNetwork:
    """The book as an Eisenberg–Noe payment network (see :func:`clearing_network`), in USD."""

    nodes: list[tuple[str, str]]  # ("market", pool) first, then ("wallet", address)
    liabilities: FloatArray  # liabilities[i, j]: what node i owes node j
    external_assets: FloatArray
    first_order_shortfall: FloatArray  # per node: what it could not pay even if every debtor paid


def clearing_network(
    positions: Sequence[Position], factors: Mapping[str, float] | None = None
) -> ClearingNetwork:
    """Markets and wallets as a payment network at shocked prices (``factors``: asset → price factor).

    A wallet owes each market its debt there; a market owes each wallet what the wallet supplied to it
    (its aTokens are claims on the market). A market's external assets are the underlying it holds,
    supplied minus borrowed per asset; wallets have none beyond their claims. Clearing then winds every
    estate up at once: a wallet pays its debts pro rata from what the markets pay it, across markets — the
    lens in which a loss in one market reaches the suppliers of another through the wallets they share.
    Unlike a liquidation, no bonus is paid and no collateral is sold: it is the loss left if every
    position were closed at these prices, with nobody's collateral ring-fenced by market.
    """
    moved = factors or {}
    markets = sorted({p.pool for p in positions})
    wallets = sorted({p.user for p in positions})
    index = {("market", m): i for i, m in enumerate(markets)}
    index |= {("wallet", w): len(markets) + i for i, w in enumerate(wallets)}
    owed = np.zeros((len(index), len(index)))
    held = np.zeros(len(index))
    for pos in positions:
        factor = moved.get(pos.asset, 1.0)
        market, wallet = index[("market", pos.pool)], index[("wallet", pos.user)]
        owed[wallet, market] += pos.debt_usd * factor
        owed[market, wallet] += pos.collateral_usd * factor
        held[market] += (pos.collateral_usd - pos.debt_usd) * factor
    # Rounding in the indexed balances can leave a market a few base units short; it holds no less than 0.
    held = np.maximum(held, 0.0)
    nodes = sorted(index, key=index.__getitem__)
    receivable = owed.sum(axis=0) + held
    return ClearingNetwork(nodes, owed, held, np.maximum(owed.sum(axis=1) - receivable, 0.0))
