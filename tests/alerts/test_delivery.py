"""Alert delivery against local receivers that behave as each channel's API does: success, 429 with the
API's own Retry-After, 5xx, timeouts, size limits; secrets never stored, logged or shown; the CLI."""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from chainrisk.alerts import outbox
from chainrisk.alerts.channels.base import utf16_len
from chainrisk.alerts.channels_config import ChannelConfig
from chainrisk.alerts.dispatch import dispatch_once
from chainrisk.alerts.model import Alert
from chainrisk.db import to_libpq_url
from chainrisk.settings import Settings
from tests.alerts.receivers import (
    DiscordReceiver,
    Planned,
    SlackReceiver,
    SmtpReceiver,
    TelegramReceiver,
    WebhookReceiver,
    visible_text,
)

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SMTP_PASSWORD = "smtp-pass-s3cret"
FAST: dict[str, Any] = {"backoff_s": 0.2, "backoff_max_s": 1.0, "timeout_s": 0.5, "lease_s": 5.0}


@pytest.fixture(scope="module")
def module_db(templates: dict[str, str]) -> Iterator[str]:
    """One database for the module (cloning one per test costs more than the tests)."""
    from tests.conftest import _fresh_database

    yield from _fresh_database(templates["embedded"])


@pytest.fixture
def db(module_db: str) -> str:
    """The module's database with an empty outbox."""
    with psycopg.connect(to_libpq_url(module_db)) as conn:
        conn.execute(
            "TRUNCATE alerts, alert_deliveries, alert_attempts, alert_silences RESTART IDENTITY CASCADE"
        )
    return module_db


@pytest.fixture
def conninfo(db: str) -> str:
    return to_libpq_url(db)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    with (
        DiscordReceiver() as discord,
        SlackReceiver() as slack,
        TelegramReceiver() as telegram,
        WebhookReceiver(WHSEC) as webhook,
        SmtpReceiver(password=SMTP_PASSWORD) as smtp,
    ):
        yield {"discord": discord, "slack": slack, "telegram": telegram, "webhook": webhook, "email": smtp}


@pytest.fixture
def receivers(servers: dict[str, Any]) -> dict[str, Any]:
    for receiver in servers.values():
        receiver.reset()
    return servers


