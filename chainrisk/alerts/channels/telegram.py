"""Telegram bots: `POST {api_url}/bot<token>/sendMessage` with HTML text; the answer carries message_id.

The limit is 4,096 characters of text after entity parsing (what the reader sees, tags and escapes not
counted), measured in UTF-16 units as Telegram does. The body is cut to fit with a note naming the alert
(one request per delivery: a message split over several requests could be half-delivered and then
repeated). A 429 carries its wait in `parameters.retry_after`. The token is in the URL's path: it is
never logged, and errors have it replaced by ***.
"""

from __future__ import annotations

import html
from typing import Any

import httpx

from chainrisk.alerts.channels.base import (
    Message,
    Result,
    as_seconds,
    classify,
    clip,
    fact_lines,
    footer,
    headline,
    json_body,
    missing_secret,
    post,
    short,
    utf16_len,
)
from chainrisk.alerts.channels_config import ChannelConfig, ChannelSecretError

TEXT = 4096


class TelegramSender:
    """Sends to one Telegram chat through one bot."""

    def __init__(self, channel: ChannelConfig, client: httpx.Client) -> None:
        self.channel = channel
        self.client = client

    def send(self, message: Message) -> Result:
        try:
            token = self.channel.secret("token")
        except ChannelSecretError as exc:
            return missing_secret(exc)
        secrets = self.channel.secret_values()
        url = f"{self.channel.api_url.rstrip('/')}/bot{token}/sendMessage"
        answer = post(self.client, url, secrets, json=payload(message, self.channel.chat_id))
        if isinstance(answer, Result):
            return answer
        body = json_body(answer)
        result = body.get("result")
        provider_id = None
        if 200 <= answer.status_code < 300 and isinstance(result, dict) and "message_id" in result:
            provider_id = str(result["message_id"])
        parameters = body.get("parameters")
        wait = as_seconds(parameters.get("retry_after")) if isinstance(parameters, dict) else None
        return classify(
            answer,
            secrets,
            provider_id=provider_id,
            body_retry_after=wait,
            detail=short(body.get("description")),
        )


def payload(message: Message, chat_id: str | int | None) -> dict[str, Any]:
    """sendMessage's JSON for `message`: at most 4,096 visible characters."""
    alert = message.alert
    head = headline(alert)
    facts = "\n".join(f"{name}: {value}" for name, value in fact_lines(alert.facts))
    foot = footer(alert)
    # Visible text: head, body, facts, footer, separated by blank lines; only the body and facts give way.
    fixed = utf16_len(head) + utf16_len(foot) + 6
    facts = clip(facts, min(utf16_len(facts), (TEXT - fixed) // 3))
    note = f"\n… (cut to fit Telegram; alert {message.alert_id} in alerts_fired has the full text)"
    body = clip(alert.body or "—", TEXT - fixed - utf16_len(facts), note)
    parts = [f"<b>{html.escape(head)}</b>", html.escape(body)]
    if facts:
        parts.append(f"<code>{html.escape(facts)}</code>")
    parts.append(f"<i>{html.escape(foot)}</i>")
    return {
        "chat_id": chat_id,
        "text": "\n\n".join(parts),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
