"""Every query in docs/SQL.md runs against real indexed data, its result is checked; the reader role."""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from chainrisk.db import grant_reader, to_libpq_url
from indexer.config import ChainConfig
from indexer.replay import ReplayServer, load_recording
from indexer.runner import adhoc_plan, run_plan
from indexer.views import VIEWS
from tests.conftest import ROOT, shared_file
from tests.recorded import _int, governor_alpha_logs

ALPHA = "governance/compound-governor-alpha-events.csv"
QUERY = re.compile(r"```sql\n-- id: (\w+)\n(.*?)```", re.S)


def _queries() -> dict[str, str]:
    return dict(QUERY.findall((ROOT / "docs" / "SQL.md").read_text()))


def _index_file(path: Path, db: str, max_range: int = 2000) -> None:
    recording = load_recording([path])
    with ReplayServer(recording) as server:
        chain = ChainConfig(name="mainnet", chain_id=1, rpc_urls=[server.url], max_block_range=max_range)
        plan = adhoc_plan(chain, (), recording.first, recording.last, follow=False, name=path.name)
        run_plan(plan, to_libpq_url(db))


@pytest.fixture(scope="module")
def seeded(templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        folder = tmp_path_factory.mktemp("alpha")
        alpha = folder / "alpha.jsonl"
        alpha.write_text("\n".join(json.dumps(x) for x in governor_alpha_logs(shared_file(ALPHA))))
        _index_file(alpha, db, max_range=1_000_000)
        _index_file(shared_file("chain/mainnet-block-18000000-logs.json"), db)
        _index_file(shared_file("chain/mainnet-aave-v3-window-25290309-logs.json"), db)
        yield db


def _run(db: str, name: str) -> list[tuple[object, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return [tuple(r) for r in conn.execute(_queries()[name]).fetchall()]


def _alpha_rows() -> list[dict[str, str]]:
    with shared_file(ALPHA).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_document_lists_every_checked_query() -> None:
    assert set(_queries()) == set(CHECKS)


def test_proposal_margins(seeded: str) -> None:
    tally: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in _alpha_rows():
        if row["event_name"] == "VoteCast":
            t = tally[_int(row["proposalId"])]
            t[0] += 1
            t[1 if row["support"] == "True" else 2] += _int(row["votes"])
    rows = _run(seeded, "proposal_margins")
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    for proposal_id, title, state, voters, for_votes, against in rows:
        n, f, a = tally[int(str(proposal_id))]
        assert (voters, for_votes, against) == (
            n,
            round(Decimal(f) / Decimal(10**18)),
            round(Decimal(a) / Decimal(10**18)),
        )
        assert state == "executed" and title
    assert rows[0][1] == "Add USDT Support"


def test_top_voters(seeded: str) -> None:
    heaviest: dict[str, int] = defaultdict(int)
    for row in _alpha_rows():
        if row["event_name"] == "VoteCast":
            voter = row["voter"].lower()
            heaviest[voter] = max(heaviest[voter], _int(row["votes"]))
    expected = sorted(heaviest, key=lambda v: heaviest[v], reverse=True)[:5]
    assert [r[0] for r in _run(seeded, "top_voters")] == expected


def test_whales_on_contested(seeded: str) -> None:
    rows = _run(seeded, "whales_on_contested")
    assert len(rows) == 10
    assert len({r[0] for r in rows}) == 1
    assert {r[2] for r in rows} <= {"for", "against"}
    assert any(r[2] == "against" for r in rows)


def test_not_executed(seeded: str) -> None:
    created = {_int(r["id"]) for r in _alpha_rows() if r["event_name"] == "ProposalCreated"}
    executed = {_int(r["id"]) for r in _alpha_rows() if r["event_name"] == "ProposalExecuted"}
    rows = _run(seeded, "not_executed")
    assert [int(str(r[0])) for r in rows] == sorted(created - executed)
    canceled = {_int(r["id"]) for r in _alpha_rows() if r["event_name"] == "ProposalCanceled"}
    assert {int(str(r[0])) for r in rows if r[1] == "canceled"} == canceled


def test_largest_borrows(seeded: str) -> None:
    rows = _run(seeded, "largest_borrows")
    assert len(rows) == 3
    amounts = [Decimal(str(r[3])) for r in rows]
    assert amounts == sorted(amounts, reverse=True)
    borrow_18m = (
        18_000_000,
        "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
        "0xdf455882303fa4fa16bd96da7f0ae3b13983cc4c",
        Decimal(8_000_000_000),
    )
    with psycopg.connect(to_libpq_url(seeded)) as conn:
        row = conn.execute(
            "SELECT block_number, reserve, on_behalf_of, amount FROM aave_v3_borrow"
            " WHERE block_number = 18000000"
        ).fetchone()
    assert row == borrow_18m


def test_quarantine_reasons(seeded: str) -> None:
    rows = _run(seeded, "quarantine_reasons")
    assert rows == [
        ("Transfer(address,address,uint256)", "expected 3 topics, got 4", 2),
        ("Approval(address,address,uint256)", "expected 3 topics, got 4", 1),
    ]


CHECKS = {
    "proposal_margins": test_proposal_margins,
    "top_voters": test_top_voters,
    "whales_on_contested": test_whales_on_contested,
    "not_executed": test_not_executed,
    "largest_borrows": test_largest_borrows,
    "quarantine_reasons": test_quarantine_reasons,
}


def test_reader_role_reads_views_only(seeded: str) -> None:
    name = f"reader_{uuid.uuid4().hex[:8]}"
    grant_reader(seeded, name, None, sorted(VIEWS))
    base = to_libpq_url(seeded).replace("postgres:@", f"{name}:@").replace("://postgres@", f"://{name}@")
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM proposals").fetchone() == (42,)
            for statement in (
                "SELECT count(*) FROM logs",
                "SELECT count(*) FROM gov_alpha_vote_cast",
                "DELETE FROM logs",
                "INSERT INTO cursors VALUES ('x', 1, 1, 'h', now())",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        with psycopg.connect(to_libpq_url(seeded), autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


def test_bad_role_name_is_refused(seeded: str) -> None:
    with pytest.raises(ValueError, match="role name 'Robert; DROP'"):
        grant_reader(seeded, "Robert; DROP", None, ["votes"])
