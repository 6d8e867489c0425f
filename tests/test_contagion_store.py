"""Stored contagion runs: save_run writes every row of real cascade outcomes, the reader views and the
cookbook queries in docs/SQL.md ("Contagion results") answer what Python computes from the outcomes, and
the reader role reads the views, not the tables."""

from __future__ import annotations

import math
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import psycopg
import pytest

from chainrisk.contagion.store import ContagionStoreError, load_run, save_run
from chainrisk.contagion.surrogate_store import metadata as surrogate_metadata
from chainrisk.contagion.tables import metadata as contagion_metadata
from chainrisk.contagion.var import Outcome
from chainrisk.contagion.views import COMMENTS, VIEWS
from chainrisk.db import to_libpq_url
from tests.conftest import ROOT
from tests.contagion_book import CHAIN, MARKETS, USDC, WETH, book, drawn

QUERY = re.compile(r"```sql\n-- id: (\w+)\n(.*?)```", re.S)
RUNS = ((250, 7), (150, 8))  # (scenarios, seed); the second is the latest run
Q = 0.99


class Run:
    """A run as stored, with what Python computes from its outcomes."""

    def __init__(self, run_id: int, assets: list[str], factors: Any, outcomes: list[Outcome]) -> None:
        self.run_id, self.assets, self.factors, self.outcomes = run_id, assets, factors, outcomes
        self.losses = [o.bad_debt for o in outcomes]
        n = len(outcomes)
        order = sorted(range(n), key=lambda i: (self.losses[i], i))
        self.rank = {scenario: position + 1 for position, scenario in enumerate(order)}
        self.k = max(1, min(n, math.ceil(n * Q * (1.0 - 1e-12))))
        self.var99_scenario = order[self.k - 1]
        self.weight = {
            i: 1 / (n * (1 - Q)) if r > self.k else (self.k / n - Q) / (1 - Q) if r == self.k else 0.0
            for i, r in self.rank.items()
        }
        self.tail = [i for i, r in self.rank.items() if r >= self.k]

    def repaid(self, scenario: int) -> dict[tuple[str, str], float]:
        paid: dict[tuple[str, str], float] = defaultdict(float)
        for x in self.outcomes[scenario].liquidations:
            paid[(x.market, x.wallet)] += x.debt_repaid_usd
        return paid

    def contributors(self) -> dict[tuple[str, str], tuple[float, float, float, int]]:
        """(market, wallet) → (ES99 bad debt, ES99 liquidated, bad debt in the VaR99 scenario, scenarios)."""
        found: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
        for s in self.tail:
            wallets, paid = self.outcomes[s].by_wallet, self.repaid(s)
            for key in set(wallets) | set(paid):
                row = found[key]
                row[0] += self.weight[s] * wallets.get(key, 0.0)
                row[1] += self.weight[s] * paid.get(key, 0.0)
                row[2] += wallets.get(key, 0.0) if s == self.var99_scenario else 0.0
                row[3] += 1
        return {key: (a, b, c, int(d)) for key, (a, b, c, d) in found.items()}


def _summary(outcomes: Sequence[Outcome], seed: int) -> dict[str, Any]:
    """A report of the shape `contagion var` prints (the tail measures from graph.tail)."""
    from graph.tail import tail_summary

    losses = np.array([o.bad_debt for o in outcomes])
    tails = tail_summary(losses, b=50, rng=np.random.default_rng([seed, 1]))
    return {
        "bad_debt_usd": {k: {"point": t.point, "low": t.low, "high": t.high} for k, t in tails.items()},
        "scenarios_with_bad_debt": int((losses > 0).sum()),
        "max_bad_debt_usd": float(losses.max()),
    }


def _store(db: str, scenarios: int, seed: int, kind: str = "var") -> Run:
    inputs = book()
    assets, factors, outcomes = drawn(inputs, scenarios, seed)
    record = {"scenarios": scenarios, "seed": seed, "vol": {WETH: 0.10}, "df": 4}
    with psycopg.connect(to_libpq_url(db)) as conn:
        run_id = save_run(
            conn, inputs=inputs, kind=kind, seed=seed, method="student_t", inputs_record=record,
            summary=_summary(outcomes, seed), assets=assets, factors=factors, outcomes=outcomes,
        )  # fmt: skip
    return Run(run_id, assets, factors, outcomes)


