"""Every query in docs/SQL.md runs against real indexed data, its result is checked; the reader role."""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.db import grant_reader, to_libpq_url
from indexer.config import ChainConfig
from indexer.replay import ReplayServer, load_recording
from indexer.runner import adhoc_plan, run_plan
from indexer.views import VIEWS
from tests.conftest import ROOT, data_file
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
        alpha.write_text("\n".join(json.dumps(x) for x in governor_alpha_logs(data_file(ALPHA))))
        _index_file(alpha, db, max_range=1_000_000)
        _index_file(data_file("chain/mainnet-block-18000000-logs.json"), db)
        _index_file(data_file("chain/mainnet-aave-v3-window-25290309-logs.json"), db)
        yield db


def _run(db: str, name: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return [tuple(r) for r in conn.execute(_queries()[name]).fetchall()]


def _alpha_rows() -> list[dict[str, str]]:
    with data_file(ALPHA).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_document_lists_every_checked_query() -> None:
    assert {q for q in _queries() if not q.startswith("contagion_")} == set(CHECKS)


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
    """A database indexed from a devnet after a short seeded scenario, with the positions kept (and their
    history recorded) while indexing, then refreshed at the head."""
    import tomllib

    from devnet.aave import deploy_markets
    from devnet.anvil import Anvil
    from devnet.governance import default_holders, deploy_governance, manifest_with_governance
    from devnet.scenario import simulate
    from devnet.serve import indexer_toml
    from indexer.catalog import sync_config
    from indexer.config import IndexConfig
    from indexer.lending.health import indexed_head, pools, refresh
    from indexer.lending.keeper import PositionKeeper
    from indexer.runner import config_plan
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            deployment = deploy_markets(node, node_home)
            governance = deploy_governance(deployment, node_home, default_holders())
            result = simulate(deployment, 3, 30, 5, governance=governance)
            manifest = manifest_with_governance(deployment.to_manifest(), governance)
            config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": node.url})))
            with psycopg.connect(to_libpq_url(db)) as conn:
                sync_config(conn, config.chains, config.tokens, config.labels)
            plan = config_plan(config.chains[0], config.contracts, None, False)
            with PositionKeeper(to_libpq_url(db), 31337) as keeper:
                run_plan(plan, to_libpq_url(db), listener=keeper)
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


def _rows_of(db: str, query: str) -> list[tuple[Any, ...]]:
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


# --- across Aave v3 and Morpho Blue: the answers against the current rows, read here in Python ---------


@pytest.fixture(scope="module")
def morpho_seeded(templates: dict[str, str], node_home: Path) -> Iterator[str]:
    """A devnet with Aave and Morpho Blue after a short scenario, indexed with the positions kept."""
    import tomllib

    from devnet.aave import deploy_markets
    from devnet.anvil import Anvil
    from devnet.morpho import deploy_morpho, manifest_with_morpho
    from devnet.scenario import simulate
    from devnet.serve import indexer_toml
    from indexer.catalog import sync_config
    from indexer.config import IndexConfig
    from indexer.lending.keeper import PositionKeeper
    from indexer.lending.morpho import sync_oracles
    from indexer.runner import config_plan
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            deployment = deploy_markets(node, node_home)
            morpho = deploy_morpho(deployment, node_home)
            simulate(deployment, 2, 30, 5, morpho=morpho)
            manifest = manifest_with_morpho(deployment.to_manifest(), morpho)
            config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": node.url})))
            with psycopg.connect(to_libpq_url(db)) as conn:
                sync_config(conn, config.chains, config.tokens, config.labels)
                sync_oracles(conn, config.chains, config.morpho_oracles)
            with PositionKeeper(to_libpq_url(db), 31337, period_s=0) as keeper:
                run_plan(
                    config_plan(config.chains[0], config.contracts, None, False),
                    to_libpq_url(db),
                    listener=keeper,
                )
        yield db


def _by_asset(db: str) -> list[tuple[str, str, str, str, int, int, bool]]:
    """(protocol, user, asset, symbol, collateral base, debt base, enabled) of every current position row."""
    rows = _rows_of(
        db,
        "SELECT r.protocol, r.user_address, r.asset, k.symbol, r.collateral_base, r.debt_base,"
        " r.collateral_enabled FROM position_reserves r"
        " JOIN tracked_tokens k ON k.chain_id = r.chain_id AND k.token = r.asset",
    )
    return [
        (str(p), str(u), str(a), str(s), int(str(c)), int(str(d)), bool(e)) for p, u, a, s, c, d, e in rows
    ]


def _usd(base: int) -> Decimal:
    return _half_up(Decimal(base) / 10**8, 0)


def test_borrowers_on_both_protocols(morpho_seeded: str) -> None:
    from indexer.lending.morpho import morpho_markets, usd_prices

    db = morpho_seeded
    debt: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for protocol, user, _, _, _, d, _ in _by_asset(db):
        debt[user][protocol] += d
    both = {u: by for u, by in debt.items() if by["aave_v3"] and by["morpho_blue"]}
    rows = _run(db, "borrowers_on_both_protocols")
    assert {r[0]: (r[1], r[2]) for r in rows} == {
        u: (_usd(by["aave_v3"]), _usd(by["morpho_blue"])) for u, by in both.items()
    }
    assert len(rows) >= 2
    # Each Morpho side is what the wallets' borrow shares owe at the loan token's feed, rounded up.
    with psycopg.connect(to_libpq_url(db)) as conn:
        head = int(str(conn.execute("SELECT max(block_number) FROM cursors").fetchone()[0]))  # type: ignore[index]
        owed: dict[str, int] = defaultdict(int)
        for market in morpho_markets(conn, 31337, head):
            loan = usd_prices(conn, market)[1]
            for user in market.users:
                owed[user] += loan.value(market.borrowed(user), up=True)
    assert all(owed[u] == by["morpho_blue"] for u, by in both.items())


def test_collateral_pledged_on_both(morpho_seeded: str) -> None:
    db = morpho_seeded
    pledged: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for protocol, user, _, symbol, c, _, enabled in _by_asset(db):
        if enabled and c > 0:
            pledged[(user, symbol)][protocol] += c
    expected = {
        k: (_usd(by["aave_v3"]), _usd(by["morpho_blue"])) for k, by in pledged.items() if len(by) == 2
    }
    rows = _run(db, "collateral_pledged_on_both")
    assert {(r[0], r[1]): (r[2], r[3]) for r in rows} == expected and expected


def test_exposure_by_asset(morpho_seeded: str) -> None:
    db = morpho_seeded
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for protocol, _, _, symbol, c, d, enabled in _by_asset(db):
        side = 0 if protocol == "aave_v3" else 1
        sums[symbol][side] += c if enabled else 0
        sums[symbol][2 + side] += d
    rows = _run(db, "exposure_by_asset")
    got = {r[0]: tuple(r[1:]) for r in rows}
    for symbol, (ac, mc, ad, md) in sums.items():
        assert got[symbol] == (_usd(ac), _usd(mc), _usd(ad), _usd(md), _usd(ac + mc), _usd(ad + md))
    assert any(s[1] for s in sums.values()) and any(s[3] for s in sums.values())


# --- lending history: the cookbook's answers against the raw history rows, read here in Python --------


def _history(db: str) -> list[tuple[str, str, int, int | None, Any, Any, int, int, int]]:
    rows = _rows_of(
        db,
        "SELECT pool, user_address, block_number, valid_to, block_time, valid_to_time,"
        " total_collateral_base, total_debt_base, health_factor FROM account_health_history",
    )
    return [
        (str(r[0]), str(r[1]), int(r[2]), None if r[3] is None else int(r[3]), r[4], r[5],
         int(str(r[6])), int(str(r[7])), int(str(r[8])))
        for r in rows
    ]  # fmt: skip


def _as_of_day_end(history: list[Any], day: Any) -> list[Any]:
    from datetime import UTC, datetime, time, timedelta

    end = datetime.combine(day + timedelta(days=1), time(), UTC)
    return [h for h in history if h[4] < end and (h[5] is None or h[5] >= end)]


def _half_up(value: Decimal, places: int) -> Decimal:
    from decimal import ROUND_HALF_UP

    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def test_wallet_hf_daily(devnet_seeded: tuple[str, Any]) -> None:
    from datetime import timedelta

    db, _ = devnet_seeded
    history = _history(db)
    pool, user = _rows_of(
        db, "SELECT pool, user_address FROM positions_current ORDER BY debt_usd DESC NULLS LAST LIMIT 1"
    )[0]
    last = max(h[4] for h in history).date()
    expected = []
    for offset in range(29, -1, -1):
        day = last - timedelta(days=offset)
        mine = [h for h in _as_of_day_end(history, day) if (h[0], h[1]) == (pool, user)]
        expected += [
            (day, _half_up(Decimal(h[8]) / 10**18, 4), _half_up(Decimal(h[7]) / 10**8, 0)) for h in mine
        ]
    assert _run(db, "wallet_hf_daily") == expected
    assert len(expected) >= 3  # the scenario spans days


def test_collateral_under_hf_1_1_daily(devnet_seeded: tuple[str, Any]) -> None:
    from datetime import timedelta

    db, _ = devnet_seeded
    history = _history(db)
    first, last = min(h[4] for h in history).date(), max(h[4] for h in history).date()
    expected = []
    day = first
    while day <= last:
        near = [h for h in _as_of_day_end(history, day) if h[7] > 0 and h[8] < 11 * 10**17]
        if near:
            collateral = _half_up(Decimal(sum(h[6] for h in near)) / 10**8, 0)
            debt = _half_up(Decimal(sum(h[7] for h in near)) / 10**8, 0)
            expected.append((day, len(near), collateral, debt))
        day += timedelta(days=1)
    assert _run(db, "collateral_under_hf_1_1_daily") == expected
    assert expected, "the scenario's crash leaves accounts under 1.1 on some day"


def test_at_risk_before_first_liquidation(devnet_seeded: tuple[str, Any]) -> None:
    db, _ = devnet_seeded
    (block, borrower), *_ = _rows_of(
        db, "SELECT block_number, borrower FROM liquidations ORDER BY block_number, log_index LIMIT 1"
    )
    at = int(block) - 1
    held = [
        h for h in _history(db) if h[2] <= at and (h[3] is None or h[3] > at) and h[7] > 0 and h[8] < 10**18
    ]
    expected = sorted(
        (h[0], h[1], _half_up(Decimal(h[8]) / 10**18, 4), _half_up(Decimal(h[6]) / 10**8, 0),
         _half_up(Decimal(h[7]) / 10**8, 0))
        for h in held
    )  # fmt: skip
    rows = _run(db, "at_risk_before_first_liquidation")
    assert rows == sorted(expected, key=lambda r: (r[2], r[1]))
    assert borrower in {r[1] for r in rows}  # the chain liquidated someone the history had as liquidatable


# The indexed PoolConfigurator events, read table by table: (subject column, {parameter: value column}).
_CONFIGURATOR_EVENTS = {
    "aave_v3_collateral_configuration_changed": (
        "asset",
        {
            "ltv": "ltv",
            "liquidation_threshold": "liquidation_threshold",
            "liquidation_bonus": "liquidation_bonus",
        },
    ),
    "aave_v3_supply_cap_changed": ("asset", {"supply_cap": "new_supply_cap"}),
    "aave_v3_borrow_cap_changed": ("asset", {"borrow_cap": "new_borrow_cap"}),
    "aave_v3_reserve_factor_changed": ("asset", {"reserve_factor": "new_reserve_factor"}),
    "aave_v3_debt_ceiling_changed": ("asset", {"debt_ceiling": "new_debt_ceiling"}),
    "aave_v3_liquidation_protocol_fee_changed": ("asset", {"liquidation_protocol_fee": "new_fee"}),
    "aave_v3_emode_asset_category_changed": ("asset", {"emode_category": "new_category_id"}),
    "aave_v3_emode_category_added": (
        "category_id",
        {
            "emode_ltv": "ltv",
            "emode_liquidation_threshold": "liquidation_threshold",
            "emode_liquidation_bonus": "liquidation_bonus",
        },
    ),
}


def _configurator_history(db: str) -> dict[tuple[str, str, str], list[tuple[int, int, int]]]:
    """(configurator, asset or category id, parameter) -> [(block, log index, value)] in chain order."""
    history: dict[tuple[str, str, str], list[tuple[int, int, int]]] = defaultdict(list)
    for table, (subject, columns) in _CONFIGURATOR_EVENTS.items():
        for parameter, column in columns.items():
            query = f"SELECT address, {subject}, block_number, log_index, {column} FROM {table}"
            for address, key, block, index, value in _rows_of(db, query):
                event = (int(str(block)), int(str(index)), int(str(value)))
                history[(str(address), str(key), parameter)].append(event)
    return {k: sorted(v) for k, v in history.items()}


def _check_view_against_chain(db: str, result: Any) -> None:
    """risk_param_changes lists exactly the scenario's changes, as the configurator applied them."""
    tokens = {symbol: token for token, symbol in _symbols(db).items()}
    executed = {p.proposal_id: p for p in result.proposals if p.state == "Executed"}
    rows = _rows_of(
        db,
        "SELECT proposal_id, configurator, function, asset, emode_category, parameter, old_value, new_value,"
        " state, executed_block FROM risk_param_changes",
    )
    expected = sorted(
        (pid, c.function, tokens[c.asset] if c.asset else None, c.emode_category, c.parameter, c.value)
        for pid, p in executed.items()
        for c in p.changes
    )
    assert sorted((int(str(r[0])), *r[2:6], int(str(r[7]))) for r in rows) == expected
    history = _configurator_history(db)
    for pid, configurator, _, asset, category, parameter, old, new, state, block in rows:
        assert state == "executed" and block == executed[int(str(pid))].executed_block
        events = history[(str(configurator), str(asset or category), str(parameter))]
        # The call's value is the one the configurator emitted at execution; the old one came before.
        assert [v for b, _, v in events if b == block] == [new]
        before = [v for b, _, v in events if b < int(str(block))]
        assert old == (before[-1] if before else None)


def test_risk_changes_and_whale_votes(devnet_seeded: tuple[str, Any]) -> None:
    from devnet.aave import AAVE_MARKET
    from devnet.governance import default_holders

    db, result = devnet_seeded
    holders = default_holders()
    _check_view_against_chain(db, result)
    tokens = {symbol: token for token, symbol in _symbols(db).items()}
    changes = {
        (p.proposal_id, tokens[c.asset]): (p, c.asset, c.value)
        for p in result.proposals
        if p.state == "Executed"
        for c in p.changes
        if c.parameter == "liquidation_threshold" and c.asset
    }
    assert len(changes) == 2  # the scenario's WETH and wstETH proposals
    assert any(c.parameter != "liquidation_threshold" for p in result.proposals for c in p.changes)
    by_change: dict[tuple[int, str], list[tuple[object, ...]]] = defaultdict(list)
    for row in _run(db, "risk_changes_and_whale_votes"):
        by_change[(int(str(row[0])), str(row[4]))].append(row)
    assert set(by_change) == set(changes)  # proposals that leave thresholds alone are not listed
    for key, (outcome, symbol, value) in changes.items():
        votes = by_change[key]
        # Every delegate voted, as the scenario recorded, with its whole balance, largest first.
        assert {str(v[5]): v[7] for v in votes} == {a: holders[a] // 10**18 for a in outcome.votes}
        assert [str(v[6]) for v in votes] == [outcome.votes[str(v[5])] for v in votes]
        weights = [Decimal(str(v[7])) for v in votes]
        assert weights == sorted(weights, reverse=True)
        state, old_lt, new_lt = votes[0][1:4]
        # Each reserve's threshold changes once in the scenario: before, it had its deployed value.
        assert state == "executed" and new_lt == value
        assert old_lt == AAVE_MARKET.reserves[symbol].liquidation_threshold != new_lt


def test_cap_and_factor_changes(devnet_seeded: tuple[str, Any]) -> None:
    from devnet.aave import AAVE_MARKET

    db, result = devnet_seeded
    tokens = {symbol: token for token, symbol in _symbols(db).items()}
    deployed = {"supply_cap": "supply_cap", "borrow_cap": "borrow_cap", "reserve_factor": "reserve_factor"}
    expected = sorted(
        (
            p.executed_block,
            p.proposal_id,
            tokens[c.asset],
            c.parameter,
            getattr(AAVE_MARKET.reserves[c.asset], deployed[c.parameter]),
            c.value,
        )
        for p in result.proposals
        if p.state == "Executed"
        for c in p.changes
        if c.parameter in deployed and c.asset
    )
    assert {e[3] for e in expected} == set(deployed)  # the scenario changes a cap of each kind and a factor
    rows = _run(db, "cap_and_factor_changes")
    assert [(r[2], int(str(r[0])), str(r[3]), r[4], r[5], r[6]) for r in rows] == expected
    assert all(r[1] == "executed" for r in rows)
    # The new values are what the configurator emitted at execution.
    emitted = {
        (block, asset, parameter): value
        for (_, asset, parameter), events in _configurator_history(db).items()
        for block, _, value in events
    }
    assert all(emitted[(int(str(r[2])), str(r[3]), str(r[4]))] == r[6] for r in rows)


def test_risk_param_changes_decodes_signature_calls(db_url: str) -> None:
    """Bravo/Alpha calls (signature apart from the arguments) and OpenZeppelin calls decode alike, exactly."""
    from eth_abi.abi import encode
    from eth_utils.crypto import keccak

    configurator, asset, other = "0x" + "c0" * 20, "0x" + "a5" * 20, "0x" + "0e" * 20
    huge = 2**255 + 7  # beyond bigint: decoded exactly all the same
    with_selector = keccak(text="setEModeCategory(uint8,uint16,uint16,uint16,address,string)")[:4]

    def reserve_args(value: int) -> bytes:
        return encode(["address", "uint256"], [asset, value])

    calls = [  # (target, signature, calldata)
        (configurator, "setSupplyCap(address,uint256)", reserve_args(huge)),
        (configurator, "setDebtCeiling(address,uint256)", reserve_args(250_000_00)),
        (configurator, "_setCollateralFactor(address,uint256)", reserve_args(1)),  # not a configurator call
        (
            configurator.upper().replace("0X", "0x"),
            "",
            with_selector
            + encode(
                ["uint8", "uint16", "uint16", "uint16", "address", "string"],
                [2, 9_000, 9_300, 10_200, other, "stables"],
            ),
        ),
    ]
    created = (
        "INSERT INTO gov_proposal_created (chain_id, block_number, log_index, block_hash, tx_hash,"
        " address, proposal_id, proposer, targets, call_values, signatures, calldatas, vote_start, vote_end,"
        " description)"
        " VALUES (1, 100, 0, '0xb', '0xt', '0xg0', 7, '0xp', %s, %s, %s, %s, 101, 200, '# Caps\nwhy')"
    )
    cap = (
        "INSERT INTO aave_v3_supply_cap_changed (chain_id, block_number, log_index, block_hash, tx_hash,"
        " address, asset, old_supply_cap, new_supply_cap) VALUES (1, %s, 0, '0xb', '0xt', %s, %s, 0, %s)"
    )
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        conn.execute(
            created,
            [
                json.dumps([t for t, _, _ in calls]),
                json.dumps([0] * len(calls)),
                json.dumps([sig for _, sig, _ in calls]),
                json.dumps(["0x" + data.hex() for _, _, data in calls]),
            ],
        )
        conn.execute(cap, [50, configurator, asset, 1_000])
        conn.execute(cap, [150, configurator, asset, 2_000])  # not executed: the latest value counts
        conn.execute(cap, [160, other, asset, 3_000])  # another configurator's reserve
        rows = conn.execute(
            "SELECT title, state, executed_block, configurator, function, asset, emode_category, parameter,"
            " old_value, new_value FROM risk_param_changes ORDER BY parameter"
        ).fetchall()
    head = ("Caps", "created", None, configurator)
    assert [tuple(r) for r in rows] == [
        (*head, "setDebtCeiling", asset, None, "debt_ceiling", None, 250_000_00),
        (*head, "setEModeCategory", None, 2, "emode_liquidation_bonus", None, 10_200),
        (*head, "setEModeCategory", None, 2, "emode_liquidation_threshold", None, 9_300),
        (*head, "setEModeCategory", None, 2, "emode_ltv", None, 9_000),
        (*head, "setSupplyCap", asset, None, "supply_cap", 2_000, huge),
    ]


def _symbols(db: str) -> dict[str, str]:
    return {str(t): str(s) for t, s in _rows_of(db, "SELECT token, symbol FROM tracked_tokens")}


def _reserves(db: str) -> list[tuple[str, str, str, int, int, bool, int]]:
    rows = _rows_of(
        db,
        "SELECT pool, user_address, asset, collateral_base, debt_base, collateral_enabled,"
        " liquidation_threshold_bps FROM position_reserves",
    )
    return [
        (str(p), str(u), str(a), int(str(c)), int(str(d)), bool(e), int(str(t)))
        for p, u, a, c, d, e, t in rows
    ]


def test_top_usdc_borrowers(devnet_seeded: tuple[str, Any]) -> None:
    db, _ = devnet_seeded
    usdc = {t for t, s in _symbols(db).items() if s == "USDC"}
    debts = sorted(((d, p, u) for p, u, a, _, d, _, _ in _reserves(db) if a in usdc and d), reverse=True)
    health = {
        (p, u): hf
        for p, u, hf in _rows_of(db, "SELECT pool, user_address, health_factor FROM account_health")
    }
    rows = _run(db, "top_usdc_borrowers")
    assert len(rows) == min(10, len(debts)) > 0
    for (pool, user, debt_usd, hf), (debt, p, u) in zip(rows, debts, strict=False):
        assert (pool, user, debt_usd) == (p, u, round(Decimal(debt) / 10**8))
        assert hf == round(Decimal(int(str(health[(p, u)]))) / 10**18, 3)


def _shocked_accounts(db: str, move: Fraction) -> dict[tuple[str, str], Fraction]:
    """Health factor of every borrower after ETH-like assets move by `move`, in exact fractions."""
    eth = {t for t, s in _symbols(db).items() if s in {"WETH", "wstETH"}}
    threshold: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    debt: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    for pool, user, asset, coll, owed, enabled, lt in _reserves(db):
        factor = 1 + move if asset in eth else Fraction(1)
        if enabled:
            threshold[(pool, user)] += Fraction(coll * lt, 10**4) * factor
        debt[(pool, user)] += owed * factor
    return {k: threshold[k] / d for k, d in debt.items() if d > 0}


def test_liquidatable_if_eth_falls_20(devnet_seeded: tuple[str, Any]) -> None:
    from graph.at_risk import at_risk

    db, _ = devnet_seeded
    now = {
        (str(p), str(u)): int(str(h))
        for p, u, h in _rows_of(db, "SELECT pool, user_address, health_factor FROM account_health")
    }
    eth = [t for t, s in _symbols(db).items() if s in {"WETH", "wstETH"}]
    query = _queries()["liquidatable_if_eth_falls_20"]
    # The seeded market survives -20% untouched, so the same query is also checked at deeper falls.
    for fall, factor in ((Fraction(1, 5), "0.8"), (Fraction(3, 10), "0.7"), (Fraction(2, 5), "0.6")):
        after = _shocked_accounts(db, -fall)
        expected = sorted((hf, k[1]) for k, hf in after.items() if hf < 1 and now[k] >= 10**18)
        rows = _rows_of(db, query.replace("THEN 0.8 ELSE", f"THEN {factor} ELSE"))
        assert [str(r[1]) for r in rows] == [user for _, user in expected]
        assert [r[3] for r in rows] == [
            round(Decimal(hf.numerator) / hf.denominator, 3) for hf, _ in expected
        ]
        # The vectorised engine counts every account under 1 after the shock, those already under 1 too.
        with psycopg.connect(to_libpq_url(db)) as conn:
            engine = at_risk(conn, 31337, eth, [float(-fall)])[0]
        assert engine.liquidatable_accounts == sum(1 for hf in after.values() if hf < 1)
    assert rows, "the deepest fall must make some account liquidatable"


def test_liquidated_usd_by_collateral(devnet_seeded: tuple[str, Any]) -> None:
    db, result = devnet_seeded
    rows = _run(db, "liquidated_usd_by_collateral")
    counts = Counter(liquidation.collateral for liquidation in result.liquidations)
    assert {str(r[0]): int(str(r[1])) for r in rows} == dict(counts)
    per_row = _rows_of(
        db, "SELECT collateral_symbol, debt_repaid_usd, collateral_seized_usd FROM liquidations"
    )
    for symbol, _, repaid, seized in rows:
        mine = [(Decimal(d), Decimal(c)) for s, d, c in per_row if s == symbol]
        assert (repaid, seized) == (round(sum(d for d, _ in mine)), round(sum(c for _, c in mine)))
        assert seized > repaid > 0


def test_whales_to_exchanges(devnet_seeded: tuple[str, Any]) -> None:
    db, _ = devnet_seeded
    exchanges = {
        str(a): str(lb)
        for a, lb in _rows_of(db, "SELECT address, label FROM address_labels WHERE category = 'exchange'")
    }
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    for symbol, to, usd, threshold in _rows_of(
        db, "SELECT symbol, to_address, usd, whale_threshold_usd FROM token_transfers"
    ):
        if usd is not None and Decimal(usd) >= Decimal(threshold) and str(to) in exchanges:
            totals[(str(symbol), exchanges[str(to)])].append(Decimal(usd))
    expected = sorted(((round(sum(v)), k, len(v)) for k, v in totals.items()), reverse=True)[:10]
    rows = _run(db, "whales_to_exchanges")
    assert rows and [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (k[0], k[1], n, usd) for usd, k, n in expected
    ]


def test_largest_exchange_inflow_hours(devnet_seeded: tuple[str, Any]) -> None:
    db, _ = devnet_seeded
    exchanges = {
        str(a) for (a,) in _rows_of(db, "SELECT address FROM address_labels WHERE category = 'exchange'")
    }
    net: dict[tuple[str, object], Decimal] = defaultdict(Decimal)
    for symbol, time, source, to, usd in _rows_of(
        db, "SELECT symbol, block_time, from_address, to_address, usd FROM token_transfers"
    ):
        inbound, outbound = str(to) in exchanges, str(source) in exchanges
        if inbound != outbound:
            hour = time.replace(minute=0, second=0, microsecond=0)
            net[(str(symbol), hour)] += Decimal(usd) if inbound else -Decimal(usd)
    expected = sorted(net.items(), key=lambda kv: kv[1], reverse=True)[:5]
    rows = _run(db, "largest_exchange_inflow_hours")
    assert rows and [(r[0], r[1], r[4]) for r in rows] == [(k[0], k[1], round(v)) for k, v in expected]


CHECKS = {
    "wallet_hf_daily": test_wallet_hf_daily,
    "collateral_under_hf_1_1_daily": test_collateral_under_hf_1_1_daily,
    "at_risk_before_first_liquidation": test_at_risk_before_first_liquidation,
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
    "cap_and_factor_changes": test_cap_and_factor_changes,
    "top_usdc_borrowers": test_top_usdc_borrowers,
    "liquidatable_if_eth_falls_20": test_liquidatable_if_eth_falls_20,
    "liquidated_usd_by_collateral": test_liquidated_usd_by_collateral,
    "whales_to_exchanges": test_whales_to_exchanges,
    "borrowers_on_both_protocols": test_borrowers_on_both_protocols,
    "collateral_pledged_on_both": test_collateral_pledged_on_both,
    "exposure_by_asset": test_exposure_by_asset,
    "largest_exchange_inflow_hours": test_largest_exchange_inflow_hours,
}


def test_reader_role_reads_views_only(seeded: str) -> None:
    name = f"reader_{uuid.uuid4().hex[:8]}"
    grant_reader(seeded, name, f"pw-{name}", sorted(VIEWS))
    base = to_libpq_url(seeded).replace("://postgres@", f"://{name}:pw-{name}@")
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM proposals").fetchone() == (42,)
            conn.execute("SELECT count(*) FROM health_history")
            conn.execute("SELECT * FROM health_at(1)")
            conn.execute("SELECT * FROM health_daily('2024-01-01', '2024-01-02')")
            for statement in (
                "SELECT count(*) FROM account_health_history",
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


def test_indexer_read_api_agrees_with_the_views(seeded: str) -> None:
    from indexer.read import events_per_table, governance

    with psycopg.connect(to_libpq_url(seeded)) as conn:
        counts = events_per_table(conn)
        votes = governance(conn)
        logs = conn.execute("SELECT count(*) FROM logs WHERE chain_id = 1").fetchone()
    assert counts["logs"][1] == (logs[0] if logs else -1)
    assert "erc20_transfers" in counts and "aave_v3_borrow" in counts
    alpha = [row for row in _alpha_rows() if row["event_name"] == "ProposalCreated"]
    executed = [row for row in _alpha_rows() if row["event_name"] == "ProposalExecuted"]
    cast = [row for row in _alpha_rows() if row["event_name"] == "VoteCast"]
    assert (votes.proposals, votes.executed, votes.votes) == (len(alpha), len(executed), len(cast))


def test_token_flows_sum_the_whale_and_netflow_views(devnet_seeded: tuple[str, Any]) -> None:
    from indexer.read import token_flows

    db, _ = devnet_seeded
    whales: Counter[str] = Counter(str(r[0]) for r in _rows_of(db, "SELECT symbol FROM whale_flows"))
    with psycopg.connect(to_libpq_url(db)) as conn:
        flows = token_flows(conn, 31337)
    assert {f.symbol: f.whale_transfers for f in flows if f.whale_transfers} == dict(whales)
    assert sum(whales.values()) > 0