@pytest.fixture
def settings(receivers: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """One channel of each kind, every secret in an environment variable."""
    monkeypatch.setenv("CHAINRISK_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("T_DISCORD_URL", receivers["discord"].url)
    monkeypatch.setenv("T_SLACK_URL", receivers["slack"].url)
    monkeypatch.setenv("T_TELEGRAM_TOKEN", receivers["telegram"].token)
    monkeypatch.setenv("T_WEBHOOK_SECRET", WHSEC)
    monkeypatch.setenv("T_SMTP_PASSWORD", SMTP_PASSWORD)
    return Settings(channels=[ChannelConfig(**entry) for entry in channel_entries(receivers)])


def channel_entries(receivers: dict[str, Any]) -> list[dict[str, Any]]:
    telegram, smtp = receivers["telegram"], receivers["email"]
    return [
        {"name": "discord", "kind": "discord", "url_env": "T_DISCORD_URL", **FAST},
        {"name": "slack", "kind": "slack", "url_env": "T_SLACK_URL", **FAST},
        {
            "name": "telegram",
            "kind": "telegram",
            "token_env": "T_TELEGRAM_TOKEN",
            "chat_id": telegram.chat_id,
            "api_url": telegram.base,
            **FAST,
        },
        {
            "name": "webhook",
            "kind": "webhook",
            "url": receivers["webhook"].url,
            "secret_env": "T_WEBHOOK_SECRET",
            **FAST,
        },
        {
            "name": "email",
            "kind": "email",
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "username": smtp.username,
            "password_env": "T_SMTP_PASSWORD",
            "from_addr": "alerts@example.org",
            "to": ["risk@example.org"],
            **FAST,
        },
    ]


def make_alert(n: int = 1, body: str = "Health factor 0.97 after the ETH drop.", **facts: Any) -> Alert:
    return Alert(
        rule="whale-hf",
        kind="health_factor",
        severity="high",
        subject=f"0x{n:040x}",
        period="2026-11-30T14",
        title=f"Wallet {n} close to liquidation",
        body=body,
        facts=facts or {"health_factor": 0.97, "debt_usd": 1_234_567.8},
        chain_id=1,
        observed_at=datetime(2026, 11, 30, 14, 5, tzinfo=UTC),
    )


def enqueue(conninfo: str, alert: Alert, channels: list[str]) -> None:
    with psycopg.connect(conninfo) as conn:
        assert outbox.enqueue(conn, alert, channels)


def deliveries(conninfo: str) -> dict[tuple[int, str], dict[str, Any]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT alert_id, channel, state, attempts, provider_id, last_error FROM alert_deliveries"
        ).fetchall()
    keys = ("state", "attempts", "provider_id", "last_error")
    return {(r[0], r[1]): dict(zip(keys, r[2:], strict=True)) for r in rows}


def attempts(conninfo: str, channel: str) -> list[dict[str, Any]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT d.alert_id, t.attempt, t.started_at, t.finished_at, t.outcome, t.http_status,"
            " t.retry_after_s, t.error FROM alert_attempts t JOIN alert_deliveries d ON d.id = t.delivery_id"
            " WHERE d.channel = %s ORDER BY t.id",
            (channel,),
        ).fetchall()
    keys = ("alert_id", "attempt", "started_at", "finished_at", "outcome", "status", "retry_after_s", "error")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def dispatch_until_done(conninfo: str, settings: Settings, rounds: int = 60) -> None:
    """Dispatch until nothing is pending or failed (waiting out retries), within `rounds` rounds."""
    for _ in range(rounds):
        dispatch_once(conninfo, settings)
        with psycopg.connect(conninfo) as conn:
            row = conn.execute(
                "SELECT count(*) FROM alert_deliveries WHERE state IN ('pending', 'failed', 'in_flight')"
            ).fetchone()
        if row == (0,):
            return
        time.sleep(0.2)
    raise AssertionError("deliveries still pending")


# ------------------------------------------------------------------------------------------ success


def test_every_channel_receives_the_alert(
    conninfo: str, settings: Settings, receivers: dict[str, Any]
) -> None:
    enqueue(conninfo, make_alert(), ["discord", "slack", "telegram", "webhook", "email"])
    counts = dispatch_once(conninfo, settings)
    assert counts == {"sent": 5, "retry": 0, "dead": 0, "unknown": 0, "unconfigured": 0}
    states = deliveries(conninfo)
    assert {key[1]: value["state"] for key, value in states.items()} == dict.fromkeys(
        ("discord", "slack", "telegram", "webhook", "email"), "sent"
    )
    alert_id = next(iter(states))[0]
    # Discord's and Telegram's message ids, the mail's Message-ID from the dedup key.
    assert states[(alert_id, "discord")]["provider_id"] == "1100000000000000001"
    assert states[(alert_id, "telegram")]["provider_id"] == "501"
    discord = receivers["discord"].accepted[0]
    assert "Wallet 1 close to liquidation" in discord["content"]
    assert discord["allowed_mentions"] == {"parse": []}
    assert discord["embeds"][0]["description"] == "Health factor 0.97 after the ETH drop."
    assert {f["name"] for f in discord["embeds"][0]["fields"]} == {"debt_usd", "health_factor"}
    slack = receivers["slack"].accepted[0]
    assert slack["blocks"][0]["type"] == "header" and "[HIGH]" in slack["text"]
    telegram = visible_text(receivers["telegram"].accepted[0]["text"], "HTML")
    assert "Health factor 0.97" in telegram and "debt_usd: 1,234,567.8" in telegram
    hook = receivers["webhook"].accepted[0]
    assert hook["data"]["dedup_key"] == make_alert().dedup_key and hook["data"]["alert_id"] == alert_id
    assert hook["data"]["facts"] == {"health_factor": 0.97, "debt_usd": 1_234_567.8}
    (mail,) = receivers["email"].messages
    message_id = states[(alert_id, "email")]["provider_id"]
    assert f"Message-ID: {message_id}" in mail.content.decode()
    assert mail.rcpt_tos == ["risk@example.org"]
    with psycopg.connect(conninfo) as conn:
        fired = conn.execute("SELECT rule, channels_sent, channels FROM alerts_fired").fetchall()
        tried = conn.execute("SELECT count(*) FROM alert_delivery_attempts WHERE outcome = 'sent'").fetchone()
    assert fired == [("whale-hf", 5, 5)] and tried == (5,)
    assert read_as_reader(conninfo, "SELECT title, channels_sent FROM alerts_fired") == [
        ("Wallet 1 close to liquidation", 5)
    ]


def read_as_reader(conninfo: str, query: str) -> list[tuple[Any, ...]]:
    """`query` run by a role from `chainrisk db grant-reader`, which may read the documented views only."""
    import uuid

    from chainrisk.reader import grant_reader, reader_views

    name = f"reader_{uuid.uuid4().hex[:8]}"
    url = conninfo.replace("postgresql://postgres@", f"postgresql://{name}:pw-{name}@")
    grant_reader(conninfo, name, f"pw-{name}", sorted(reader_views()))
    try:
        with psycopg.connect(url) as conn:
            return conn.execute(query).fetchall()
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


def test_the_outbox_stores_an_alert_once_and_not_while_silenced(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        assert outbox.enqueue(conn, make_alert(1), ["slack", "slack"])
        assert not outbox.enqueue(conn, make_alert(1), ["slack"])  # same rule, subject and period
        outbox.silence(conn, "whale-hf", 3600, "maintenance")
        assert not outbox.enqueue(conn, make_alert(2), ["slack"])
        assert outbox.clear_silence(conn, "whale-hf")
        assert outbox.enqueue(conn, make_alert(3), ["slack"])
        counts = conn.execute("SELECT count(*), count(DISTINCT alert_id) FROM alert_deliveries").fetchone()
    assert counts == (2, 2)


# -------------------------------------------------------------------------------------- rate limits


def test_a_429_holds_the_channel_for_its_retry_after(
    conninfo: str, settings: Settings, receivers: dict[str, Any]
) -> None:
    """Discord's wait comes in JSON retry_after, Slack's in Retry-After, Telegram's in
    parameters.retry_after; the retried message and the one behind it wait at least that long."""
    chats = ["discord", "slack", "telegram"]
    for channel in chats:
        receivers[channel].plan(Planned(status=429, retry_after=1.0))
    enqueue(conninfo, make_alert(1), chats)
    enqueue(conninfo, make_alert(2), chats)
    assert dispatch_once(conninfo, settings)["retry"] == 3
    dispatch_until_done(conninfo, settings)
    for channel in chats:
        first, second, third = attempts(conninfo, channel)
        assert (first["outcome"], first["status"], first["retry_after_s"]) == ("retry", 429, 1.0)
        assert [first["alert_id"], second["alert_id"], third["alert_id"]] == [1, 1, 2]
        for later in (second, third):
            assert (later["started_at"] - first["finished_at"]).total_seconds() >= 1.0
            assert later["outcome"] == "sent"
        assert len(receivers[channel].accepted) == 2


# -------------------------------------------------------------------------------------- 5xx, 4xx


def test_5xx_is_retried_with_backoff_until_sent_or_given_up(
    conninfo: str, settings: Settings, receivers: dict[str, Any]
) -> None:
    receivers["slack"].plan(Planned(status=503), Planned(status=502))
    enqueue(conninfo, make_alert(1), ["slack"])
    dispatch_until_done(conninfo, settings)
    tries = attempts(conninfo, "slack")
    assert [(t["outcome"], t["status"]) for t in tries] == [("retry", 503), ("retry", 502), ("sent", 200)]
    for n, (before, after) in enumerate(itertools.pairwise(tries), start=1):
        # backoff_s * 2**(n-1), drawn in its upper half
        assert (after["started_at"] - before["finished_at"]).total_seconds() >= 0.2 * 2 ** (n - 1) / 2
    # With max_attempts 2, two 500s are the end: dead, and the error says why.
    tight = settings.model_copy(
        update={"channels": [settings.channels[1].model_copy(update={"max_attempts": 2})]}
    )
    receivers["slack"].plan(Planned(status=500), Planned(status=500))
    enqueue(conninfo, make_alert(2), ["slack"])
    dispatch_until_done(conninfo, tight)
    state = deliveries(conninfo)[(tries[0]["alert_id"] + 1, "slack")]
    assert state["state"] == "dead" and "gave up after 2 attempts" in state["last_error"]


def test_other_4xx_is_dead_at_once(conninfo: str, settings: Settings, receivers: dict[str, Any]) -> None:
    wrong_chat = settings.channels[2].model_copy(update={"chat_id": "-1"})
    enqueue(conninfo, make_alert(1), ["telegram"])
    dispatch_once(conninfo, settings.model_copy(update={"channels": [wrong_chat]}))
    (only,) = attempts(conninfo, "telegram")
    assert (only["outcome"], only["status"]) == ("dead", 400)
    assert only["error"] == "HTTP 400: Bad Request: chat not found"
    assert receivers["telegram"].accepted == []


def test_smtp_4xx_retries_and_5xx_is_dead(
    conninfo: str, settings: Settings, receivers: dict[str, Any]
) -> None:
    receivers["email"].plan_reply("451 4.3.0 try again later")
    enqueue(conninfo, make_alert(1), ["email"])
    dispatch_until_done(conninfo, settings)
    receivers["email"].plan_reply("550 5.1.1 mailbox unavailable")
    enqueue(conninfo, make_alert(2), ["email"])
    dispatch_until_done(conninfo, settings)
    outcomes = [(t["alert_id"], t["outcome"], t["status"]) for t in attempts(conninfo, "email")]
    first = outcomes[0][0]
    assert outcomes == [(first, "retry", 451), (first, "sent", 250), (first + 1, "dead", 550)]
    assert len(receivers["email"].messages) == 1


# ----------------------------------------------------------------------------------------- timeouts


def test_a_timeout_is_unknown_and_chat_does_not_resend(
    conninfo: str, settings: Settings, receivers: dict[str, Any]
) -> None:
    receivers["slack"].plan(Planned(delay_s=1.5))  # accepted, answered after the 0.5 s timeout
    enqueue(conninfo, make_alert(1), ["slack"])
    dispatch_once(conninfo, settings)
    dispatch_once(conninfo, settings)
    (only,) = attempts(conninfo, "slack")
    assert only["outcome"] == "unknown" and "ReadTimeout" in only["error"]
    assert deliveries(conninfo)[(only["alert_id"], "slack")]["state"] == "unknown"
    assert len(receivers["slack"].requests) == 1
    # An operator who checked the channel may send it again.
    with psycopg.connect(conninfo) as conn:
        assert outbox.retry(conn, only["alert_id"]) == 1
    dispatch_once(conninfo, settings)
    assert [t["outcome"] for t in attempts(conninfo, "slack")] == ["unknown", "sent"]


def test_a_webhook_timeout_is_resent_with_the_same_id(
    conninfo: str, settings: Settings, receivers: dict[str, Any]
) -> None:
    hook: WebhookReceiver = receivers["webhook"]
    hook.plan(Planned(delay_s=1.5))
    enqueue(conninfo, make_alert(1), ["webhook"])
    dispatch_until_done(conninfo, settings)
    assert [t["outcome"] for t in attempts(conninfo, "webhook")] == ["unknown", "sent"]
    assert len(hook.ids) == 2 and len(set(hook.ids)) == 1  # the same webhook-id both times
    assert hook.duplicates == 1 and len(hook.accepted) == 1 and hook.rejected == 0


def test_an_smtp_server_that_stalls_leaves_the_mail_unknown_until_a_person_retries(
    conninfo: str, settings: Settings, receivers: dict[str, Any]
) -> None:
    """The server takes the message data and answers after the client's 0.5 s timeout: the attempt is
    `unknown` (the mail may have gone), not lost; email does not resend it by itself (`resend_unknown`
    false) until `alerts retry`, and the resent mail carries the same Message-ID."""
    smtp: SmtpReceiver = receivers["email"]
    smtp.plan_stall(2.0)
    enqueue(conninfo, make_alert(1), ["email"])
    dispatch_once(conninfo, settings)
    (only,) = attempts(conninfo, "email")
    assert only["outcome"] == "unknown" and only["error"]
    assert deliveries(conninfo)[(only["alert_id"], "email")]["state"] == "unknown"
    time.sleep(2.0)  # the stalled answer comes and goes: nothing is sent again on its own
    dispatch_once(conninfo, settings)
    assert len(attempts(conninfo, "email")) == 1 and len(smtp.data_at) == 1
    with psycopg.connect(conninfo) as conn:
        assert outbox.retry(conn, only["alert_id"]) == 1
    dispatch_until_done(conninfo, settings)
    assert [t["outcome"] for t in attempts(conninfo, "email")] == ["unknown", "sent"]
    first, second = smtp.messages
    ids = [email.message_from_bytes(m.original_content)["Message-ID"] for m in (first, second)]
    assert ids[0] == ids[1] and ids[0].endswith("@chainrisk.alerts>")


def test_an_smtp_stall_is_resent_when_the_channel_resends_unknown(
    conninfo: str, settings: Settings, receivers: dict[str, Any]
) -> None:
    """With `resend_unknown = true` the dispatcher itself sends a stalled mail again (after the backoff)."""
    smtp: SmtpReceiver = receivers["email"]
    # SMTP takes five round trips: on a loaded machine 0.5 s can run out on a healthy resend too, so this
    # test gives the mail 2 s and stalls the first one past them.
    resend = settings.channels[4].model_copy(update={"resend_unknown": True, "timeout_s": 2.0})
    only_email = settings.model_copy(update={"channels": [resend]})
    smtp.plan_stall(3.0)
    enqueue(conninfo, make_alert(1), ["email"])
    dispatch_until_done(conninfo, only_email)
    assert [t["outcome"] for t in attempts(conninfo, "email")] == ["unknown", "sent"]
    assert len(smtp.data_at) == 2 and len(smtp.messages) == 2


@pytest.mark.parametrize("http_date", [False, True], ids=["seconds", "http-date"])
def test_a_webhook_429_waits_its_retry_after_then_delivers_once(
    conninfo: str, settings: Settings, receivers: dict[str, Any], http_date: bool
) -> None:
    """The receiver answers 429 with Retry-After (2 seconds, or an HTTP date 2 s ahead); by the
    receiver's own clock the next request comes no earlier than that, with the same webhook-id, and the
    alert is delivered once."""
    hook: WebhookReceiver = receivers["webhook"]
    hook.plan(Planned(status=429, retry_after=2.0, http_date=http_date))
    enqueue(conninfo, make_alert(1), ["webhook"])
    dispatch_until_done(conninfo, settings)
    refused, delivered = hook.requests
    assert (refused.status, delivered.status) == (429, 200)
    if http_date:
        # The date is in whole seconds: the wait asked for ends at that second.
        until = int(refused.at + 2.0)
        assert delivered.at >= until
    else:
        assert delivered.at - refused.at >= 2.0
    assert refused.headers["webhook-id"] == delivered.headers["webhook-id"]
    assert len(hook.accepted) == 1 and hook.duplicates == 0 and hook.rejected == 0
    first, second = attempts(conninfo, "webhook")
    assert (first["outcome"], first["status"], second["outcome"]) == ("retry", 429, "sent")
    assert first["retry_after_s"] is not None and first["retry_after_s"] > (1.0 if http_date else 1.99)


# -------------------------------------------------------------------------------------- size limits


def test_long_messages_fit_every_channel(
    conninfo: str, settings: Settings, receivers: dict[str, Any]
) -> None:
    medium = "\n".join(f"line {i}: wallet 0x{i:040x} health factor 0.9{i % 10} 🟠" for i in range(70))
    huge = "word " * 60_000  # 300,000 characters
    facts = {f"fact_{i:02d}": "x" * 1500 for i in range(30)}
    enqueue(conninfo, make_alert(1, medium), ["discord", "slack", "telegram", "webhook", "email"])
    enqueue(conninfo, make_alert(2, huge, **facts), ["discord", "slack", "telegram", "webhook", "email"])
    counts = dispatch_once(conninfo, settings)
    assert counts["sent"] == 10, deliveries(conninfo)
    discord = receivers["discord"].accepted
    # The medium body is split over embeds, whole; the huge one is cut with a note.
    assert "\n".join(e["description"] for e in discord[0]["embeds"]) == medium
    assert len(discord[0]["embeds"]) >= 2
    assert "cut to fit Discord" in discord[1]["embeds"][-1]["description"]
    slack = receivers["slack"].accepted
    sections = [b["text"]["text"] for b in slack[0]["blocks"] if b["type"] == "section" and "text" in b]
    assert "\n".join(sections) == medium
    assert len(slack[1]["blocks"]) == 50 and "cut to fit Slack" in str(slack[1]["blocks"])
    texts = [visible_text(m["text"], "HTML") for m in receivers["telegram"].accepted]
    assert all(utf16_len(t) <= 4096 for t in texts) and "cut to fit Telegram" in texts[1]
    assert receivers["webhook"].accepted[1]["data"]["body"] == huge  # the webhook carries it whole
    mail = email.message_from_bytes(receivers["email"].messages[1].content, policy=email.policy.default)
    assert huge.strip() in mail.get_body().get_content()  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ secrets


ALERT_TABLES = ("alerts", "alert_deliveries", "alert_attempts", "alert_silences", "alerts_fired")


def test_secrets_stay_out_of_the_database_logs_and_errors(
    conninfo: str,
    settings: Settings,
    receivers: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = receivers["discord"].token
    secrets = [
        token,
        receivers["slack"].token,
        receivers["telegram"].token,
        WHSEC,
        WHSEC.removeprefix("whsec_"),
        SMTP_PASSWORD,
    ]
    # Failures whose errors could carry a URL, a token or a password.
    receivers["discord"].plan(Planned(status=500))
    receivers["slack"].plan(Planned(status=404))
    receivers["telegram"].plan(Planned(delay_s=1.0))
    receivers["webhook"].plan(Planned(status=401))
    monkeypatch.setenv("T_BROKEN_URL", f"http://127.0.0.1:{free_port()}/api/webhooks/1/{token}")
    monkeypatch.setenv("T_SMTP_PASSWORD", SMTP_PASSWORD + "-wrong")
    secrets.append(SMTP_PASSWORD + "-wrong")
    extra = [
        ChannelConfig(name="broken", kind="discord", url_env="T_BROKEN_URL", **FAST),
        ChannelConfig(name="unset", kind="slack", url_env="T_NOT_SET_ANYWHERE", **FAST),
    ]
    everything = settings.model_copy(update={"channels": [*settings.channels, *extra]})
    names = [c.name for c in everything.channels]
    enqueue(conninfo, make_alert(1, body="no secret here"), names)
    counts = dispatch_once(conninfo, everything)
    assert counts["sent"] == 0 and sum(counts.values()) == len(names)
    errors = {key[1]: value["last_error"] for key, value in deliveries(conninfo).items()}
    assert errors["unset"] == (
        "channel 'unset': environment variable T_NOT_SET_ANYWHERE is not set (it holds the url)"
    )
    assert errors["broken"].startswith("not sent: ConnectError")
    assert errors["email"].startswith("SMTP 535 at login")
    with psycopg.connect(conninfo) as conn:
        dumps = [
            str(row[0]) for table in ALERT_TABLES for row in conn.execute(f"SELECT t::text FROM {table} t")
        ]
    text = "\n".join(dumps) + caplog.text
    assert "T_NOT_SET_ANYWHERE" in text and "HTTP 401" in text  # what was searched is there
    assert [secret for secret in secrets if secret in text] == []


def free_port() -> int:
    from tests.alerts.receivers import free_port as port

    return port()


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_env(db: str, settings: Settings, receivers: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """chainrisk.toml with the same channels and one rule; secrets stay in the environment."""
    rule = {"name": "whale-hf", "kind": "health_factor", "channels": ["slack"], "below": 1.1}
    tables = [("channels", entry) for entry in channel_entries(receivers)] + [("alerts", rule)]
    config = tmp_path / "chainrisk.toml"
    config.write_text("".join(toml_table(name, entry) for name, entry in tables))
    return {
        "CHAINRISK_CONFIG": str(config),
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }


def toml_table(name: str, entry: dict[str, Any]) -> str:
    """An array-of-tables entry; JSON's strings, numbers and lists are TOML's too."""
    return f"[[{name}]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in entry.items())


def cli(env: dict[str, str], *args: str) -> Any:
    from chainrisk.cli import app

    return CliRunner().invoke(app, ["alerts", *args], env=env)


def test_cli_alerts_test_sends_or_names_what_is_missing(
    cli_env: dict[str, str], receivers: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = cli(cli_env, "test", "discord")
    assert sent.exit_code == 0 and sent.output.startswith("sent to discord (HTTP 200, message id 11")
    assert "test message" in receivers["discord"].accepted[0]["content"]
    assert cli(cli_env, "test", "email").exit_code == 0 and len(receivers["email"].messages) == 1
    unknown = cli(cli_env, "test", "nowhere")
    assert unknown.exit_code == 2 and "unknown channel 'nowhere'" in unknown.output
    monkeypatch.delenv("T_TELEGRAM_TOKEN")
    missing = cli(cli_env, "test", "telegram")
    assert missing.exit_code == 1
    assert "environment variable T_TELEGRAM_TOKEN is not set" in missing.output
    receivers["slack"].plan(Planned(status=403))
    refused = cli(cli_env, "test", "slack")
    assert refused.exit_code == 1 and "HTTP 403" in refused.output
    assert receivers["slack"].token not in refused.output


def test_cli_list_retry_silence_dispatch(
    cli_env: dict[str, str], receivers: dict[str, Any], conninfo: str
) -> None:
    receivers["slack"].plan(Planned(status=404))
    enqueue(conninfo, make_alert(1), ["slack"])
    assert cli(cli_env, "dispatch", "--once").output.startswith("sent 0, retry 0, dead 1")
    listed = cli(cli_env, "list", "--state", "dead", "--json")
    (row,) = json.loads(listed.output)
    assert (row["channel"], row["state"]) == ("slack", "dead")
    assert row["last_error"] == "HTTP 404: upstream trouble"
    table = cli(cli_env, "list")
    assert table.exit_code == 0 and "slack" in table.output and "dead" in table.output
    assert cli(cli_env, "list", "--state", "lost").exit_code == 2
    assert cli(cli_env, "retry").exit_code == 2
    assert cli(cli_env, "retry", "999").exit_code == 2
    again = cli(cli_env, "retry", str(row["alert_id"]))
    assert again.output == f"1 deliveries of alert {row['alert_id']} back to pending\n"
    assert cli(cli_env, "dispatch", "--once").output.startswith("sent 1,")
    assert len(receivers["slack"].accepted) == 1
    receivers["slack"].plan(Planned(status=400))
    enqueue(conninfo, make_alert(3), ["slack"])
    cli(cli_env, "dispatch", "--once")
    assert cli(cli_env, "retry", "--all-failed").output == "1 deliveries of all alerts back to pending\n"
    assert cli(cli_env, "dispatch", "--once").output.startswith("sent 1,")
    silenced = cli(cli_env, "silence", "whale-hf", "--for", "2h", "--reason", "maintenance")
    assert silenced.exit_code == 0 and "silenced until" in silenced.output
    with psycopg.connect(conninfo) as conn:
        assert not outbox.enqueue(conn, make_alert(2), ["slack"])
    assert cli(cli_env, "silence", "whale-hf", "--for", "2 weeks").exit_code == 2
    assert cli(cli_env, "silence", "no-such-rule", "--for", "1h").exit_code == 2
    assert cli(cli_env, "silence", "whale-hf", "--clear").output == "rule whale-hf: silence ended\n"


# -------------------------------------------------------------------------------------------- serve


def test_serve_delivers_the_outbox_and_stops_cleanly(
    cli_env: dict[str, str], receivers: dict[str, Any], conninfo: str, tmp_path: Path
) -> None:
    """`chainrisk serve` runs the dispatcher beside its jobs when channels are configured; SIGTERM
    stops both; `serve --once` delivers what is due before it exits."""
    import os
    import signal
    import subprocess
    import sys

    config = Path(cli_env["CHAINRISK_CONFIG"])
    config.write_text(config.read_text() + '[serve.jobs.heartbeat]\ninterval = "1d"\n')
    enqueue(conninfo, make_alert(1), ["slack", "webhook"])
    env = {**os.environ, **cli_env, "CHAINRISK_HOME": str(tmp_path / "home"), "CHAINRISK_SERVE_PORT": "0"}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        served = subprocess.Popen(
            [sys.executable, "-m", "chainrisk", "serve"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while len(receivers["slack"].accepted) + len(receivers["webhook"].accepted) < 2:
            assert served.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        served.send_signal(signal.SIGTERM)
        code = served.wait(timeout=60)
    assert code == 0, log.read_text()
    assert {key[1]: value["state"] for key, value in deliveries(conninfo).items()} == {
        "slack": "sent",
        "webhook": "sent",
    }
    enqueue(conninfo, make_alert(2), ["telegram"])
    from chainrisk.cli import app

    once = CliRunner().invoke(
        app, ["serve", "--once"], env={**cli_env, "CHAINRISK_HOME": str(tmp_path / "h")}
    )
    assert once.exit_code == 0, once.output
    assert "alerts: sent 1, retry 0, dead 0, unknown 0" in once.output
    assert len(receivers["telegram"].accepted) == 1


# ------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "discord"}, "channel 'c' (discord) needs url_env or url_file for its webhook URL"),
        ({"kind": "slack", "url": "https://hooks.slack.com/services/T/B/x"}, "carries its token"),
        ({"kind": "discord", "url_env": "A-B"}, "url_env 'A-B' is not an environment variable name"),
        ({"kind": "slack", "url_env": "U", "token_env": "T"}, "token_env does not apply to a slack channel"),
        ({"kind": "telegram", "token_env": "T"}, "needs chat_id"),
        ({"kind": "webhook", "url": "https://x.example"}, "needs secret_env or secret_file"),
        ({"kind": "email", "host": "h"}, "(email) needs from_addr, to"),
        (
            {"kind": "email", "host": "h", "from_addr": "a@x", "to": ["b@x"], "password_env": "P"},
            "go together",
        ),
        (
            {"kind": "webhook", "url": "https://x", "secret_env": "S", "timeout_s": 5, "lease_s": 2},
            "must exceed",
        ),
    ],
)
def test_channel_config_is_checked_with_clear_messages(entry: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as error:
        ChannelConfig.model_validate({"name": "c", **entry})
    assert message in str(error.value)
