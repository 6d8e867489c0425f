"""Every decoded governor is in `proposals` and `votes`: Aave Governance v2, v3 and its VotingMachine beside
GovernorAlpha, each tally equal to its events summed here independently.

Recorded mainnet events: GovernorAlpha's export, Aave Governance v3 core events and every vote of the
Ethereum VotingMachine on proposal 356 with the machine's own ProposalResultsSent total (data/SOURCES.md).
They are encoded back into logs with the indexer's event specs (tests/recorded.py) and served by the
replay node. Aave Governance v2, and v3 proposals with VotingMachine votes and every state, are not in
those recordings: they are constructed here, at addresses of their own, and go through the same decoding.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_abi.abi import encode

from chainrisk.db import to_libpq_url
from indexer.config import ChainConfig, ContractConfig
from indexer.protocols import governance
from indexer.replay import ReplayServer, load_recording, placeholder_hash
from indexer.runner import config_plan, run_plan
from tests.conftest import data_file
from tests.recorded import _int, _log, governor_alpha_logs

ALPHA = "0xc0da01a04c3f3e0be433606045bb7017a7323e38"
AAVE_V2 = "0x" + "a2" * 20
AAVE_V3 = "0x" + "a3" * 20
VOTING_MACHINE = "0x" + "b3" * 20
# Recorded mainnet contracts.
CORE = "0x9aee0b04504cef83a65ac3f0e838d0593bcb2bc7"
MAINNET_MACHINE = "0x06a1795a88b82700896583e123f46be43877bfb6"
CORE_EVENTS = "governance/aave-v3-governance-core-events.csv"
MACHINE_EVENTS = "governance/aave-v3-voting-machine-356-events.csv"
CONFIGURATOR = "0x64b761d848206f447fe2dd461b0c635ec39ebb27"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
V2 = {s.name: s for s in governance.AAVE_V2_EVENTS}
V3 = {s.name: s for s in governance.AAVE_V3_EVENTS}
MACHINE = {s.name: s for s in governance.AAVE_V3_VOTING_EVENTS}


@dataclass
class Events:
    """The logs served, and the votes they carry, as (governor, proposal) -> [(voter, for?, power)]."""

    logs: list[dict[str, Any]]
    votes: dict[tuple[str, int], list[tuple[str, bool, int]]]


def _aave_events() -> Events:
    rng = random.Random(13)
    logs: list[dict[str, Any]] = []
    votes: dict[tuple[str, int], list[tuple[str, bool, int]]] = defaultdict(list)
    block = 20_000_000

    def emit(spec: Any, values: list[Any], address: str) -> None:
        nonlocal block
        block += 1
        tx = "0x" + rng.randbytes(32).hex()
        logs.append(_log(spec, values, address, block, placeholder_hash(block), tx, 0))

    lt_call = encode(["address", "uint256", "uint256", "uint256"], [WETH, 8_000, 8_250, 10_500])
    for pid in (1, 2, 3):
        creator = "0x" + rng.randbytes(20).hex()
        created: list[Any] = [pid, creator, "0xee56e2b3d491590b5b31738cc34d5232f378a8d5", [CONFIGURATOR], [0]]
        created += [["configureReserveAsCollateral(address,uint256,uint256,uint256)"], [lt_call], [False]]
        created += [block + 1, block + 100, "0xb7e383ef9b1e9189fc0f71fb30af8aa14377429e", rng.randbytes(32)]
        emit(V2["ProposalCreated"], created, AAVE_V2)
    for pid in (10, 11, 12):
        emit(V3["ProposalCreated"], [pid, "0x" + rng.randbytes(20).hex(), 1, rng.randbytes(32)], AAVE_V3)
    for pid, governor, spec, n in ((1, AAVE_V2, V2, 40), (2, AAVE_V2, V2, 25), (10, AAVE_V3, MACHINE, 30)):
        for _ in range(n):
            voter, support = "0x" + rng.randbytes(20).hex(), rng.random() < 0.7
            power = rng.randrange(10**15, 10**24)
            votes[(governor, pid)].append((voter, support, power))
            address = AAVE_V2 if governor == AAVE_V2 else VOTING_MACHINE
            emit(spec["VoteEmitted"], [pid, voter, support, power], address)
    emit(V2["ProposalQueued"], [1, 1_700_000_000, "0x" + "11" * 20], AAVE_V2)
    emit(V2["ProposalQueued"], [2, 1_700_086_400, "0x" + "11" * 20], AAVE_V2)
    emit(V2["ProposalExecuted"], [1, "0x" + "22" * 20], AAVE_V2)
    v10 = votes[(AAVE_V3, 10)]
    emit(
        V3["ProposalQueued"],
        [10, sum(p for _, s, p in v10 if s), sum(p for _, s, p in v10 if not s)],
        AAVE_V3,
    )
    emit(V3["ProposalQueued"], [12, 7 * 10**23, 2 * 10**23], AAVE_V3)
    emit(V3["ProposalExecuted"], [10], AAVE_V3)
    emit(V3["ProposalCanceled"], [11], AAVE_V3)
    return Events(logs, votes)


def _csv(relative: str) -> list[dict[str, str]]:
    with data_file(relative).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _recorded_aave_logs() -> list[dict[str, Any]]:
    """The recorded core and VotingMachine events as the logs the chain emitted."""
    logs = []
    for row in _csv(CORE_EVENTS) + _csv(MACHINE_EVENTS):
        name, pid = row["event_name"], int(row["proposal_id"])
        if name == "ProposalResultsSent":
            continue  # not decoded: the machine's total, used as the expected tally
        values: list[Any] = [pid]
        if name == "ProposalCreated":
            values += [row["creator"], int(row["access_level"]), bytes.fromhex(row["ipfs_hash"][2:])]
        elif name == "ProposalQueued":
            values += [int(row["votes_for"]), int(row["votes_against"])]
        elif name == "VoteEmitted":
            values += [row["voter"], row["support"] == "true", int(row["voting_power"])]
        spec = MACHINE[name] if name == "VoteEmitted" else V3[name]
        address = MAINNET_MACHINE if name == "VoteEmitted" else CORE
        block, index = int(row["block_number"]), int(row["log_index"])
        logs.append(_log(spec, values, address, block, row["block_hash"], row["tx_hash"], index))
    return logs


def _index(logs: list[dict[str, Any]], folder: Path, db: str, contracts: dict[str, str]) -> None:
    recording = folder / "recording.jsonl"
    recording.write_text("\n".join(json.dumps(log) for log in logs))
    with ReplayServer(load_recording([recording])) as server:
        chain = ChainConfig(name="mainnet", chain_id=1, rpc_urls=[server.url], max_block_range=1_000_000)
        configured = [
            ContractConfig(name=kind, address=address, abi=kind) for address, kind in contracts.items()
        ]
        run_plan(config_plan(chain, configured, stop=None, follow=False), to_libpq_url(db))


@pytest.fixture(scope="module")
def indexed(
    templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Events]]:
    from tests.conftest import _fresh_database

    events = _aave_events()
    for db in _fresh_database(templates["embedded"]):
        alpha = governor_alpha_logs(data_file("governance/compound-governor-alpha-events.csv"))
        contracts = {
            ALPHA: "governor_alpha",
            AAVE_V2: "aave_governance_v2",
            AAVE_V3: "aave_governance_v3",
            VOTING_MACHINE: "aave_voting_machine",
            CORE: "aave_governance_v3",
            MAINNET_MACHINE: "aave_voting_machine",
        }
        logs = alpha + events.logs + _recorded_aave_logs()
        _index(logs, tmp_path_factory.mktemp("gov"), db, contracts)
        yield db, events


def _rows(db: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


def _alpha_tallies() -> dict[tuple[str, int], tuple[int, int, int]]:
    tally: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    with data_file("governance/compound-governor-alpha-events.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["event_name"] == "VoteCast":
                t = tally[_int(row["proposalId"])]
                t[0] += 1
                t[1 if row["support"] == "True" else 2] += _int(row["votes"])
    return {(ALPHA, pid): (n, f, a) for pid, (n, f, a) in tally.items()}


def test_every_governor_has_exact_tallies(indexed: tuple[str, Events]) -> None:
    db, events = indexed
    expected = {k: v for k, v in _alpha_tallies().items()}
    for key, cast in events.votes.items():
        expected[key] = (len(cast), sum(p for _, s, p in cast if s), sum(p for _, s, p in cast if not s))
    rows = _rows(db, "SELECT governor, proposal_id, voters, votes_for, votes_against FROM proposals")
    stored = {(g, int(p)): (n, int(f), int(a)) for g, p, n, f, a in rows if n and g != CORE}
    assert stored == expected
    assert len([k for k in expected if k[0] == ALPHA]) > 30 and len(events.votes) == 3


def test_aave_proposals_states_and_queued_tallies(indexed: tuple[str, Events]) -> None:
    db, _ = indexed
    rows = _rows(
        db,
        "SELECT governor, proposal_id, kind, state, eta, voters, votes_for, votes_against, title,"
        " queued_block IS NOT NULL, executed_block IS NOT NULL, canceled_block IS NOT NULL"
        f" FROM proposals WHERE governor IN ('{AAVE_V2}', '{AAVE_V3}') ORDER BY governor, proposal_id",
    )
    summary = [(g[:6], int(p), k, s, e, n) for g, p, k, s, e, n, *_ in rows]
    assert summary == [
        ("0xa2a2", 1, "aave_v2", "executed", Decimal(1_700_000_000), 40),
        ("0xa2a2", 2, "aave_v2", "queued", Decimal(1_700_086_400), 25),
        ("0xa2a2", 3, "aave_v2", "created", None, 0),
        ("0xa3a3", 10, "aave_v3", "executed", None, 30),
        ("0xa3a3", 11, "aave_v3", "canceled", None, 0),
        ("0xa3a3", 12, "aave_v3", "queued", None, 0),
    ]
    # Without the VotingMachine's votes, ProposalQueued's tallies stand.
    assert rows[5][6:8] == (Decimal(7 * 10**23), Decimal(2 * 10**23))
    assert all(r[8] is None for r in rows)  # titles live on IPFS for Aave


def test_voting_machine_votes_belong_to_the_core(indexed: tuple[str, Events]) -> None:
    db, events = indexed
    rows = _rows(
        db,
        "SELECT chain_id, governor, voting_chain_id, voting_contract, count(*), sum(weight) FROM votes"
        f" WHERE voting_contract = '{VOTING_MACHINE}' GROUP BY 1, 2, 3, 4",
    )
    cast = events.votes[(AAVE_V3, 10)]
    assert rows == [(1, AAVE_V3, 1, VOTING_MACHINE, len(cast), Decimal(sum(p for *_, p in cast)))]


def test_aave_v2_risk_calls_decode(indexed: tuple[str, Events]) -> None:
    db, _ = indexed
    rows = _rows(
        db,
        "SELECT proposal_id, state, parameter, new_value FROM risk_param_changes"
        f" WHERE governor = '{AAVE_V2}' AND asset = '{WETH}' ORDER BY proposal_id, parameter",
    )
    assert [(int(p), s, m, int(v)) for p, s, m, v in rows] == [
        (p, s, m, v)
        for p, s in ((1, "executed"), (2, "queued"), (3, "created"))
        for m, v in (("liquidation_bonus", 10_500), ("liquidation_threshold", 8_250), ("ltv", 8_000))
    ]


def test_recorded_voting_machine_tally_equals_its_result(indexed: tuple[str, Events]) -> None:
    """Mainnet proposal 356: the 39 recorded votes, the votes view, and the total the VotingMachine sent
    to the core (ProposalResultsSent) agree to the wei."""
    db, _ = indexed
    rows = _csv(MACHINE_EVENTS)
    cast = [r for r in rows if r["event_name"] == "VoteEmitted"]
    (result,) = [r for r in rows if r["event_name"] == "ProposalResultsSent"]
    summed = sum(int(r["voting_power"]) for r in cast if r["support"] == "true")
    assert summed == int(result["for_votes"]) == 874_816_602_044_139_600_164_723
    stored = _rows(
        db,
        "SELECT governor, proposal_id, count(*), count(DISTINCT voter),"
        " sum(weight) FILTER (WHERE support = 'for'), count(*) FILTER (WHERE support = 'against')"
        f" FROM votes WHERE voting_contract = '{MAINNET_MACHINE}' GROUP BY 1, 2",
    )
    # The core's ProposalCreated of 356 is not in the recording: the votes stay the machine's.
    assert stored == [(MAINNET_MACHINE, Decimal(356), len(cast), len(cast), Decimal(summed), 0)]
    assert len(cast) == 39


def test_recorded_core_proposals(indexed: tuple[str, Events]) -> None:
    db, _ = indexed
    created = {int(r["proposal_id"]): r for r in _csv(CORE_EVENTS) if r["event_name"] == "ProposalCreated"}
    rows = _rows(
        db,
        "SELECT proposal_id, kind, state, proposer, ipfs_hash, voters, votes_for, votes_against"
        f" FROM proposals WHERE governor = '{CORE}' ORDER BY proposal_id",
    )
    assert [int(r[0]) for r in rows] == sorted(created) == [0, 1, 2, 3, 183, 184]
    for pid, kind, state, proposer, ipfs, voters, v_for, v_against in rows:
        row = created[int(pid)]
        assert (kind, proposer, ipfs) == ("aave_v3", row["creator"].lower(), row["ipfs_hash"])
        # Proposal 0 was queued with the tallies its ProposalQueued carries; the others only created.
        queued = int(pid) == 0
        assert state == ("queued" if queued else "created") and voters == 0
        assert (int(v_for), int(v_against)) == ((425_306_287_773_343_762_214_587, 0) if queued else (0, 0))
