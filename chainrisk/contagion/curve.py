"""The liquidation-at-risk curve: what a price drop puts at risk, before and after the cascade.

    document = curve(inputs, assets=None, max_drop=60, step=5)
    write_png(document, path)

For each moving asset (alone) and each drop on the grid, two views per market, Aave's and Morpho Blue's
(a Morpho market's first round: the positions unhealthy at its oracle's price, the ratio of the two
shocked feeds):

- **first round**: the accounts whose health factor is below 1 at the shocked oracle price, before any
  liquidation — their debt (debt at risk) and collateral, and how much of that collateral the close
  factor lets liquidators seize right away is left to the cascade, which computes it exactly;
- **after the cascade**: what :func:`graph.cascade.run_cascade` liquidated over every round (debt repaid,
  collateral seized, both USD at the oracle prices of their round), the bad debt left and the depth.

The two differ when liquidators' sales move the pools and the oracles follow them (more is liquidated
than the first round shows), or when a sale is not worth it (less is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from chainrisk.contagion import scenarios
from chainrisk.contagion.inputs import Inputs, symbol_token
from chainrisk.contagion.report import simulate, usd
from chainrisk.inputs import OptionError
from graph.cascade import CascadeResult, LendingMarket, MorphoBook
from graph.morpho import accrue_interest, borrowed, is_healthy, oracle_price
from indexer.protocols.aave_math import HEALTH_FACTOR_LIQUIDATION_THRESHOLD, user_account_data

MAX_POINTS = 200


def drops(max_drop: float, step: float) -> list[Fraction]:
    """The grid 0, step, 2·step, … up to ``max_drop`` (percent), checked like every option."""
    if not 0 < max_drop < 100:
        raise OptionError(f"--max-drop {max_drop}: expected a drop in percent in (0, 100), e.g. 60")
    if not 0 < step <= max_drop:
        raise OptionError(f"--step {step}: expected a step in percent in (0, --max-drop], e.g. 5")
    if max_drop / step > MAX_POINTS:
        raise OptionError(f"--step {step}: {max_drop / step:.0f} points; expected at most {MAX_POINTS}")
    top, width = Fraction(str(max_drop)), Fraction(str(step))
    return [width * i for i in range(int(top / width) + 1)]


def moving_assets(inputs: Inputs, names: Sequence[str]) -> list[str]:
    """The assets to drop: those named (by symbol, any case; ETH and BTC also name WETH and WBTC), or
    every priced asset that is not a dollar."""
    if not names:
        return scenarios.moving_assets(inputs)
    by_symbol = {inputs.symbols.get(a, a).lower(): a for a in inputs.oracles}
    chosen = []
    for name in names:
        asset = symbol_token(by_symbol, name)
        if asset is None:
            known = ", ".join(sorted(inputs.symbols.get(a, a) for a in inputs.oracles))
            raise OptionError(
                f"--asset {name!r}: not a priced asset of these markets; expected one of {known}"
            )
        chosen.append(asset)
    return chosen


def curve(inputs: Inputs, assets: Sequence[str], grid: Sequence[Fraction]) -> dict[str, Any]:
    """The curve of every asset over the grid, as one JSON-able document."""
    points = []
    for asset in assets:
        for drop in grid:
            factor = 1 - drop / 100
            result = simulate(inputs, {asset: factor})
            for market in inputs.books:
                name = market.market.id if isinstance(market, MorphoBook) else market.name
                points.append(
                    {
                        "asset": asset,
                        "symbol": inputs.symbols.get(asset),
                        "drop_percent": float(drop),
                        "market": name,
                        "market_label": inputs.labels.get(name),
                        "protocol": "morpho_blue" if isinstance(market, MorphoBook) else "aave_v3",
                        "first_round": _first_round(inputs, market, asset, factor),
                        "cascade": _after(inputs, name, result),
                    }
                )
    return {"chain_id": inputs.chain_id, "block": inputs.block, "points": points}


def _first_round(
    inputs: Inputs, market: LendingMarket | MorphoBook, asset: str, factor: Fraction
) -> dict[str, Any]:
    prices = {a: o.price for a, o in inputs.oracles.items()}
    prices[asset] = prices[asset] * factor.numerator // factor.denominator
    if isinstance(market, MorphoBook):
        return _first_round_morpho(market, prices)
    accounts, collateral, debt = 0, 0, 0
    for user, reserves in market.positions.items():
        priced = [replace(r, price=prices[r.asset]) for r in reserves]
        category = market.emodes.get(user, (None, 0))[0]
        account = user_account_data(priced, "3.0", category)
        if account.total_debt_base and account.health_factor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
            accounts += 1
            collateral += account.total_collateral_base
            debt += account.total_debt_base
    return {"accounts": accounts, "collateral_usd": usd(collateral), "debt_usd": usd(debt)}


def _first_round_morpho(book: MorphoBook, prices: Mapping[str, int]) -> dict[str, Any]:
    """The unhealthy positions at the market oracle's price, the ratio of the two shocked feeds (as the
    cascade prices it); interest accrued to the book's timestamp first, as the cascade does."""
    market, _ = accrue_interest(book.market, book.borrow_rate, book.timestamp)
    loan, held = prices[market.loan_token], prices[market.collateral_token]
    price = oracle_price(book.scale_factor, held, loan)
    accounts, collateral, debt = 0, 0, 0
    for position in book.positions.values():
        if not is_healthy(market, position, price):
            accounts += 1
            collateral += position.collateral * held // 10**market.collateral_decimals
            debt += borrowed(market, position) * loan // 10**market.loan_decimals
    return {"accounts": accounts, "collateral_usd": usd(collateral), "debt_usd": usd(debt)}


