"""The dispatcher SIGKILLed at random points during a burst of alerts, then restarted until done.

A burst of alerts to a signed webhook, Discord and Slack; `chainrisk alerts dispatch` runs as a process
and is killed (seeded delays after it has started sending) several times, then run to the end. The
receivers answer each request a little late, so most kills land while a request is in flight: the window
in which a message may arrive without its answer being recorded. Afterwards:

- nothing is lost: every delivery is sent (or recorded unknown), none pending, failed or dead;
- the webhook receiver acted on each alert exactly once: each alert came under one webhook-id on every
  request, no webhook-id ever carried two different alerts (nor two different payloads), so the 40 ids
  are the 40 alerts, none missing; an id came again only as a retry of the same message for a delivery
  whose attempt the record shows interrupted, and the receiver, deduplicating on webhook-id as Standard
  Webhooks asks, answered it without acting twice;
- every request a receiver got was recorded as an attempt before it was sent (never more requests than
  attempts), so a chat message shown twice is always one whose record says it was in the crash window;
- per channel, first attempts went out in alert order.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from chainrisk.alerts import outbox
from chainrisk.alerts.model import Alert
from chainrisk.db import to_libpq_url
from tests.alerts.receivers import DiscordReceiver, Receiver, SlackReceiver, WebhookReceiver

SEED = 20261130
ALERTS = 40
KILLS = 4
WHSEC = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
CHANNELS = ("hook", "discord", "slack")
TITLE = re.compile(r"Burst alert (\d+)\b")


def _config(path: Path, hook: WebhookReceiver) -> Path:
    policy = "timeout_s = 1.0\nlease_s = 1.5\nbackoff_s = 0.1\nbackoff_max_s = 0.5\n"
    path.write_text(
        f'[[channels]]\nname = "hook"\nkind = "webhook"\nurl = "{hook.url}"\nsecret_env = "T_HOOK_SECRET"\n'
        f"{policy}"
        f'[[channels]]\nname = "discord"\nkind = "discord"\nurl_env = "T_DISCORD_URL"\n{policy}'
        f'[[channels]]\nname = "slack"\nkind = "slack"\nurl_env = "T_SLACK_URL"\n{policy}'
    )
    return path


def _burst(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        for i in range(1, ALERTS + 1):
            alert = Alert(
                rule="burst",
                kind="test",
                severity="medium",
                subject=f"wallet-{i}",
                period="2026-11-30T15",
                title=f"Burst alert {i}",
                body=f"Alert {i} of a burst of {ALERTS}.",
                facts={"n": i},
            )
            assert outbox.enqueue(conn, alert, list(CHANNELS))


def _scalar(conninfo: str, query: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _dispatcher(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "chainrisk", "alerts", "dispatch"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _number(receiver: Receiver, body: Any) -> int:
    if isinstance(receiver, WebhookReceiver):
        return int(body["data"]["facts"]["n"])
    match = TITLE.search(body.get("content") or body.get("text") or "")
    assert match is not None
    return int(match.group(1))


def test_sigkill_at_random_points_loses_nothing(db_url: str, tmp_path: Path) -> None:
    conninfo = to_libpq_url(db_url)
    rng = random.Random(SEED)
    with WebhookReceiver(WHSEC) as hook, DiscordReceiver() as discord, SlackReceiver() as slack:
        receivers: dict[str, Receiver] = {"hook": hook, "discord": discord, "slack": slack}
        for n, receiver in enumerate(receivers.values()):
            receiver.slow_down(0.02, 0.08, SEED + n)
        env = {
            **os.environ,
            "CHAINRISK_DATABASE_URL": db_url,
            "CHAINRISK_CONFIG": str(_config(tmp_path / "chainrisk.toml", hook)),
            "CHAINRISK_HOME": str(tmp_path / "home"),
            "CHAINRISK_LOG_LEVEL": "WARNING",
            "T_HOOK_SECRET": WHSEC,
            "T_DISCORD_URL": discord.url,
            "T_SLACK_URL": slack.url,
        }
        _burst(conninfo)
        log = tmp_path / "dispatcher.log"
        kills = _kill_repeatedly(conninfo, env, rng, log)
        _run_to_the_end(conninfo, env, log)
        requests = {name: _requests(r) for name, r in receivers.items()}
    record = _record(conninfo)
    states = Counter(state for state, _, _ in record.values())
    assert kills == KILLS, log.read_text()
    assert set(states) <= {"sent", "unknown"} and sum(states.values()) == ALERTS * len(CHANNELS), states
    # The webhook receiver acted once per alert; each alert travelled under one id, and no id ever
    # carried two different alerts: a repeated id is a retry of the same message, which the receiver
    # (deduplicating on webhook-id) answered 200 without acting again.
    assert sorted(_number(hook, body) for body in hook.accepted) == list(range(1, ALERTS + 1))
    ids_per_alert = Counter(n for n, _ in set(requests["hook"]))
    assert set(ids_per_alert.values()) == {1}
    alerts_per_id = Counter(webhook_id for _, webhook_id in set(requests["hook"]))
    assert len(alerts_per_id) == ALERTS and set(alerts_per_id.values()) == {1}
    payloads_per_id = {webhook_id: len(bodies) for webhook_id, bodies in _payloads(hook).items()}
    assert set(payloads_per_id.values()) == {1}, payloads_per_id  # a retry carries the very same alert
    assert hook.rejected == 0 and hook.duplicates == len(requests["hook"]) - ALERTS
    interrupted = {key: value[2] for key, value in record.items()}
    for name in CHANNELS:
        sends = Counter(n for n, _ in requests[name])
        for n in range(1, ALERTS + 1):
            attempts = record[(n, name)][1]
            where = f"alert {n} to {name}: {sends[n]} requests, record {record[(n, name)]}"
            assert 1 <= sends[n] <= attempts, where  # each request had its attempt on record first
            # a repeat only where the record shows an interrupted (or unanswered) attempt
            assert sends[n] - 1 <= interrupted[(n, name)], where
    assert sum(interrupted.values()) >= 1, "no kill landed in a send: the crash window was not exercised"
    assert _first_attempts_in_order(conninfo)


def _kill_repeatedly(conninfo: str, env: dict[str, str], rng: random.Random, log: Path) -> int:
    kills = 0
    for _ in range(KILLS):
        started = _scalar(conninfo, "SELECT count(*) FROM alert_attempts")
        process = _dispatcher(env, log)
        try:
            _wait_for(
                lambda started=started: _scalar(conninfo, "SELECT count(*) FROM alert_attempts") > started,
                60,
                "the dispatcher to start sending",
            )
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        kills += process.returncode == -signal.SIGKILL
    return kills


def _run_to_the_end(conninfo: str, env: dict[str, str], log: Path) -> None:
    process = _dispatcher(env, log)
    try:
        _wait_for(
            lambda: (
                _scalar(
                    conninfo,
                    "SELECT count(*) FROM alert_deliveries WHERE state IN ('pending', 'failed', 'in_flight')",
                )
                == 0
            ),
            90,
            "every delivery to finish",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()


def _requests(receiver: Receiver) -> list[tuple[int, str]]:
    """(alert number, webhook-id or '') of every request the receiver got, accepted or not."""
    import json

    out = []
    for request in receiver.requests:
        body = json.loads(request.body)
        if isinstance(receiver, WebhookReceiver):
            body = {"data": body["data"]}
        out.append((_number(receiver, body), request.headers.get("webhook-id", "")))
    return out


def _payloads(receiver: WebhookReceiver) -> dict[str, set[str]]:
    """webhook-id -> the distinct alert payloads (`data`, as canonical JSON) sent under it."""
    import json

    out: dict[str, set[str]] = {}
    for request in receiver.requests:
        data = json.loads(request.body)["data"]
        out.setdefault(request.headers["webhook-id"], set()).add(json.dumps(data, sort_keys=True))
    return out


def _record(conninfo: str) -> dict[tuple[int, str], tuple[str, int, int]]:
    """(alert number, channel) -> (state, attempts, attempts interrupted or unanswered)."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT (a.facts ->> 'n')::int, d.channel, d.state, d.attempts,"
            " count(t.id) FILTER (WHERE t.outcome IN ('interrupted', 'unknown'))"
            " FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id"
            " LEFT JOIN alert_attempts t ON t.delivery_id = d.id GROUP BY 1, 2, 3, 4"
        ).fetchall()
    return {(n, channel): (state, attempts, crashed) for n, channel, state, attempts, crashed in rows}


def _first_attempts_in_order(conninfo: str) -> bool:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT d.channel, array_agg(d.alert_id ORDER BY t.started_at, t.id) FROM alert_attempts t"
            " JOIN alert_deliveries d ON d.id = t.delivery_id WHERE t.attempt = 1 GROUP BY 1"
        ).fetchall()
    return all(list(ids) == sorted(ids) for _, ids in rows)