@pytest.fixture(scope="module")
def stored(templates: dict[str, str]) -> Iterator[tuple[str, list[Run]]]:
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        with psycopg.connect(to_libpq_url(db)) as conn:
            conn.execute(
                "INSERT INTO tracked_tokens VALUES (%s, %s, 'WETH', 18, 0, NULL, 8),"
                " (%s, %s, 'USDC', 6, 0, NULL, 8)",
                (CHAIN, WETH, CHAIN, USDC),
            )
        yield db, [_store(db, n, seed) for n, seed in RUNS]


def _rows(db: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return [tuple(r) for r in conn.execute(query, params or None).fetchall()]


def _cookbook() -> dict[str, str]:
    found = dict(QUERY.findall((ROOT / "docs" / "SQL.md").read_text()))
    return {name: sql for name, sql in found.items() if name.startswith("contagion_")}


def _money(value: float) -> Decimal:
    """round(value::numeric, 2) as PostgreSQL does it: the float to 15 significant digits, then half up."""
    return Decimal(f"{value:.15g}").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _near(got: object, expected: float) -> bool:
    return abs(Decimal(str(got)) - _money(expected)) <= Decimal("0.01")  # sums in another order


# ------------------------------------------------------------------------------------------- rows


def test_every_row_of_a_run_is_stored(stored: tuple[str, list[Run]]) -> None:
    db, runs = stored
    for run, (scenarios, seed) in zip(runs, RUNS, strict=True):
        outcomes = run.outcomes
        (row,) = _rows(
            db, "SELECT chain_id, block, kind, seed, scenarios, method, assets, markets, inputs"
            " FROM contagion_runs WHERE id = %s", run.run_id,
        )  # fmt: skip
        assert row == (CHAIN, 4_242, "var", seed, scenarios, "student_t", [WETH], list(MARKETS),
                       {"scenarios": scenarios, "seed": seed, "vol": {WETH: 0.10}, "df": 4})  # fmt: skip
        counts = {
            table: _rows(db, f"SELECT count(*) FROM {table} WHERE run_id = %s", run.run_id)[0][0]
            for table in ("contagion_scenarios", "contagion_bad_debt", "contagion_wallet_bad_debt",
                          "contagion_liquidations")
        }  # fmt: skip
        assert counts == {
            "contagion_scenarios": scenarios,
            "contagion_bad_debt": sum(len(o.by_asset) for o in outcomes),
            "contagion_wallet_bad_debt": sum(len(o.by_wallet) for o in outcomes),
            "contagion_liquidations": sum(len(o.liquidations) for o in outcomes),
        }
        assert counts["contagion_liquidations"] > scenarios // 4 and counts["contagion_wallet_bad_debt"] > 0


def test_a_stored_run_loads_back_as_it_was_saved(stored: tuple[str, list[Run]]) -> None:
    db, runs = stored
    run = runs[0]
    with psycopg.connect(to_libpq_url(db)) as conn:
        loaded = load_run(conn, run.run_id)
    assert (loaded.kind, loaded.seed, loaded.assets, loaded.markets) == ("var", 7, [WETH], list(MARKETS))
    assert np.array_equal(loaded.factors, run.factors)  # floats go through COPY and back bit for bit
    for got, expected in zip(loaded.outcomes, run.outcomes, strict=True):
        assert (got.bad_debt, got.liquidated, got.depth) == (
            expected.bad_debt,
            expected.liquidated,
            expected.depth,
        )
        assert (got.by_asset, got.by_wallet, got.liquidations) == (
            expected.by_asset, expected.by_wallet, expected.liquidations,
        )  # fmt: skip
        assert got.by_market == pytest.approx(expected.by_market, rel=1e-12, abs=1e-9)


# ------------------------------------------------------------------------------------------- views


def test_the_scenario_view_ranks_the_tail_as_graph_tail_does(stored: tuple[str, list[Run]]) -> None:
    from graph.tail import expected_shortfall, value_at_risk

    db, runs = stored
    for run in runs:
        rows = _rows(
            db, "SELECT scenario, loss_rank, in_tail99, is_var99, es99_weight, bad_debt_usd, price_factors"
            " FROM contagion_scenario_results WHERE run_id = %s ORDER BY scenario", run.run_id,
        )  # fmt: skip
        assert [(r[0], r[1]) for r in rows] == sorted(run.rank.items())
        assert [r[0] for r in rows if r[2]] == sorted(run.tail)
        [(var99_scenario, var99)] = [(r[0], r[5]) for r in rows if r[3]]
        assert var99_scenario == run.var99_scenario and var99 == value_at_risk(run.losses, Q)
        assert sum(r[4] for r in rows) == pytest.approx(1.0, rel=1e-12)
        es99 = sum(r[4] * r[5] for r in rows)
        assert es99 == pytest.approx(expected_shortfall(run.losses, Q), rel=1e-9)
        assert [r[6] for r in rows] == [{WETH: float(f)} for f in run.factors[:, 0]]
    (summary_var99, summary_es99) = _rows(
        db, "SELECT var99_usd, es99_usd FROM contagion_run_results WHERE run_id = %s", runs[0].run_id
    )[0]
    assert summary_var99 == value_at_risk(runs[0].losses, Q)
    assert summary_es99 == pytest.approx(expected_shortfall(runs[0].losses, Q), rel=1e-12)


def test_tail_contributors_are_each_wallets_share_of_es99(stored: tuple[str, list[Run]]) -> None:
    from graph.tail import expected_shortfall

    db, runs = stored
    for run in runs:
        rows = _rows(
            db, "SELECT market, wallet, es99_bad_debt_usd, es99_liquidated_usd, var99_bad_debt_usd,"
            " tail_scenarios, es99_share FROM contagion_tail_contributors WHERE run_id = %s", run.run_id,
        )  # fmt: skip
        expected = run.contributors()
        assert {(r[0], r[1]) for r in rows} == set(expected)
        for market, wallet, es_debt, es_liquidated, var_debt, scenarios, _ in rows:
            want = expected[(market, wallet)]
            assert es_debt == pytest.approx(want[0], rel=1e-9, abs=1e-9)
            assert es_liquidated == pytest.approx(want[1], rel=1e-9, abs=1e-9)
            assert (var_debt, scenarios) == (want[2], want[3])
        es99 = expected_shortfall(run.losses, Q)
        assert es99 > 0  # the book's tail leaves bad debt, so the shares below are real
        # The cascade attributes all of a scenario's bad debt to wallets: the shares add up to ES99.
        assert sum(r[2] for r in rows) == pytest.approx(es99, rel=1e-9)
        assert sum(r[6] for r in rows) == pytest.approx(1.0, rel=1e-9)


def test_wallet_losses_join_bad_debt_and_liquidations(stored: tuple[str, list[Run]]) -> None:
    db, runs = stored
    run = runs[1]
    rows = _rows(
        db, "SELECT scenario, market, wallet, bad_debt_usd, liquidated_usd, liquidations"
        " FROM contagion_wallet_losses WHERE run_id = %s", run.run_id,
    )  # fmt: skip
    expected = {}
    for s, o in enumerate(run.outcomes):
        paid = run.repaid(s)
        for key in set(o.by_wallet) | set(paid):
            count = sum(1 for x in o.liquidations if (x.market, x.wallet) == key)
            expected[(s, *key)] = (o.by_wallet.get(key, 0.0), paid.get(key, 0.0), count)
    got: dict[Any, Any] = {(r[0], r[1], r[2]): (r[3], pytest.approx(r[4], rel=1e-12), r[5]) for r in rows}
    assert got == expected


# ------------------------------------------------------------------------------------------- cookbook


def test_every_contagion_query_in_the_docs_is_checked() -> None:
    assert set(_cookbook()) == set(CHECKED)


def _run_query(db: str, name: str) -> list[tuple[Any, ...]]:
    return _rows(db, _cookbook()[name])


def check_latest_runs(db: str, runs: list[Run]) -> None:
    rows = _run_query(db, "contagion_latest_runs")
    assert [r[:4] for r in rows] == [
        (run.run_id, 4_242, seed, n) for run, (n, seed) in reversed(list(zip(runs, RUNS, strict=True)))
    ]
    for row, run in zip(rows, reversed(runs), strict=True):
        from graph.tail import expected_shortfall, value_at_risk

        assert row[4] == _money(value_at_risk(run.losses, Q))
        assert _near(row[5], expected_shortfall(run.losses, Q))
        assert row[6] == sum(1 for x in run.losses if x > 0)


def check_top_var99_wallets(db: str, runs: list[Run]) -> None:
    latest = runs[-1]
    contributors = latest.contributors()
    es99 = sum(v[0] for v in contributors.values())
    ranked = sorted(
        ((key, v) for key, v in contributors.items() if v[0] > 0), key=lambda kv: (-kv[1][0], kv[0])
    )[:10]
    rows = _run_query(db, "contagion_top_var99_wallets")
    assert [(r[0], r[1]) for r in rows] == [key for key, _ in ranked] and rows
    for row, (_, (es_debt, _, var_debt, scenarios)) in zip(rows, ranked, strict=True):
        assert _near(row[2], es_debt) and row[4] == _money(var_debt) and row[5] == scenarios
        assert abs(row[3] - Decimal(100 * es_debt / es99).quantize(Decimal("0.1"))) <= Decimal("0.1")


def check_worst_scenarios(db: str, runs: list[Run]) -> None:
    latest = runs[-1]
    worst = sorted(latest.rank, key=lambda s: -latest.rank[s])[:5]
    rows = _run_query(db, "contagion_worst_scenarios")
    assert [r[0] for r in rows] == worst
    for row, s in zip(rows, worst, strict=True):
        o = latest.outcomes[s]
        assert row[1] == {WETH: float(latest.factors[s, 0])} and row[2] == o.depth
        assert _near(row[3], o.liquidated) and row[4] == _money(o.bad_debt)


def check_tail_bad_debt_by_asset(db: str, runs: list[Run]) -> None:
    latest = runs[-1]
    tail: dict[tuple[str, str], float] = defaultdict(float)
    for s in latest.tail:
        for (market, asset), usd in latest.outcomes[s].by_asset.items():
            tail[(market, {WETH: "WETH", USDC: "USDC"}[asset])] += latest.weight[s] * usd
    rows = _run_query(db, "contagion_tail_bad_debt_by_asset")
    assert {(r[0], r[1]) for r in rows} == set(tail) and rows
    for market, symbol, usd in rows:
        assert _near(usd, tail[(market, symbol)])


def check_most_liquidated_wallets(db: str, runs: list[Run]) -> None:
    latest = runs[-1]
    liquidated: dict[tuple[str, str], list[float]] = defaultdict(list)
    for s in range(len(latest.outcomes)):
        for key, usd in latest.repaid(s).items():
            liquidated[key].append(usd)
    ranked = sorted(liquidated.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]
    rows = _run_query(db, "contagion_most_liquidated_wallets")
    assert [(r[0], r[1], r[2]) for r in rows] == [(*key, len(v)) for key, v in ranked] and rows
    for row, (_, values) in zip(rows, ranked, strict=True):
        assert _near(row[3], sum(values) / len(values))


CHECKED = {
    "contagion_latest_runs": check_latest_runs,
    "contagion_top_var99_wallets": check_top_var99_wallets,
    "contagion_worst_scenarios": check_worst_scenarios,
    "contagion_tail_bad_debt_by_asset": check_tail_bad_debt_by_asset,
    "contagion_most_liquidated_wallets": check_most_liquidated_wallets,
}


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_cookbook_query(stored: tuple[str, list[Run]], name: str) -> None:
    db, runs = stored
    CHECKED[name](db, runs)


# ------------------------------------------------------------------------------------------- reader role


def test_the_reader_reads_the_contagion_views_not_the_tables(stored: tuple[str, list[Run]]) -> None:
    from chainrisk.db import grant_reader
    from chainrisk.reader import reader_views

    db, _ = stored
    assert set(VIEWS) <= set(reader_views())
    name = f"reader_{uuid.uuid4().hex[:8]}"
    conninfo = to_libpq_url(db)
    grant_reader(db, name, f"pw-{name}", sorted(reader_views()))
    try:
        with psycopg.connect(
            conninfo.replace("://postgres@", f"://{name}:pw-{name}@"), autocommit=True
        ) as conn:
            for view in VIEWS:
                count = conn.execute(f"SELECT count(*) FROM {view}").fetchone()
                assert count is not None and count[0] > 0, view
            for sql in _cookbook().values():
                assert conn.execute(sql).fetchall()
            for table in contagion_metadata.tables:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT 1 FROM {table} LIMIT 1")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM contagion_runs")
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


