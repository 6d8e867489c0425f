"""Real exported events, re-encoded as logs and indexed through the replay: values come out exact."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import psycopg

from chainrisk.db import to_libpq_url
from indexer.config import ChainConfig
from indexer.replay import ReplayServer, load_recording
from indexer.runner import adhoc_plan, run_plan
from tests.conftest import data_file
from tests.recorded import _int, governor_alpha_logs, reth_transfer_logs

RETH = "chain/mainnet-reth-transfers-18600181-18606893.csv"
ALPHA = "governance/compound-governor-alpha-events.csv"


def _serve_and_index(logs: list[dict[str, object]], tmp_path: Path, db: str, address: str) -> None:
    recording = tmp_path / "recording.jsonl"
    recording.write_text("\n".join(json.dumps(log) for log in logs))
    first = min(int(str(log["blockNumber"]), 16) for log in logs)
    last = max(int(str(log["blockNumber"]), 16) for log in logs)
    with ReplayServer(load_recording([recording])) as server:
        chain = ChainConfig(name="mainnet", chain_id=1, rpc_urls=[server.url], max_block_range=1_000_000)
        run_plan(adhoc_plan(chain, [address], first, last, follow=False), to_libpq_url(db))


def _rows(db: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


def test_reth_transfers_come_out_exact(tmp_path: Path, db_url: str) -> None:
    path = data_file(RETH)
    _serve_and_index(reth_transfer_logs(path), tmp_path, db_url, "0xae78736cd615f374d3085123a210448e74fc6393")
    with path.open(newline="") as handle:
        expected = sorted(
            (r["tx_hash"], r["from"].lower(), r["to"].lower(), Decimal(r["value"]), int(r["block_number"]))
            for r in csv.DictReader(handle)
        )
    stored = _rows(
        db_url, "SELECT tx_hash, from_address, to_address, value, block_number FROM erc20_transfers"
    )
    assert len(expected) == 520
    assert sorted(stored) == expected
    assert _rows(db_url, "SELECT count(*) FROM quarantine") == [(0,)]


def test_governor_alpha_votes_reproduce_per_proposal_tallies(tmp_path: Path, db_url: str) -> None:
    path = data_file(ALPHA)
    _serve_and_index(
        governor_alpha_logs(path), tmp_path, db_url, "0xc0dA01a04C3f3E0be433606045bB7017A7323E38"
    )
    expected: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["event_name"] == "VoteCast":
                tally = expected[_int(row["proposalId"])]
                tally[0] += 1
                tally[1 if row["support"] == "True" else 2] += _int(row["votes"])
    stored = _rows(
        db_url,
        "SELECT proposal_id, count(*), coalesce(sum(votes) FILTER (WHERE support), 0),"
        " coalesce(sum(votes) FILTER (WHERE NOT support), 0) FROM gov_alpha_vote_cast GROUP BY 1",
    )
    assert {int(str(p)): [int(str(n)), int(str(f)), int(str(a))] for p, n, f, a in stored} == dict(expected)
    assert sum(t[0] for t in expected.values()) == 2416
    assert _rows(db_url, "SELECT count(*) FROM gov_proposal_created") == [(42,)]
    assert _rows(db_url, "SELECT count(*) FROM gov_proposal_executed") == [(36,)]
    first = _rows(db_url, "SELECT proposer, signatures FROM gov_proposal_created WHERE proposal_id = 1")
    assert first == [
        (
            "0x8169522c2c57883e8ef80c498aab7820da539806",
            ["_supportMarket(address)", "_setPriceOracle(address)"],
        )
    ]
