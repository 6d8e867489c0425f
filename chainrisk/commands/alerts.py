"""`chainrisk alerts`: test a channel, list what fired and where it went, retry, silence, dispatch.

Alerts are delivered by `chainrisk serve` (the dispatcher runs beside the scheduler when [[channels]] are
configured) or by `chainrisk alerts dispatch`; docs/ALERTS.md has the channels, states and guarantees.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from chainrisk.context import app_context, console, fail
from chainrisk.exits import new_app

app = new_app(help="Alerts: channels, the outbox and its deliveries.", no_args_is_help=True)

STATES = "pending, in_flight, sent, failed, unknown or dead"
ChannelArg = Annotated[str, typer.Argument(help="A \\[\\[channels]] name from chainrisk.toml.")]
StateOpt = Annotated[str | None, typer.Option("--state", help=f"Only deliveries in this state: {STATES}.")]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many rows.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON array.")]
AlertIdArg = Annotated[int | None, typer.Argument(min=1, help="The alert id (alerts list).")]
AllFailedOpt = Annotated[
    bool, typer.Option("--all-failed", help="Every failed, unknown and dead delivery of every alert.")
]
RetryChannelOpt = Annotated[str | None, typer.Option("--channel", help="Only the delivery to this channel.")]
RuleArg = Annotated[str, typer.Argument(help="An \\[\\[alerts]] rule name.")]
ForOpt = Annotated[str | None, typer.Option("--for", help="How long: 30m, 2h, 1d, 1h30m.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why, kept with the silence.")]
ClearOpt = Annotated[bool, typer.Option("--clear", help="End the rule's silence now.")]
OnceOpt = Annotated[bool, typer.Option("--once", help="Send what is due now, then exit.")]


@app.command("test")
def test_(ctx: typer.Context, channel: ChannelArg) -> None:
    """Send a test message to CHANNEL now and print what came of it.

    Exit 0: sent; 1: not delivered (the error says why; a missing secret is named, never shown);
    2: no such channel.
    """
    from chainrisk.alerts.dispatch import send_test

    result = send_test(app_context(ctx).settings, channel)
    status = f"HTTP {result.status}" if result.status else "no answer"
    if result.kind != "sent":
        reason = (result.error or status).removeprefix(f"channel {channel!r}: ")
        raise fail(f"channel {channel!r}: not delivered ({result.kind}): {reason}", code=1)
    where = f", message id {result.provider_id}" if result.provider_id else ""
    typer.echo(f"sent to {channel} ({status}{where})")


@app.command("list")
def list_(ctx: typer.Context, state: StateOpt = None, limit: LimitOpt = 50, as_json: JsonOpt = False) -> None:
    """The latest alerts and their deliveries, newest first: one row per alert and channel."""
    import psycopg

    from chainrisk.alerts.outbox import list_deliveries
    from chainrisk.alerts.tables import DELIVERY_STATES
    from chainrisk.inputs import OptionError

    if state is not None and state not in DELIVERY_STATES:
        raise OptionError(f"--state {state!r}: expected {STATES}")
    with psycopg.connect(app_context(ctx).conninfo(migrate=True)) as conn:
        rows = list_deliveries(conn, state, limit)
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    _print_rows(rows)


def _print_rows(rows: list[dict[str, object]]) -> None:
    from rich.table import Table

    table = Table(title=f"{len(rows)} deliveries (newest alerts first)")
    columns = ("alert_id", "created_at", "severity", "rule", "title", "channel", "state", "attempts")
    for column in (*columns, "detail"):
        table.add_column(column)
    for row in rows:
        created = row["created_at"]
        cells = [str(row[c]) if row[c] is not None else "" for c in columns]
        cells[1] = f"{created:%Y-%m-%d %H:%M:%S}" if created is not None else ""
        detail = row["last_error"] or (f"id {row['provider_id']}" if row["provider_id"] else "")
        table.add_row(*cells, str(detail))
    console().print(table)


@app.command("retry")
def retry(
    ctx: typer.Context,
    alert_id: AlertIdArg = None,
    all_failed: AllFailedOpt = False,
    channel: RetryChannelOpt = None,
) -> None:
    """Put failed, unknown and dead deliveries back to pending: one alert's (ALERT_ID) or --all-failed.

    The dispatcher (serve, or `alerts dispatch`) sends them on its next round.
    """
    import psycopg

    from chainrisk.alerts.outbox import alert_exists
    from chainrisk.alerts.outbox import retry as put_back
    from chainrisk.inputs import OptionError

    if (alert_id is None) == (not all_failed):
        raise OptionError("give an alert id or --all-failed (one of the two)")
    with psycopg.connect(app_context(ctx).conninfo(migrate=True)) as conn:
        if alert_id is not None and not alert_exists(conn, alert_id):
            raise OptionError(f"alert {alert_id}: no such alert (see `chainrisk alerts list`)")
        count = put_back(conn, alert_id, channel)
    scope = f"alert {alert_id}" if alert_id is not None else "all alerts"
    typer.echo(f"{count} deliveries of {scope} back to pending")


@app.command("silence")
def silence(
    ctx: typer.Context, rule: RuleArg, for_: ForOpt = None, reason: ReasonOpt = None, clear: ClearOpt = False
) -> None:
    """Stop RULE's alerts from being enqueued for a while (--for 2h), or end its silence (--clear).

    Alerts already enqueued are still delivered; a silenced rule's new alerts are not stored at all.
    """
    import psycopg

    from chainrisk.alerts import outbox
    from chainrisk.inputs import OptionError

    app = app_context(ctx)
    rules = [r.name for r in app.settings.alerts]
    if rule not in rules:
        raise OptionError(f"unknown rule {rule!r}; configured rules: {', '.join(rules) or 'none'}")
    if clear == (for_ is not None):
        raise OptionError("give --for DURATION or --clear (one of the two)")
    with psycopg.connect(app.conninfo(migrate=True)) as conn:
        if clear:
            ended = outbox.clear_silence(conn, rule)
            typer.echo(f"rule {rule}: silence ended" if ended else f"rule {rule} was not silenced")
            return
        try:
            seconds = outbox.parse_duration(for_ or "")
        except ValueError as exc:
            raise OptionError(f"--for {exc}") from None
        until = outbox.silence(conn, rule, seconds, reason)
    typer.echo(f"rule {rule} silenced until {until:%Y-%m-%d %H:%M:%S %Z}")


@app.command("dispatch")
def dispatch(ctx: typer.Context, once: OnceOpt = False) -> None:
    """Deliver the outbox in the foreground until SIGTERM or Ctrl-C (--once: what is due now).

    `chainrisk serve` runs the same dispatcher; several may run at once (each delivery goes to one).
    """
    import signal
    import threading

    from chainrisk.alerts.dispatch import dispatch_once, require_outbox, run_dispatcher

    app = app_context(ctx)
    if not app.settings.channels:
        raise fail("no [[channels]] in the configuration: nothing to deliver to")
    conninfo = app.conninfo()  # a worker beside `chainrisk serve`: it does not migrate, it checks
    require_outbox(conninfo)
    if once:
        counts = dispatch_once(conninfo, app.settings)
        typer.echo(", ".join(f"{name} {count}" for name, count in counts.items()))
        return
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.set())
    run_dispatcher(conninfo, app.settings, stopping)


CheckJsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
EnqueueOpt = Annotated[
    bool, typer.Option("--enqueue", help="Put what fires in the outbox (else: only print).")
]
CheckRuleOpt = Annotated[str | None, typer.Option("--rule", help="Only this rule (even when disabled).")]
AtOpt = Annotated[str | None, typer.Option("--at", help="Evaluate as of this ISO time (default: now).")]


@app.command("check")
def check(
    ctx: typer.Context,
    as_json: CheckJsonOpt = False,
    enqueue: EnqueueOpt = False,
    rule: CheckRuleOpt = None,
    at: AtOpt = None,
) -> None:
    """Evaluate the \\[\\[alerts]] rules once and print what fires, with each alert's message.

    Nothing is written unless --enqueue; then the alerts go to the outbox exactly as the serve job puts
    them (an alert already there within its cooldown is not added again). Exit 1 when a rule failed.
    """
    from chainrisk.alerts.job import check as evaluate
    from chainrisk.alerts.job import check_document, check_lines, check_rule_name, parse_at
    from chainrisk.inputs import OptionError

    app = app_context(ctx)
    try:
        when = parse_at(at)
        check_rule_name(app.settings.alerts, rule)
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    outcomes = evaluate(app.conninfo(migrate=True), app.settings.alerts, when, enqueue=enqueue, only=rule)
    if as_json:
        typer.echo(json.dumps(check_document(outcomes, when, enqueue), default=str))
    else:
        typer.echo("\n".join(check_lines(outcomes, enqueue)))
    failed = [o.rule for o in outcomes if o.error is not None]
    if failed:
        raise fail(f"rules failed: {', '.join(failed)}", code=1)
