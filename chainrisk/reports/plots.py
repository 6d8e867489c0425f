"""The report's plots as PNG bytes (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

DPI = 100


@contextmanager
def _figure(width: float, height: float) -> Iterator[tuple[Any, io.BytesIO]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(width, height))
    out = io.BytesIO()
    try:
        yield axis, out
        figure.tight_layout()
        figure.savefig(out, format="png", dpi=DPI)
    finally:
        plt.close(figure)


def hf_distribution(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Debt per health-factor bucket, one bar group per market; borrowers above each bar."""
    import numpy as np

    buckets = sorted({str(r["hf_bucket"]) for r in rows})
    markets = list(dict.fromkeys(str(r["market"]) for r in rows))
    names = {str(r["market"]): str(r.get("label") or r["market"]) for r in rows}
    width = 0.8 / max(len(markets), 1)
    with _figure(8, 4) as (axis, out):
        for i, market in enumerate(markets):
            mine = {str(r["hf_bucket"]): r for r in rows if r["market"] == market}
            x = np.arange(len(buckets)) + i * width
            debt = [float(mine[b]["debt_usd"]) if b in mine else 0.0 for b in buckets]
            bars = axis.bar(x, debt, width, label=names[market])
            users = [str(mine[b]["users"]) if b in mine else "" for b in buckets]
            axis.bar_label(bars, labels=users, fontsize="small")
        axis.set_xticks(np.arange(len(buckets)) + 0.4 - width / 2, [b.split(": ")[-1] for b in buckets])
        axis.set_xlabel("health factor (borrowers above each bar)")
        axis.set_ylabel("debt (USD)")
        axis.set_title("Health-factor distribution")
        axis.legend(fontsize="small")
    return out.getvalue()


def lar_curve(document: Mapping[str, Any]) -> bytes:
    """The liquidation-at-risk curve as `contagion curve --png` draws it."""
    from chainrisk.contagion.curve import write_png

    with TemporaryDirectory() as folder:
        path = Path(folder) / "curve.png"
        write_png(document, path)
        return path.read_bytes()


def cascade_rounds(rounds: Sequence[Mapping[str, Any]], bad_debt_usd: float, title: str) -> bytes:
    """Debt repaid per round of one cascade, with each round's liquidation count."""
    with _figure(8, 3.5) as (axis, out):
        x = [int(r["round"]) for r in rounds]
        repaid = [float(r["debt_repaid_usd"]) for r in rounds]
        bars = axis.bar(x, repaid, width=0.6, color="tab:red")
        axis.set_xlim(min(x, default=1) - 1, max(x, default=1) + 1)
        axis.bar_label(bars, labels=[f"{r['liquidations']} liq." for r in rounds], fontsize="small")
        axis.set_xticks(x)
        axis.set_xlabel("round")
        axis.set_ylabel("debt repaid (USD)")
        axis.set_title(f"{title}; bad debt left {bad_debt_usd:,.2f} USD")
    return out.getvalue()


def bad_debt_distribution(losses: Sequence[float], marks: Mapping[str, float], title: str) -> bytes:
    """Histogram of the scenarios' bad debt with VaR and ES marked."""
    with _figure(8, 3.5) as (axis, out):
        axis.hist(losses, bins=40, color="tab:gray")
        axis.set_yscale("log")
        styles = ("--", "-", ":", "-.")
        for (name, value), style in zip(marks.items(), styles, strict=False):
            axis.axvline(value, linestyle=style, color="tab:red", label=f"{name} {value:,.0f} USD")
        axis.set_xlabel("bad debt (USD)")
        axis.set_ylabel("scenarios (log)")
        axis.set_title(title)
        axis.legend(fontsize="small")
    return out.getvalue()


def exposure_graph(
    edges: Sequence[tuple[str, str, float]], cross: Sequence[tuple[str, str, float]], title: str
) -> bytes:
    """Markets (left) and the assets they hold or lend (right; edge width: USD), and market-to-market
    exposure through shared wallets (dashed, red)."""
    import networkx as nx

    graph = nx.DiGraph()
    for market, asset, usd in edges:
        graph.add_edge(market, asset, usd=usd, cross=False)
    for source, target, usd in cross:
        graph.add_edge(source, target, usd=usd, cross=True)
    markets = {m for m, _, _ in edges} | {m for pair in cross for m in pair[:2]}
    with _figure(8, 5) as (axis, out):
        if graph.number_of_nodes():
            # Markets in a column on the left, assets on the right: every edge is visible.
            layout = nx.bipartite_layout(graph, sorted(markets), align="vertical", scale=1.0)
            colors = ["tab:blue" if n in markets else "tab:orange" for n in graph.nodes]
            nx.draw_networkx_nodes(graph, layout, ax=axis, node_color=colors, node_size=1400, alpha=0.85)
            nx.draw_networkx_labels(graph, layout, ax=axis, font_size=8)
            for is_cross, color, style, bend in (
                (False, "tab:gray", "solid", 0.0),
                (True, "tab:red", "dashed", 0.4),
            ):
                chosen = [(u, v) for u, v, d in graph.edges(data=True) if d["cross"] is is_cross]
                scale = max((graph.edges[e]["usd"] for e in chosen), default=1.0) or 1.0
                widths = [1 + 5 * graph.edges[e]["usd"] / scale for e in chosen]
                nx.draw_networkx_edges(
                    graph, layout, edgelist=chosen, width=widths, edge_color=color, style=style, ax=axis,
                    arrows=True, node_size=1400, connectionstyle=f"arc3,rad={bend}",
                )  # fmt: skip
            cross_usd = {(u, v): f"{d['usd']:,.0f} USD" for u, v, d in graph.edges(data=True) if d["cross"]}
            nx.draw_networkx_edge_labels(
                graph, layout, edge_labels=cross_usd, font_size=7, font_color="tab:red", ax=axis,
                connectionstyle="arc3,rad=0.4",
            )  # fmt: skip
        axis.set_title(title)
        axis.axis("off")
    return out.getvalue()
