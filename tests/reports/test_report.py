"""`chainrisk report contagion` on the devnet after the market scenario, with a stored Monte Carlo run:
every SQL table of the report equals its query rerun on the reader views, the headline numbers equal the
views they come from, the command tables equal the commands they name, the Markdown and the HTML show the
same cells, and the Markdown holds no HTML."""

from __future__ import annotations

import html
import json
import re
import shlex
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from chainrisk.reports.render import cell
from chainrisk.reports.sql import json_row
from tests.reports.conftest import SCENARIOS, Written, cli

pytestmark = pytest.mark.slow

SECTIONS = [
    "summary", "markets", "hf", "wallets", "lar", "cascade", "exposure", "governance", "whales",
    "forecasts", "methodology",
]  # fmt: skip


def _tables(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(s["key"], t) for s in document["sections"] for t in s["tables"]]


def _table(document: dict[str, Any], title_start: str) -> dict[str, Any]:
    [table] = [t for _, t in _tables(document) if t["title"].startswith(title_start)]
    return table


def _sql(db: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return [tuple(r) for r in conn.execute(query.encode()).fetchall()]


def _posts(out: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(out.glob("post-*.md")))


def test_the_report_has_every_section_in_order(written: Written) -> None:
    document = written.document
    assert [s["key"] for s in document["sections"]] == SECTIONS
    assert document["block"] == written.head and document["period"] == "weekly"
    names = {p["name"] for s in document["sections"] for p in s["plots"]}
    expected = {
        "hf-distribution.png",
        "lar-curve.png",
        "cascade-rounds.png",
        "bad-debt.png",
        "exposure-graph.png",
    }
    assert names == expected
    for name in names:
        assert (written.out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_sql_table_equals_its_query_on_the_views(written: Written) -> None:
    checked = 0
    for _, table in _tables(written.document):
        if table["how"] == "sql":
            again = [json_row(r) for r in _sql(written.db, table["reproduce"])]
            assert again == table["rows"], table["title"]
            checked += 1
    assert checked >= 8


def test_headline_numbers_equal_the_views(written: Written) -> None:
    document, db = written.document, written.db
    [(var99, es99, scenarios)] = _sql(
        db,
        f"SELECT var99_usd, es99_usd, scenarios FROM contagion_run_results WHERE run_id = {written.run_id}",
    )
    tail = _table(document, "Latest stored Monte Carlo run")
    row = dict(zip(tail["columns"], tail["rows"][0], strict=True))
    assert row["run_id"] == written.run_id and row["scenarios"] == scenarios == SCENARIOS
    assert row["var99_usd"] == round(var99, 2) and row["es99_usd"] == round(es99, 2)
    [(borrowers, debt)] = _sql(
        db, "SELECT count(*), sum(debt_usd) FROM positions_current WHERE debt_usd > 0 AND chain_id = 31337"
    )
    key = _table(document, "Key figures")
    figures = dict(zip(key["columns"], key["rows"][0], strict=True))
    assert figures["borrowers"] == borrowers and figures["debt_usd"] == round(float(debt), 2)
    buckets = _table(document, "Borrowers per health-factor bucket")
    assert sum(r[buckets["columns"].index("users")] for r in buckets["rows"]) == borrowers > 0
    markets = _table(document, "Markets")
    total = sum(r[markets["columns"].index("debt_usd")] for r in markets["rows"])
    assert abs(total - float(debt)) < 0.01 * len(markets["rows"])
    summary = written.document["sections"][0]["text"]
    assert any(f"VaR99 of bad debt {round(var99, 2):,.2f} USD" in line for line in summary)


def test_command_tables_equal_the_commands_they_name(written: Written, tmp_path: Path) -> None:
    lar = _table(written.document, "Each asset alone falling")
    args = shlex.split(lar["reproduce"])
    assert args[:3] == ["chainrisk", "contagion", "curve"]
    result = cli(written.db, tmp_path, *args[1:])
    assert result.returncode == 0, result.stderr
    points = [p for p in json.loads(result.stdout)["points"] if p["drop_percent"] > 0]
    assert [[p["first_round"]["debt_usd"], p["cascade"]["debt_repaid_usd"], p["cascade"]["bad_debt_usd"]]
            for p in points] == [[r[4], r[6], r[7]] for r in lar["rows"]]  # fmt: skip
    rounds = _table(written.document, "Liquidations per round")
    args = shlex.split(rounds["reproduce"])
    result = cli(written.db, tmp_path, *args[1:])
    assert result.returncode == 0, result.stderr
    simulated = json.loads(result.stdout)["rounds"]
    assert [[r["round"], len(r["liquidations"])] for r in simulated] == [row[:2] for row in rounds["rows"]]
    assert rounds["rows"], "a 30% fall of every moving asset liquidates someone on the devnet"


def test_markdown_and_html_show_every_cell(written: Written) -> None:
    posts, page = _posts(written.out), (written.out / "report.html").read_text()
    transposed = 0
    for _, table in _tables(written.document):
        for row in table["rows"]:
            texts = [cell(c, v, table["formats"]) for c, v in zip(table["columns"], row, strict=True)]
            if len(table["rows"]) == 1 and len(table["columns"]) > 4:  # shown as (measure, value) lines
                lines = [[c, t] for c, t in zip(table["columns"], texts, strict=True)]
                transposed += 1
            else:
                lines = [texts]
            for line in lines:
                markdown = "| " + " | ".join(t.replace("|", "\\|").replace("<", "\\<") for t in line) + " |"
                assert markdown in posts, (table["title"], line)
                assert all(f">{html.escape(t)}</td>" in page for t in line), (table["title"], line)
        assert table["reproduce"] in posts and html.escape(table["reproduce"]) in page
    assert transposed >= 2  # the key figures and the stored run
    assert "data:image/png;base64," in page and 'src="http' not in page


def test_the_markdown_renders_without_html(written: Written) -> None:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": True}).enable("table")
    for post in sorted(written.out.glob("post-*.md")):
        text = post.read_text()
        assert len(text) <= 32_000
        tokens = parser.parse(text)
        kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
        assert not kinds & {"html_block", "html_inline"}, post.name
        assert "table_open" in kinds and "image" in kinds
        images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
        assert all((written.out / name).is_file() for name in images)


def test_sections_that_have_not_landed_say_so(written: Written) -> None:
    by_key = {s["key"]: s for s in written.document["sections"]}
    assert any("forecast" in m for m in by_key["forecasts"]["missing"])
    governance = {t["title"]: t for t in by_key["governance"]["tables"]}
    # The devnet's proposals are all executed: no change is pending, so none moves today's positions.
    assert governance["Pending risk changes applied to today's positions"]["rows"] == []
    assert governance["Risk parameters set by proposals (latest first)"]["rows"]
    posts = _posts(written.out)
    assert "> **Not available:** No volatility forecast stored" in posts


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--period", "monthly"], "--period 'monthly': expected daily or weekly"),
        (["--block", "99999999"], "--block 99999999: above the indexed head"),
    ],
)
def test_bad_input_is_one_error_line(written: Written, tmp_path: Path, args: list[str], needle: str) -> None:
    result = cli(written.db, tmp_path, "report", "contagion", "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle in line


def test_a_past_block_reads_the_history(written: Written, tmp_path: Path) -> None:
    block = written.head - 40
    out = tmp_path / "past"
    result = cli(written.db, tmp_path, "report", "contagion", "--block", str(block), "--out", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "report.json").read_text())
    assert document["block"] == block
    for _, table in _tables(document):
        if table["how"] == "sql":
            assert [json_row(r) for r in _sql(written.db, table["reproduce"])] == table["rows"], table[
                "title"
            ]
    [(borrowers,)] = _sql(written.db, f"SELECT count(*) FROM health_at({block}) WHERE debt_usd > 0")
    buckets = _table(document, "Borrowers per health-factor bucket")
    assert f"health_at({block})" in buckets["reproduce"]
    assert sum(r[buckets["columns"].index("users")] for r in buckets["rows"]) == borrowers > 0
    assert _table(document, "Each asset alone falling")["reproduce"].endswith(f"--json --block {block}")


