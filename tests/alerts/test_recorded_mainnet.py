"""Alerts from replayed real mainnet data: Compound's GovernorAlpha events (data/governance/, 2,532 real
events re-encoded into the logs the chain emitted, with their recorded block times) are indexed through
the replay server, the `governance` rule is evaluated as of the last recorded event, and its alerts are
delivered by the dispatcher to a local signed-webhook receiver. What fires is exactly the recorded
proposal events of the window, with the recorded tallies."""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.alerts.dispatch import dispatch_once
from chainrisk.alerts.job import evaluate_rules
from chainrisk.alerts.rules import kinds
from chainrisk.db import to_libpq_url
from indexer.config import ChainConfig
from indexer.replay import ReplayServer, load_recording
from indexer.runner import adhoc_plan, run_plan
from tests.alerts.receivers import WebhookReceiver
from tests.conftest import data_file
from tests.recorded import _int, governor_alpha_logs

ALPHA = "governance/compound-governor-alpha-events.csv"
GOVERNOR = "0xc0da01a04c3f3e0be433606045bb7017a7323e38"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EVENTS = {
    "ProposalCreated": "created",
    "ProposalQueued": "queued",
    "ProposalExecuted": "executed",
    "ProposalCanceled": "canceled",
}


def _stamp(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def _index(db: str, tmp_path: Path) -> list[dict[str, str]]:
    """Index the recording; returns its rows. Each log carries its row's recorded block time."""
    path = data_file(ALPHA)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    logs = governor_alpha_logs(path)
    for log, row in zip(logs, rows, strict=True):
        log["blockTimestamp"] = hex(_stamp(row["timestamp"]))
    recording = tmp_path / "recording.jsonl"
    recording.write_text("\n".join(json.dumps(log) for log in logs))
    blocks = [int(r["block_number"]) for r in rows]
    with ReplayServer(load_recording([recording])) as server:
        chain = ChainConfig(name="mainnet", chain_id=1, rpc_urls=[server.url], max_block_range=1_000_000)
        run_plan(adhoc_plan(chain, [GOVERNOR], min(blocks), max(blocks), follow=False), to_libpq_url(db))
    return rows


def test_governance_alerts_from_recorded_mainnet_events_reach_a_webhook(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chainrisk.settings import Settings

    rows = _index(db_url, tmp_path)
    now = datetime.fromtimestamp(max(_stamp(r["timestamp"]) for r in rows) + 1, UTC)
    since = now - timedelta(days=30)
    expected = {
        f"1:{GOVERNOR}:{_int(r['id'])}:{EVENTS[r['event_name']]}"
        for r in rows
        if r["event_name"] in EVENTS and _stamp(r["timestamp"]) > since.timestamp()
    }
    tallies: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        if r["event_name"] == "VoteCast":
            tally = tallies[_int(r["proposalId"])]
            tally[0] += 1
            tally[1 if r["support"] == "True" else 2] += _int(r["votes"])
    with WebhookReceiver(WHSEC) as hook:
        monkeypatch.setenv("CHAINRISK_CONFIG", str(tmp_path / "absent.toml"))
        monkeypatch.setenv("T_RECORDED_SECRET", WHSEC)
        channel = {"name": "dao-hook", "kind": "webhook", "url": hook.url, "secret_env": "T_RECORDED_SECRET"}
        kinds()
        rule = {"name": "compound", "kind": "governance", "window": "30d", "channels": ["dao-hook"]}
        settings = Settings.model_validate({"channels": [channel], "alerts": [rule]})
        conninfo = to_libpq_url(db_url)
        with psycopg.connect(conninfo) as conn:
            (outcome,) = evaluate_rules(conn, settings.alerts, now, enqueue=True)
        assert outcome.error is None and outcome.enqueued == len(expected)
        for _ in range(50):
            dispatch_once(conninfo, settings)
            if len(hook.accepted) >= len(expected):
                break
            time.sleep(0.1)
    assert {a.subject for a in outcome.alerts} == expected and len(expected) == 12
    delivered = {d["data"]["subject"]: d["data"] for d in hook.accepted}
    assert set(delivered) == expected and hook.duplicates == 0 and hook.rejected == 0
    for data in delivered.values():
        facts: dict[str, Any] = data["facts"]
        voters, votes_for, votes_against = tallies[int(facts["proposal_id"])]
        assert (facts["voters"], int(facts["votes_for"]), int(facts["votes_against"])) == (
            voters,
            votes_for,
            votes_against,
        )
        assert data["kind"] == "governance" and data["chain_id"] == 1
    queued = delivered[f"1:{GOVERNOR}:42:queued"]
    recorded_eta = next(
        _int(r["eta"]) for r in rows if r["event_name"] == "ProposalQueued" and _int(r["id"]) == 42
    )
    assert queued["facts"]["eta"] == recorded_eta and queued["facts"]["block"] == 12127223
    assert "at block 12127223 (2021-03-28 11:00 UTC)" in queued["body"]
    with psycopg.connect(conninfo) as conn:
        states = conn.execute("SELECT state, count(*) FROM alert_deliveries GROUP BY 1").fetchall()
    assert states == [("sent", len(expected))]
