"""Where alerts go: one sender per channel kind (Discord, Slack, Telegram, signed webhooks, email).

`sender(channel, client)` builds the sender for a `[[channels]]` entry; every sender takes a `Message`
and returns a `Result` (sent, retry, dead or unknown; see :mod:`.base`). Senders make exactly one request
per message, so a retry never repeats half of a message.
"""

from __future__ import annotations

import logging

import httpx

from chainrisk.alerts.channels.base import Message, Result, Sender
from chainrisk.alerts.channels_config import ChannelConfig

__all__ = ["Message", "Result", "Sender", "http_client", "sender"]

# httpx logs every request's URL at INFO, and webhook URLs and bot tokens are secrets: never let it.
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def http_client(timeout_s: float) -> httpx.Client:
    """A client that does not follow redirects (a moved webhook is a configuration error)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        headers={"user-agent": "chainrisk-alerts"},
    )


def sender(channel: ChannelConfig, client: httpx.Client) -> Sender:
    """The sender for `channel`."""
    from chainrisk.alerts.channels.discord import DiscordSender
    from chainrisk.alerts.channels.slack import SlackSender
    from chainrisk.alerts.channels.smtp import EmailSender
    from chainrisk.alerts.channels.telegram import TelegramSender
    from chainrisk.alerts.channels.webhook import WebhookSender

    if channel.kind == "discord":
        return DiscordSender(channel, client)
    if channel.kind == "slack":
        return SlackSender(channel, client)
    if channel.kind == "telegram":
        return TelegramSender(channel, client)
    if channel.kind == "webhook":
        return WebhookSender(channel, client)
    return EmailSender(channel)