# ------------------------------------------------------------------------------------------- schema


def test_the_views_module_equals_the_migrated_views(stored: tuple[str, list[Run]]) -> None:
    db, _ = stored
    query = (
        "SELECT c.relname, pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class') FROM pg_class c"
        " WHERE c.relkind = 'v' AND c.relname LIKE 'contagion\\_%%' ORDER BY 1"
    )
    with psycopg.connect(to_libpq_url(db)) as conn:
        migrated = conn.execute(query).fetchall()
        assert [r[0] for r in migrated] == sorted(VIEWS)
        assert {r[0]: r[2] for r in migrated} == COMMENTS
        for sql in VIEWS.values():
            conn.execute(sql)
        assert conn.execute(query).fetchall() == migrated
        conn.rollback()


def test_the_declared_tables_equal_the_migration(stored: tuple[str, list[Run]]) -> None:
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db, _ = stored
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            # Every contagion_ table is declared by one of the two contagion modules; both are compared.
            diffs = compare_metadata(context, [contagion_metadata, surrogate_metadata])  # type: ignore[arg-type]
    finally:
        engine.dispose()
    assert [d for d in diffs if "contagion_" in str(d)] == []


def test_deleting_a_run_deletes_its_rows(db_url: str) -> None:
    run = _store(db_url, 12, 3)
    tables = [t for t in contagion_metadata.tables if t != "contagion_runs"]
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        assert conn.execute("SELECT count(*) FROM contagion_scenarios").fetchone() == (12,)
        conn.execute("DELETE FROM contagion_runs WHERE id = %s", (run.run_id,))
        for table in tables:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table


