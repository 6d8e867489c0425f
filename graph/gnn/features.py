"""The exposure graph of a book and the features both model families read, per scenario.

    static = static_graph(markets, pools, oracles)
    shocks = shock_matrix(static, assets, factors)    # (scenarios, assets) price multipliers
    table = tabular(static, shocks)                   # (scenarios × accounts, len(FEATURES))

Nodes: accounts (one per wallet and market with debt: what is liquidated), wallets, markets, assets and
the Uniswap v3 pools between two assets. Edges: account → asset collateral and debt (USD amounts), account
→ wallet, account → market, asset → pool (the pool's depth). USD is at the oracle prices before the shock.

Per-account features (the tree model, the MLP and the GNN's account inputs read the same ones): health
factor before and after the shock (the analytic first-round rule), collateral and debt, the shocks of the
account's largest collateral and debt, how many assets it touches, the share of its largest collateral's
pool depth it would sell, the stress its largest collateral asset takes from every account below 1 after
the shock (their collateral in that asset over the depth of its pools, and over its whole collateral), and
a DebtRank of the account in the account–asset graph, and whether a pool joins its largest collateral and
largest debt (and its depth): without one no liquidator can sell, and the cascade leaves the account.
Two more come from the cheap approximate cascade of :mod:`graph.gnn.approx`: the round in which it first
liquidates the account, and the account's health factor at the prices its sales leave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from graph.cascade import LendingMarket, MorphoBook, OracleModel, PoolKey
from graph.debtrank import sparse_debtrank
from graph.fastcascade import build_book
from graph.univ3_pool import Pool

if TYPE_CHECKING:
    from graph.gnn.approx import Approximation

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

USD = 1e8
HF_CAP = 10.0  # health factors above this carry no more information for a day's shock
FEATURES = (
    "log_hf_before",
    "log_hf_after",
    "below_one",
    "log_collateral_kusd",
    "log_debt_kusd",
    "collateral_shock",
    "debt_shock",
    "degree",
    "exposure_share",
    "pressure_on_depth",
    "shared_collateral_share",
    "debtrank",
    "pair_pool",
    "log_pair_depth_musd",
    "approx_round",
    "log_hf_cascade",
)


@dataclass(frozen=True)
class StaticGraph:
    """A book's exposure graph, as arrays; see the module."""

    assets: tuple[str, ...]
    markets: tuple[str, ...]
    accounts: tuple[tuple[str, str], ...]
    wallets: tuple[str, ...]
    pools: tuple[PoolKey, ...]
    price: FloatArray  # (A,) USD
    collateral_usd: FloatArray  # (N, A) collateral that counts
    weighted_usd: FloatArray  # (N, A) collateral × liquidation threshold
    debt_usd: FloatArray  # (N, A)
    account_market: IntArray  # (N,)
    account_wallet: IntArray  # (N,)
    pool_assets: IntArray  # (P, 2)
    pool_depth_usd: FloatArray  # (P,)
    pool_fee: FloatArray  # (P,)
    feed: FloatArray  # (A,) 1 for an oracle that follows a pool
    deviation: FloatArray  # (A,)
    heartbeat: FloatArray  # (A,) seconds
    rank: FloatArray  # (N,) DebtRank

    @property
    def main_collateral(self) -> IntArray:
        """Each account's largest collateral asset."""
        found: IntArray = self.collateral_usd.argmax(axis=1)
        return found

    @property
    def main_debt(self) -> IntArray:
        """Each account's largest debt asset."""
        found: IntArray = self.debt_usd.argmax(axis=1)
        return found

    @property
    def asset_depth(self) -> FloatArray:
        """Per asset, the depth of every pool holding it (USD)."""
        depth = np.zeros(len(self.assets))
        np.add.at(depth, self.pool_assets[:, 0], self.pool_depth_usd)
        np.add.at(depth, self.pool_assets[:, 1], self.pool_depth_usd)
        return depth