def _after(inputs: Inputs, market: str, result: CascadeResult) -> dict[str, Any]:
    done = [x for r in result.rounds for x in r.liquidations if x.market == market]
    bad = sum(
        amount * result.oracle_prices[a] // 10 ** inputs.decimals[a]
        for (m, a), amount in result.bad_debt.items()
        if m == market
    )
    return {
        "liquidations": len(done),
        "accounts": len({x.user for x in done}),
        "debt_repaid_usd": usd(sum(x.debt_repaid_usd for x in done)),
        "collateral_seized_usd": usd(sum(x.collateral_seized_usd for x in done)),
        "bad_debt_usd": usd(bad),
        "depth": max((x.round for x in done), default=0),
    }


def curve_rows(document: Mapping[str, Any]) -> list[list[str]]:
    """Table rows: asset, drop, market, first-round accounts, debt and collateral at risk, then the
    cascade's liquidations, debt repaid, collateral seized, bad debt and depth."""
    rows = []
    for p in document["points"]:
        first, after = p["first_round"], p["cascade"]
        rows.append(
            [
                p["symbol"] or p["asset"],
                f"{p['drop_percent']:g}%",
                p["market_label"] or p["market"],
                str(first["accounts"]),
                f"{first['debt_usd']:,.0f}",
                f"{first['collateral_usd']:,.0f}",
                str(after["liquidations"]),
                f"{after['debt_repaid_usd']:,.0f}",
                f"{after['collateral_seized_usd']:,.0f}",
                f"{after['bad_debt_usd']:,.0f}",
                str(after["depth"]),
            ]
        )
    return rows


def write_png(document: Mapping[str, Any], path: Path) -> None:
    """One panel per asset: debt at risk in the first round and debt repaid plus bad debt after the
    cascade, against the drop, one line pair per market."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the plot only goes to a file
    import matplotlib.pyplot as plt

    assets = list(dict.fromkeys(p["asset"] for p in document["points"]))
    figure, axes = plt.subplots(len(assets), 1, figsize=(8, 3.5 * len(assets)), squeeze=False)
    for axis, asset in zip(axes[:, 0], assets, strict=True):
        _panel(axis, [p for p in document["points"] if p["asset"] == asset])
    figure.suptitle(f"liquidation at risk, chain {document['chain_id']} block {document['block']}")
    figure.tight_layout()
    try:
        figure.savefig(path, format="png", dpi=110)
    except OSError as error:
        raise OptionError(
            f"--png {path}: cannot write it ({error.strerror}); expected a writable path"
        ) from None
    finally:
        plt.close(figure)


def _panel(axis: Any, points: Sequence[Mapping[str, Any]]) -> None:
    for market in dict.fromkeys(p["market"] for p in points):
        mine = [p for p in points if p["market"] == market]
        name = mine[0]["market_label"] or market[:10]
        x = [p["drop_percent"] for p in mine]
        axis.plot(
            x, [p["first_round"]["debt_usd"] for p in mine], "--", label=f"{name}: debt at risk, round 1"
        )
        after = [p["cascade"]["debt_repaid_usd"] + p["cascade"]["bad_debt_usd"] for p in mine]
        axis.plot(x, after, "-", label=f"{name}: repaid + bad debt, cascade")
    axis.set_title(f"{points[0]['symbol'] or points[0]['asset']} price drop")
    axis.set_xlabel("price drop (%)")
    axis.set_ylabel("USD")
    axis.legend(fontsize="small")


def check_png(path: Path | None) -> None:
    """Refuse a --png whose folder does not exist, before any work is done."""
    if path is not None and not path.parent.is_dir():
        raise OptionError(
            f"--png {path}: folder {path.parent} does not exist; expected a path in an existing folder"
        )
