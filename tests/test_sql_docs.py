"""Every query in docs/SQL.md runs against real indexed data, its result is checked; the reader role."""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def devnet_seeded(templates: dict[str, str], node_home: Path) -> Iterator[tuple[str, Any]]:
    """A database indexed from a devnet after a short seeded scenario, positions refreshed at the head."""
    import tomllib

    from devnet.aave import deploy_markets
    from devnet.anvil import Anvil
    from devnet.governance import default_holders, deploy_governance, manifest_with_governance
    from devnet.scenario import simulate
    from devnet.serve import indexer_toml
    from indexer.config import IndexConfig
    from indexer.health import indexed_head, pools, refresh
    from indexer.runner import config_plan
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            deployment = deploy_markets(node, node_home)
            governance = deploy_governance(deployment, node_home, default_holders())
            result = simulate(deployment, 3, 30, 5, governance=governance)
            manifest = manifest_with_governance(deployment.to_manifest(), governance)
            config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": node.url})))
            run_plan(config_plan(config.chains[0], config.contracts, None, False), to_libpq_url(db))
            with psycopg.connect(to_libpq_url(db)) as conn:
                head = indexed_head(conn, 31337)
                assert head is not None
                for pool in pools(conn, 31337):
                    refresh(conn, 31337, pool, head)
        yield db, result


def _health(db: str) -> list[tuple[str, int, int, int]]:
    rows = _rows_of(
        db, "SELECT pool, total_collateral_base, total_debt_base, health_factor FROM account_health"
    )
    return [(str(p), int(str(c)), int(str(d)), int(str(h))) for p, c, d, h in rows]


def _rows_of(db: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


def test_collateral_hf_1_to_1_1(devnet_seeded: tuple[str, Any]) -> None:
    db, _ = devnet_seeded
    near: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for pool, coll, debt, hf in _health(db):
        if debt and 10**18 <= hf < 11 * 10**17:
            near[pool][0] += 1
            near[pool][1] += coll
            near[pool][2] += debt
    expected = [
        (p, n, round(Decimal(c) / 10**8), round(Decimal(d) / 10**8)) for p, (n, c, d) in sorted(near.items())
    ]
    assert _run(db, "collateral_hf_1_to_1_1") == expected


def test_hf_buckets(devnet_seeded: tuple[str, Any]) -> None:
    db, _ = devnet_seeded
    rows = _run(db, "hf_buckets")
    borrowers = [h for h in _health(db) if h[2]]
    assert sum(int(str(r[2])) for r in rows) == len(borrowers) > 0
    under_one = sum(1 for h in borrowers if h[3] < 10**18)
    assert sum(int(str(r[2])) for r in rows if str(r[1]).startswith("0:")) == under_one


def test_top_borrowers(devnet_seeded: tuple[str, Any]) -> None:
    db, _ = devnet_seeded
    rows = _run(db, "top_borrowers")
    debts = sorted((h[2] for h in _health(db) if h[2]), reverse=True)[:10]
    assert [r[2] for r in rows] == [round(Decimal(d) / 10**8) for d in debts]


def test_most_liquidated(devnet_seeded: tuple[str, Any]) -> None:
    db, result = devnet_seeded
    counts = Counter(liquidation.user.lower() for liquidation in result.liquidations)
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(r[0], r[1]) for r in _run(db, "most_liquidated")] == expected
    assert len(result.liquidations) > 0


def test_risk_changes_and_whale_votes(devnet_seeded: tuple[str, Any]) -> None:
    db, result = devnet_seeded
    executed = [p for p in result.proposals if p.state == "Executed"]
    assert executed
    rows = _run(db, "risk_changes_and_whale_votes")
    by_proposal: dict[int, list[tuple[object, ...]]] = defaultdict(list)
    for row in rows:
        by_proposal[int(str(row[0]))].append(row)
    for outcome in executed:
        votes = by_proposal[outcome.proposal_id]
        assert {str(v[5]) for v in votes} == {voter.lower() for voter in outcome.votes}
        state, old_lt, new_lt = votes[0][1:4]
        assert state == "executed" and new_lt == outcome.liquidation_threshold
        assert old_lt is not None and old_lt != new_lt
    applied = _rows_of(
        db,
        "SELECT r.new_liquidation_threshold, e.liquidation_threshold FROM risk_param_changes r"
        " JOIN aave_v3_collateral_configuration_changed e ON e.block_number = r.executed_block"
        " AND e.asset = r.asset AND e.address = r.configurator",
    )
    assert applied and all(new == on_chain for new, on_chain in applied)


CHECKS = {
    "proposal_margins": test_proposal_margins,
    "top_voters": test_top_voters,
    "whales_on_contested": test_whales_on_contested,
    "not_executed": test_not_executed,
    "largest_borrows": test_largest_borrows,
    "quarantine_reasons": test_quarantine_reasons,
    "collateral_hf_1_to_1_1": test_collateral_hf_1_to_1_1,
    "hf_buckets": test_hf_buckets,
    "top_borrowers": test_top_borrowers,
    "most_liquidated": test_most_liquidated,
    "risk_changes_and_whale_votes": test_risk_changes_and_whale_votes,
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
