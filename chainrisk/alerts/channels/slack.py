"""Slack incoming webhooks: `POST {url}` with a fallback `text` and Block Kit blocks; the answer is `ok`.

Limits (Slack's): a section's text 3,000 characters, 50 blocks per message, a header 150. The body is
split into sections of at most 3,000 (at line ends where possible), facts go in section fields (10 per
section, 2,000 each), and what does not fit in 50 blocks is cut with a note naming the alert. Slack
returns no message id and has no idempotency key. A 429's wait comes from Retry-After.
"""

from __future__ import annotations

from typing import Any

import httpx

from chainrisk.alerts.channels.base import (
    Message,
    Result,
    chunks,
    classify,
    clip,
    fact_lines,
    footer,
    headline,
    missing_secret,
    post,
    short,
)
from chainrisk.alerts.channels_config import ChannelConfig, ChannelSecretError

SECTION = 3000
BLOCKS = 50
HEADER = 150
FIELD = 2000
FIELDS_PER_SECTION = 10
TEXT = 3000  # the notification's fallback text: well under Slack's 40,000


class SlackSender:
    """Sends to one Slack incoming webhook."""

    def __init__(self, channel: ChannelConfig, client: httpx.Client) -> None:
        self.channel = channel
        self.client = client

    def send(self, message: Message) -> Result:
        try:
            url = self.channel.secret("url")
        except ChannelSecretError as exc:
            return missing_secret(exc)
        assert url is not None
        secrets = self.channel.secret_values()
        answer = post(self.client, url, secrets, json=payload(message))
        if isinstance(answer, Result):
            return answer
        return classify(answer, secrets, detail=short(answer.text) if answer.status_code >= 300 else None)


def escape(text: str) -> str:
    """Slack's mrkdwn reserves &, < and >."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(message: Message) -> dict[str, Any]:
    """The webhook's JSON for `message`, within every Slack limit."""
    alert = message.alert
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(headline(alert), HEADER)}}
    ]
    fact_blocks = _fact_sections(alert.facts)
    context = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": clip(escape(footer(alert)), SECTION)}],
    }
    room = BLOCKS - len(blocks) - len(fact_blocks) - 1
    pieces = chunks(escape(alert.body or "—"), SECTION)
    if len(pieces) > room:
        note = f"\n… (cut to fit Slack; alert {message.alert_id} in alerts_fired has the full text)"
        pieces = [*pieces[: room - 1], clip(pieces[room - 1] + note, SECTION, note)]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": piece}} for piece in pieces]
    blocks += [*fact_blocks, context]
    return {"text": clip(headline(alert), TEXT), "blocks": blocks}


def _fact_sections(facts: dict[str, Any]) -> list[dict[str, Any]]:
    lines = [clip(f"*{escape(name)}*\n{escape(value)}", FIELD) for name, value in fact_lines(facts)]
    # Two sections of facts at most: the body keeps the rest of the 50 blocks.
    lines = lines[: 2 * FIELDS_PER_SECTION]
    return [
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": t} for t in lines[i : i + FIELDS_PER_SECTION]],
        }
        for i in range(0, len(lines), FIELDS_PER_SECTION)
    ]