# ------------------------------------------------------------------------------------------- errors


def _save(db: str, **changes: Any) -> int:
    inputs = book()
    assets, factors, outcomes = drawn(inputs, 3, 1)
    parts: dict[str, Any] = {
        "inputs": inputs, "kind": "var", "seed": 1, "method": "student_t", "inputs_record": {},
        "summary": {}, "assets": assets, "factors": factors, "outcomes": outcomes, **changes,
    }  # fmt: skip
    with psycopg.connect(to_libpq_url(db)) as conn:
        return save_run(conn, **parts)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"outcomes": []}, "nothing to store: the run has no scenarios"),
        ({"factors": np.ones((2, 1))}, "factors of shape (2, 1): expected one row per scenario"),
        ({"assets": [WETH, USDC]}, "factors of shape (3, 1): expected one row per scenario and one column"),
        ({"seed": -1}, "seed -1: expected 0 to 9223372036854775807"),
        ({"kind": ""}, "kind '', method 'student_t': expected both named"),
        ({"summary": {"VaR99": float("nan")}}, "summary: not storable as JSON"),
    ],
)
def test_parts_that_do_not_fit_are_one_clear_error(db_url: str, changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(ContagionStoreError) as error:
        _save(db_url, **changes)
    assert needle in str(error.value) and error.value.exit_code == 2
    assert _rows(db_url, "SELECT count(*) FROM contagion_runs") == [(0,)]


def test_a_missing_run_or_table_is_one_clear_error(db_url: str) -> None:
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        with pytest.raises(ContagionStoreError, match="contagion run 999: not stored"):
            load_run(conn, 999)
        conn.execute("DROP TABLE contagion_runs CASCADE")
        conn.commit()
    with pytest.raises(ContagionStoreError, match="run `chainrisk migrate` first"):
        _save(db_url)


def test_a_run_with_morpho_bad_debt_loads_back(db_url: str) -> None:
    from dataclasses import replace

    from tests.graph.test_fastcascade_morpho import morpho_book

    morpho = morpho_book("0x" + "ab" * 32, (WETH, USDC), (18, 6), (2_000 * 10**8, 10**8), 20, seed=1)
    inputs = replace(book(), morpho=(morpho,))
    assets, factors, outcomes = drawn(inputs, 40, 5)
    assert any(o.by_market.get(morpho.market.id, 0.0) > 0 for o in outcomes)
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        run_id = save_run(
            conn, inputs=inputs, kind="var", seed=5, method="student_t", inputs_record={},
            summary={}, assets=assets, factors=factors, outcomes=outcomes,
        )  # fmt: skip
        loaded = load_run(conn, run_id)
    assert loaded.markets == [*MARKETS, morpho.market.id]
    for got, expected in zip(loaded.outcomes, outcomes, strict=True):
        assert (got.bad_debt, got.by_asset, got.by_wallet) == (
            expected.bad_debt,
            expected.by_asset,
            expected.by_wallet,
        )
        assert got.by_market == pytest.approx(expected.by_market, rel=1e-12, abs=1e-9)
