"""Email over SMTP (smtplib): one message per delivery to the channel's recipients.

The Message-ID comes from the alert's dedup key, so a message sent twice threads as one in mail clients
(SMTP servers do not dedup). Transport security is STARTTLS (port 587 by default), implicit TLS (`ssl`,
465) or none (25; for a relay on the same host). SMTP replies map like HTTP's: 2xx sent, 4xx retry, 5xx
dead. A failure before the message data is written (connect, greeting, login) is a retry; a timeout or a
dropped connection while sending it is unknown: the server may have queued the message.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from chainrisk.alerts.channels.base import (
    Message,
    Result,
    fact_lines,
    footer,
    headline,
    missing_secret,
    scrub,
)
from chainrisk.alerts.channels_config import ChannelConfig, ChannelSecretError

PORTS = {"starttls": 587, "ssl": 465, "none": 25}


class EmailSender:
    """Sends alerts by mail through one SMTP server."""

    def __init__(self, channel: ChannelConfig) -> None:
        self.channel = channel

    def send(self, message: Message) -> Result:
        try:
            password = self.channel.secret("password")
        except ChannelSecretError as exc:
            return missing_secret(exc)
        secrets = self.channel.secret_values()
        mail = build(message, self.channel)
        try:
            server = self._connect(password)
        except smtplib.SMTPResponseException as exc:
            return _reply(exc.smtp_code, exc.smtp_error, secrets, "login")
        except (OSError, smtplib.SMTPException) as exc:
            return Result("retry", error=scrub(f"not sent: {type(exc).__name__}: {exc}", secrets))
        try:
            refused = server.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            return _reply(min(codes), b"every recipient refused", secrets, "send")
        except smtplib.SMTPResponseException as exc:
            return _reply(exc.smtp_code, exc.smtp_error, secrets, "send")
        except (OSError, smtplib.SMTPException) as exc:
            # Part of the message, or all of it, was written: the server may have it.
            return Result("unknown", error=scrub(f"no answer: {type(exc).__name__}: {exc}", secrets))
        finally:
            _quit(server)
        error = f"refused by {', '.join(sorted(refused))}" if refused else None
        return Result("sent", 250, provider_id=str(mail["Message-ID"]), error=error)

    def _connect(self, password: str | None) -> smtplib.SMTP:
        channel = self.channel
        assert channel.host is not None
        port = channel.port or PORTS[channel.security]
        timeout = channel.timeout_s
        server: smtplib.SMTP
        if channel.security == "ssl":
            server = smtplib.SMTP_SSL(
                channel.host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            server = smtplib.SMTP(channel.host, port, timeout=timeout)
        try:
            server.ehlo()
            if channel.security == "starttls":
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
            if channel.username is not None and password is not None:
                server.login(channel.username, password)
        except BaseException:
            _quit(server)
            raise
        return server


def _reply(code: int, text: bytes | str, secrets: list[str], stage: str) -> Result:
    line = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    error = scrub(f"SMTP {code} at {stage}: {line}", secrets)
    if 400 <= code < 500:
        return Result("retry", code, error=error)
    return Result("dead", code, error=error)


def _quit(server: smtplib.SMTP) -> None:
    try:
        server.quit()
    except (OSError, smtplib.SMTPException):
        server.close()


def message_id(dedup_key: str) -> str:
    """<hash-of-the-dedup-key@chainrisk.alerts>: the same for the same alert, whatever the retries."""
    return f"<{hashlib.sha256(dedup_key.encode()).hexdigest()[:40]}@chainrisk.alerts>"


def build(message: Message, channel: ChannelConfig) -> EmailMessage:
    """The mail: the headline as subject, the body, the facts and where the alert came from."""
    alert = message.alert
    mail = EmailMessage()
    mail["Subject"] = headline(alert).replace("\n", " ")
    mail["From"] = channel.from_addr or ""
    mail["To"] = ", ".join(channel.to)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(alert.dedup_key)
    mail["X-Chainrisk-Alert"] = alert.dedup_key.replace("\n", " ")
    facts = "\n".join(f"  {name}: {value}" for name, value in fact_lines(alert.facts))
    text = [alert.title, "", alert.body]
    if facts:
        text += ["", "Facts:", facts]
    text += ["", f"-- {footer(alert)} (alert {message.alert_id}, view alerts_fired)"]
    mail.set_content("\n".join(text))
    return mail
