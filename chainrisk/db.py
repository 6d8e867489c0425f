"""The database: CHAINRISK_DATABASE_URL when set, else the embedded PostgreSQL under CHAINRISK_HOME.

A configured URL is checked before anything connects with it (a PostgreSQL URL, its password
percent-encoded), then probed with one connection, so that a mistake is one line naming the variable, the
value with its password hidden, and the expected form, never a traceback. The password never appears in a
message or a log line, not even in part: a URL whose password holds an unencoded `@`, `/` or `?` cannot be
split reliably, so everything before its last `@` is hidden.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import sqlalchemy as sa

from chainrisk import embedded
from chainrisk.embedded import EMBEDDED_DATABASE, EmbeddedServerError
from chainrisk.embedded import stop as stop_embedded
from chainrisk.errors import ChainriskError
from chainrisk.reader import ReaderGrant, ReaderRoleError, grant_reader

__all__ = [
    "EMBEDDED_DATABASE",
    "DatabaseUrlError",
    "EmbeddedServerError",
    "ReaderGrant",
    "ReaderRoleError",
    "check_database_url",
    "connect",
    "embedded_pgdata",
    "grant_reader",
    "make_engine",
    "redact_url",
    "resolve_url",
    "start_embedded",
    "stop_embedded",
    "to_libpq_url",
    "to_sqlalchemy_url",
]

URL_ENV = "CHAINRISK_DATABASE_URL"
EXPECTED_URL = (
    "expected postgresql://user:password@host:port/dbname "
    "(percent-encode special characters in the user and password, e.g. @ as %40)"
)
CONNECT_TIMEOUT_S = 5

_SCHEME = re.compile(r"^(postgres|postgresql)(\+[A-Za-z0-9_]+)?://", re.IGNORECASE)
_HOSTPORT = re.compile(r"^[A-Za-z0-9._~%\-\[\]:,]*$")
_QUERY_SECRET = re.compile(r"((?:^|[?&;\s])(?:ssl)?password=)[^&;\s]*", re.IGNORECASE)


class DatabaseUrlError(ChainriskError):
    """CHAINRISK_DATABASE_URL is not a usable PostgreSQL URL, or its server cannot be reached."""


def embedded_pgdata(home: Path) -> Path:
    return embedded.pgdata_of(home)


def start_embedded(home: Path) -> str:
    """Start (or reuse) the embedded server and return a SQLAlchemy URL to its `chainrisk` database."""
    return to_sqlalchemy_url(embedded.start(home))


def resolve_url(database_url: str | None, home: Path) -> str:
    """The SQLAlchemy URL to use: the configured one (checked and reachable), else the embedded server's."""
    if database_url is None:
        return start_embedded(home)
    url = check_database_url(database_url)
    probe(url, shown=database_url)
    return url


def check_database_url(value: str) -> str:
    """The SQLAlchemy form of a configured URL, or a DatabaseUrlError before anything connects."""
    if not value.strip():
        raise DatabaseUrlError(
            f"{URL_ENV} is set but empty; {EXPECTED_URL}, or unset it to use the embedded server"
        )
    scheme = _SCHEME.match(value)
    if scheme is None:
        raise _url_error(value, "is not a PostgreSQL URL")
    rest = value[scheme.end() :]
    if re.search(r"%(?![0-9A-Fa-f]{2})", value):
        raise _url_error(value, "has a % that is not followed by two hex digits")
    authority = _authority(value, rest)
    _, _, hostport = authority.rpartition("@")
    if not _HOSTPORT.match(hostport):
        raise _url_error(value, f"has an invalid host or port {hostport!r}")
    return to_sqlalchemy_url(value.strip())


def _authority(value: str, rest: str) -> str:
    """user:password@host:port, refusing an `@` that could leave part of a password outside it."""
    at = rest.count("@")
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    if at > 1 or (at == 1 and rest.index("@") > end):
        raise _url_error(value, "has an unencoded @, / or ? in its user or password")
    return rest[:end]


def _url_error(value: str, problem: str) -> DatabaseUrlError:
    return DatabaseUrlError(f"{URL_ENV} {redact_url(value)!r} {problem}; {EXPECTED_URL}")


def probe(url: str, shown: str | None = None) -> None:
    """Connect once, so that an unreachable server or a wrong password is one clear line.

    `shown` is the URL as the user wrote it, for the message (redacted).
    """
    try:
        with psycopg.connect(to_libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S):
            pass
    except psycopg.Error as exc:
        reason = _first_line(str(exc), _password(url))
        raise DatabaseUrlError(
            f"cannot connect with {URL_ENV} {redact_url(shown or url)!r}: {reason}; {EXPECTED_URL}"
        ) from None


def _first_line(message: str, secret: str | None) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = lines[0] if lines else "no reason given"
    text = re.sub(r"\s+", " ", re.sub(r"^connection (failed|is bad): ", "", text))
    # libpq does not echo passwords; this is for the day one of its messages would.
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def _password(url: str) -> str | None:
    try:
        return sa.make_url(to_sqlalchemy_url(url)).password
    except (sa.exc.ArgumentError, ValueError):
        return None


def redact_url(url: str) -> str:
    """The URL without its password, for messages; when in doubt, hide more.

    Everything between the user name and the last `@` is hidden (a password may hold an unencoded `@`,
    `/` or `?`), and so is a `password=` query value. Text that is not a URL at all keeps only what follows
    its last `@`.
    """
    url = _QUERY_SECRET.sub(r"\1***", url)
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***@" + url.rpartition("@")[2]
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if "/" in user or "?" in user:  # the split is not where it seems: show nothing of it
        return f"{scheme}://***@{host}"
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def to_sqlalchemy_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url, flags=re.IGNORECASE)


def to_libpq_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url, flags=re.IGNORECASE)


def make_engine(url: str) -> sa.Engine:
    return sa.create_engine(to_sqlalchemy_url(url), pool_pre_ping=True)


def connect(url: str, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """A raw psycopg connection, for COPY and bulk work."""
    return psycopg.connect(to_libpq_url(url), autocommit=autocommit)
