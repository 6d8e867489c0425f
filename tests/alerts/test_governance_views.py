"""Every decoded governor is in `proposals` and `votes`: Aave Governance v2, v3 and its VotingMachine beside
GovernorAlpha, each tally equal to its events summed here independently.

The Alpha events are the recorded mainnet export; the Aave events are encoded with the indexer's own
event specs (tests/recorded.py) and served by the replay node, so they go through the same decoding.
"""

from __future__ import annotations

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
AAVE_V2 = "0xec568fffba86c094cf06b22134b23074dfe2252c"
AAVE_V3 = "0x9aee0b04504cef83a65ac3f0e838d0593bcb2bc7"
VOTING_MACHINE = "0x617332a777780f546261247f621051d0b98975eb"
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
        }
        _index(alpha + events.logs, tmp_path_factory.mktemp("gov"), db, contracts)
        yield db, events


def _rows(db: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


def _alpha_tallies() -> dict[tuple[str, int], tuple[int, int, int]]:
    import csv

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
    stored = {(g, int(p)): (n, int(f), int(a)) for g, p, n, f, a in rows if n}
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
        ("0x9aee", 10, "aave_v3", "executed", None, 30),
        ("0x9aee", 11, "aave_v3", "canceled", None, 0),
        ("0x9aee", 12, "aave_v3", "queued", None, 0),
        ("0xec56", 1, "aave_v2", "executed", Decimal(1_700_000_000), 40),
        ("0xec56", 2, "aave_v2", "queued", Decimal(1_700_086_400), 25),
        ("0xec56", 3, "aave_v2", "created", None, 0),
    ]
    # Without the VotingMachine's votes, ProposalQueued's tallies stand.
    assert rows[2][6:8] == (Decimal(7 * 10**23), Decimal(2 * 10**23))
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