def pool_depth_usd(pool: Pool, token0: str, decimals: int, price: int) -> float:
    """Twice the token0 value of the pool's active liquidity at its price: L · 2^96 / sqrtPrice."""
    amount0 = pool.liquidity * (1 << 96) / max(1, pool.sqrt_price)
    return float(2.0 * amount0 / 10**decimals * price / USD)


def book_decimals(markets: Sequence[LendingMarket | MorphoBook]) -> dict[str, int]:
    """Decimals of every asset a position holds, Aave reserves' and Morpho markets' tokens."""
    found: dict[str, int] = {}
    for m in markets:
        if isinstance(m, MorphoBook):
            found[m.market.loan_token] = m.market.loan_decimals
            found[m.market.collateral_token] = m.market.collateral_decimals
        else:
            found.update({r.asset: r.decimals for rs in m.positions.values() for r in rs})
    return found


def static_graph(
    markets: Sequence[LendingMarket | MorphoBook],
    pools: Mapping[PoolKey, Pool],
    oracles: Mapping[str, OracleModel],
) -> StaticGraph:
    """The exposure graph of every account with debt (the accounts the cascade can liquidate), Aave
    accounts and Morpho Blue positions alike."""
    decimals = book_decimals(markets)
    book = build_book(markets, decimals)
    price = np.array([oracles[a].price / USD for a in book.assets])
    collateral = book.collateral * price * book.counts  # the book's balances are whole tokens
    debt = book.debt * price
    wallets = tuple(sorted({user for _, user in book.accounts}))
    wallet_of = {w: i for i, w in enumerate(wallets)}
    column = {a: j for j, a in enumerate(book.assets)}
    keys = tuple(sorted(k for k in pools if k[0] in column and k[1] in column))
    return StaticGraph(
        assets=book.assets,
        markets=book.markets,
        accounts=book.accounts,
        wallets=wallets,
        pools=keys,
        price=price,
        collateral_usd=collateral,
        weighted_usd=collateral * book.threshold,
        debt_usd=debt,
        account_market=book.market.astype(np.int64),
        account_wallet=np.array([wallet_of[u] for _, u in book.accounts], dtype=np.int64),
        pool_assets=np.array([[column[a], column[b]] for a, b in keys], dtype=np.int64).reshape(-1, 2),
        pool_depth_usd=np.array(
            [pool_depth_usd(pools[k], k[0], decimals[k[0]], oracles[k[0]].price) for k in keys]
        ),
        pool_fee=np.array([pools[k].fee / 1e6 for k in keys]),
        feed=np.array([float(oracles[a].kind != "fixed") for a in book.assets]),
        deviation=np.array([oracles[a].deviation_bps / 1e4 for a in book.assets]),
        heartbeat=np.array([float(oracles[a].heartbeat_s) for a in book.assets]),
        rank=_rank(collateral, collateral * book.threshold - debt),
    )


def _rank(collateral: FloatArray, equity: FloatArray) -> FloatArray:
    """DebtRank of each account when every collateral asset loses a fifth: accounts and assets as nodes,
    an account exposed to each collateral asset, an asset to the accounts that would sell it."""
    n, a = collateral.shape
    buffers = np.concatenate([np.maximum(equity.sum(axis=1), 1.0), np.maximum(collateral.sum(axis=0), 1.0)])
    weights = np.concatenate([collateral.sum(axis=1), np.zeros(a)])
    shock = np.concatenate([np.zeros(n), np.full(a, 0.2)])
    result = sparse_debtrank(
        _bipartite(collateral), buffers, weights if weights.sum() > 0 else np.ones(n + a), shock
    )
    final: FloatArray = result.final[:n]
    return final


def _bipartite(collateral: FloatArray) -> Any:
    """The (accounts + assets)² exposure matrix of :func:`_rank` as a CSR matrix: accounts first, an
    account exposed to an asset by its collateral in it and the asset to the account by the same amount.
    Sparse, since a dense one grows with the square of the accounts (5 GB at 25,000)."""
    n, a = collateral.shape
    account, asset = np.nonzero(collateral)
    amount = collateral[account, asset]
    rows = np.concatenate([account, n + asset])
    columns = np.concatenate([n + asset, account])
    return sparse.csr_array((np.concatenate([amount, amount]), (rows, columns)), shape=(n + a, n + a))