def test_a_long_post_is_split_into_numbered_parts_between_blocks() -> None:
    from chainrisk.reports.model import Report, Section, Table
    from chainrisk.reports.render import markdown_posts

    def table(i: int) -> Table:
        rows: list[list[Any]] = [[f"0x{j:040x}", j * 1.5] for j in range(40)]
        return Table(f"table {i}", ["wallet", "debt_usd"], rows, f"SELECT {i}")

    sections = [Section(f"s{i}", f"Section {i}", text=[f"text {i}"], tables=[table(i)]) for i in range(6)]
    report = Report("A long report", 1, 2, "daily", "2026-11-30", "2026-11-30T00:00:00+00:00", sections)
    whole = markdown_posts(report, limit=10**6)
    parts = markdown_posts(report, limit=6_000)
    assert len(whole) == 1 and len(parts) > 2
    assert all(len(p) <= 6_000 for p in parts)
    assert [p.splitlines()[0] for p in parts] == [
        f"**Part {i} of {len(parts)}**" for i in range(1, len(parts) + 1)
    ]
    # Every block is whole in exactly one part, in order: the parts joined are the single post's blocks.
    assert [b for p in parts for b in _blocks(p)] == _blocks(whole[0])


def _blocks(post: str) -> list[str]:
    return [b for b in post.strip().split("\n\n") if not b.startswith("**Part ")]


def test_without_uniswap_pools_the_scenario_sections_say_why(written: Written) -> None:
    from datetime import UTC, datetime

    from chainrisk.reports.gather import gather

    with psycopg.connect(to_libpq_url(written.db)) as conn:
        conn.execute("DELETE FROM uniswap_v3_pool_created")  # undone below: the other tests share the data
        try:
            report = gather(conn, "daily", None, datetime.now(UTC))
        finally:
            conn.rollback()
    by_key = {s.key: s for s in report.sections}
    assert report.block == written.head and [s.key for s in report.sections] == SECTIONS
    assert by_key["lar"].tables == [] and "Uniswap v3 pool" in by_key["lar"].missing[0]
    assert any(
        m.startswith("The cascade round by round: the cascade needs") for m in by_key["cascade"].missing
    )
    assert by_key["cascade"].tables[0].title.startswith("Latest stored Monte Carlo run")
    assert by_key["markets"].tables[0].rows and by_key["exposure"].plots
