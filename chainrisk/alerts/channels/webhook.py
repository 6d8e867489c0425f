"""Generic webhooks signed per Standard Webhooks 1.0.

Each request carries `webhook-id` (the delivery's id: the same on every retry, so a receiver that
remembers ids acts once), `webhook-timestamp` (unix seconds) and `webhook-signature`
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with the base64 part of a ``whsec_``
secret). The body is the whole alert as JSON, never cut. Because receivers dedup on the id, a send that
got no answer is sent again by default (`resend_unknown`), with the same id and a fresh signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from chainrisk.alerts.channels.base import Message, Result, classify, missing_secret, post, short
from chainrisk.alerts.channels_config import ChannelConfig, ChannelSecretError

SECRET_PREFIX = "whsec_"


class WebhookSender:
    """Sends signed alerts to one URL."""

    def __init__(self, channel: ChannelConfig, client: httpx.Client) -> None:
        self.channel = channel
        self.client = client

    def send(self, message: Message) -> Result:
        try:
            url = self.channel.url or self.channel.secret("url")
            secret = self.channel.secret("secret")
            assert url is not None and secret is not None
            key = signing_key(self.channel.name, secret)
        except ChannelSecretError as exc:
            return missing_secret(exc)
        secrets = self.channel.secret_values()
        body = json.dumps(payload(message), separators=(",", ":"), sort_keys=True, default=str)
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "webhook-id": message.message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign(key, message.message_id, timestamp, body),
        }
        answer = post(self.client, url, secrets, content=body.encode(), headers=headers)
        if isinstance(answer, Result):
            return answer
        return classify(answer, secrets, detail=short(answer.text) if answer.status_code >= 300 else None)


def signing_key(channel: str, secret: str) -> bytes:
    """The HMAC key: the base64 after ``whsec_``."""
    if not secret.startswith(SECRET_PREFIX):
        raise ChannelSecretError(
            f"channel {channel!r}: the signing secret does not start with {SECRET_PREFIX}"
        )
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :] + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ChannelSecretError(
            f"channel {channel!r}: the signing secret is not base64 after whsec_"
        ) from None
    if len(key) < 16:
        raise ChannelSecretError(f"channel {channel!r}: the signing secret is shorter than 16 bytes")
    return key


def sign(key: bytes, message_id: str, timestamp: str, body: str) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload(message: Message) -> dict[str, Any]:
    """The whole alert: what fired, when and why."""
    alert = message.alert
    when = alert.observed_at or message.created_at
    return {
        "type": "chainrisk.alert",
        "timestamp": when.isoformat() if when else None,
        "data": {
            "alert_id": message.alert_id,
            "dedup_key": alert.dedup_key,
            "rule": alert.rule,
            "kind": alert.kind,
            "severity": alert.severity,
            "subject": alert.subject,
            "period": alert.period,
            "title": alert.title,
            "body": alert.body,
            "facts": alert.facts,
            "chain_id": alert.chain_id,
            "observed_at": alert.observed_at.isoformat() if alert.observed_at else None,
            "created_at": message.created_at.isoformat() if message.created_at else None,
        },
    }
