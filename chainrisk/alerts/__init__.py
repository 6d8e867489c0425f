"""Alerts to risk teams and DAO governance channels: rules that find what deserves attention
(:mod:`.rules`), a transactional outbox in PostgreSQL (:mod:`.outbox`), and a dispatcher that delivers to
Discord, Slack, Telegram, signed webhooks and email (:mod:`.dispatch`, :mod:`.channels`)."""
