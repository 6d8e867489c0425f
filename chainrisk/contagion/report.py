"""One cascade scenario and its result as a JSON-able document.

result = simulate(inputs, shock)
document = report(inputs, shock, result)
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from chainrisk.contagion.inputs import USD, Inputs
from graph.cascade import CascadeResult, run_cascade


def simulate(inputs: Inputs, shock: Mapping[str, Fraction], max_rounds: int = 20) -> CascadeResult:
    """The cascade the shock sets off (see :mod:`graph.cascade`)."""
    return run_cascade(inputs.books, inputs.pools, inputs.oracles, shock, max_rounds=max_rounds)


def report(inputs: Inputs, shock: Mapping[str, Fraction], result: CascadeResult) -> dict[str, object]:
    """The result as one JSON-able document: amounts exact (integers as the chain has them), USD values
    in dollars, assets by address with their symbols, prices as USD (oracles) or sqrtPriceX96 (pools)."""
    name = inputs.symbols.get
    decimals = inputs.decimals
    rounds = [
        {
            "round": r.index,
            "liquidations": [
                {
                    "wallet": x.user,
                    "protocol": x.protocol,
                    "market": x.market,
                    "market_label": inputs.labels.get(x.market),
                    "collateral_asset": x.collateral_asset,
                    "collateral_symbol": name(x.collateral_asset),
                    "debt_asset": x.debt_asset,
                    "debt_symbol": name(x.debt_asset),
                    "debt_repaid": str(x.debt_repaid),
                    "collateral_seized": str(x.collateral_seized),
                    "protocol_fee": str(x.protocol_fee),
                    "debt_repaid_usd": usd(x.debt_repaid_usd),
                    "collateral_seized_usd": usd(x.collateral_seized_usd),
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
                "usd": usd(v * result.oracle_prices[a] // 10 ** decimals[a]),
            }
            for (m, a), v in sorted(result.bad_debt.items())
        ],
        "oracle_prices": {a: {"symbol": name(a), "usd": usd(p)} for a, p in result.oracle_prices.items()},
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


def usd(base: int) -> float:
    return base / USD


def _pool_price(sqrt_price_x96: int, decimals0: int | None, decimals1: int | None) -> float | None:
    """Whole token1 per whole token0 (None when a token's decimals are unknown: no market holds it)."""
    if decimals0 is None or decimals1 is None:
        return None
    return float(Fraction(sqrt_price_x96**2 * 10**decimals0, (1 << 192) * 10**decimals1))
