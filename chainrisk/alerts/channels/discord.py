"""Discord webhooks: `POST {url}?wait=true` with content and embeds; the answer carries the message id.

Limits (Discord's): content 2,000 characters; per embed a title of 256, a description of 4,096, 25 fields
(name 256, value 1,024), a footer of 2,048; at most 10 embeds and 6,000 characters of embed text per
message. The headline goes in `content`; the body fills embed descriptions, one after the other, and what
does not fit in the 6,000 is cut with a note naming the alert. Mentions are disabled: an alert's text
never pings anyone. A 429's wait comes from its Retry-After header or its JSON `retry_after`.
"""

from __future__ import annotations

from typing import Any

import httpx

from chainrisk.alerts.channels.base import (
    Message,
    Result,
    as_seconds,
    chunks,
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

CONTENT = 2000
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
EMBEDS = 10
EMBED_TOTAL = 6000
# Facts get at most this much of the 6,000 so that the body keeps most of the room.
FACTS_BUDGET = 1500
COLORS = {"info": 0x95A5A6, "low": 0x3498DB, "medium": 0xF1C40F, "high": 0xE67E22, "critical": 0xE74C3C}


class DiscordSender:
    """Sends to one Discord webhook."""

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
        target = httpx.URL(url).copy_merge_params({"wait": "true"})
        answer = post(self.client, target, secrets, json=payload(message))
        if isinstance(answer, Result):
            return answer
        body = json_body(answer)
        provider_id = str(body["id"]) if 200 <= answer.status_code < 300 and "id" in body else None
        return classify(
            answer,
            secrets,
            provider_id=provider_id,
            body_retry_after=as_seconds(body.get("retry_after")),
            detail=short(body.get("message")),
        )


def payload(message: Message) -> dict[str, Any]:
    """The webhook's JSON for `message`, within every Discord limit."""
    alert = message.alert
    fields = _fields(alert.facts)
    foot = clip(footer(alert), FOOTER)
    title = clip(alert.title, TITLE)
    used = (
        utf16_len(title) + utf16_len(foot) + sum(utf16_len(f["name"]) + utf16_len(f["value"]) for f in fields)
    )
    note = f"\n… (cut to fit Discord; alert {message.alert_id} in alerts_fired has the full text)"
    body = clip(alert.body or "—", EMBED_TOTAL - used, note)
    pieces = chunks(body, DESCRIPTION)[:EMBEDS]
    color = COLORS.get(alert.severity, COLORS["info"])
    embeds: list[dict[str, Any]] = [{"description": piece, "color": color} for piece in pieces]
    embeds[0]["title"] = title
    if fields:
        embeds[0]["fields"] = fields
    embeds[-1]["footer"] = {"text": foot}
    if alert.observed_at is not None:
        embeds[-1]["timestamp"] = alert.observed_at.isoformat()
    return {
        "content": clip(headline(alert), CONTENT),
        "username": "chainrisk",
        "allowed_mentions": {"parse": []},
        "embeds": embeds,
    }


def _fields(facts: dict[str, Any]) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = []
    used = 0
    for name, value in fact_lines(facts)[:FIELDS]:
        shown, text = clip(name, FIELD_NAME), clip(value or "—", FIELD_VALUE)
        size = utf16_len(shown) + utf16_len(text)
        if used + size > FACTS_BUDGET:
            break
        fields.append({"name": shown, "value": text, "inline": True})
        used += size
    return fields