def shock_matrix(static: StaticGraph, assets: Sequence[str], factors: FloatArray) -> FloatArray:
    """(scenarios, static.assets) multipliers: 1 for every asset the scenarios do not move."""
    column = {a: j for j, a in enumerate(static.assets)}
    shocks = np.ones((factors.shape[0], len(static.assets)))
    for k, asset in enumerate(assets):
        if asset in column:
            shocks[:, column[asset]] = factors[:, k]
    return shocks


def health_after(static: StaticGraph, shocks: FloatArray) -> FloatArray:
    """(scenarios, accounts) health factor at the shocked oracle prices, capped at ``HF_CAP``."""
    weighted = shocks @ static.weighted_usd.T
    owed = shocks @ static.debt_usd.T
    hf: FloatArray = np.minimum(weighted / np.maximum(owed, 1e-12), HF_CAP)
    return hf


def pair_pool_depth(static: StaticGraph) -> FloatArray:
    """Per account, the depth (USD) of the pool between its largest collateral and largest debt; 0 where
    there is none (a liquidator has nowhere to sell, so the cascade leaves the account alone)."""
    depth = np.zeros((len(static.assets), len(static.assets)))
    depth[static.pool_assets[:, 0], static.pool_assets[:, 1]] = static.pool_depth_usd
    depth[static.pool_assets[:, 1], static.pool_assets[:, 0]] = static.pool_depth_usd
    found: FloatArray = depth[static.main_collateral, static.main_debt]
    return found


def tabular(static: StaticGraph, shocks: FloatArray, approx: Approximation | None = None) -> FloatArray:
    """(scenarios × accounts, len(FEATURES)) rows, scenario-major; ``approx``: the approximate cascade
    of the same shocks when the caller has it already."""
    from graph.gnn.approx import approximate_cascade  # it reads StaticGraph from here

    s, n = shocks.shape[0], len(static.accounts)
    hf0 = health_after(static, np.ones((1, len(static.assets))))
    hf1 = health_after(static, shocks)
    below = (hf1 < 1.0).astype(np.float64)
    coll, debt = static.collateral_usd.sum(axis=1), static.debt_usd.sum(axis=1)
    main_c, main_d = static.main_collateral, static.main_debt
    # An asset no pool holds cannot be sold by a liquidator: no pressure on it.
    depth = np.where(static.asset_depth > 0, static.asset_depth, np.inf)
    pair_depth = pair_pool_depth(static)
    # Collateral (shocked USD) of the accounts below 1, per scenario and asset: what round 1 sells.
    selling = np.einsum("sn,na,sa->sa", below, static.collateral_usd, shocks)
    total = np.maximum(static.collateral_usd.sum(axis=0), 1.0)
    approx = approximate_cascade(static, shocks) if approx is None else approx
    columns = [
        np.broadcast_to(np.log(np.maximum(hf0, 1e-6)), (s, n)),
        np.log(np.maximum(hf1, 1e-6)),
        below,
        np.broadcast_to(np.log1p(coll / 1e3), (s, n)),
        np.broadcast_to(np.log1p(debt / 1e3), (s, n)),
        shocks[:, main_c] - 1.0,
        shocks[:, main_d] - 1.0,
        np.broadcast_to(((static.collateral_usd > 0) | (static.debt_usd > 0)).sum(axis=1), (s, n)),
        np.broadcast_to(static.collateral_usd.max(axis=1) / depth[main_c], (s, n)),
        (selling / depth)[:, main_c],
        (selling / total)[:, main_c],
        np.broadcast_to(static.rank, (s, n)),
        np.broadcast_to(pair_depth > 0, (s, n)),
        np.broadcast_to(np.log1p(pair_depth / 1e6), (s, n)),
        approx.first_round,
        np.log(np.maximum(health_after(static, approx.price), 1e-6)),
    ]
    table: FloatArray = np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=2).reshape(
        s * n, -1
    )
    return table
