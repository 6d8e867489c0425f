"""The one error path of the CLI: `error: <message>` on one line of stderr, and an exit code.

Each package has one exception root with an `exit_code` (2: the user can fix the input; 1: an operation
failed): `ChainriskError`, `IndexerError`, `AnalyticsError`, `GraphError` and `DevnetError`. Every Typer app
of the CLI is built by `new_app`, whose group catches those roots and click's usage errors wherever a
command, its callback or its option parsing raises them. Anything else is a bug and keeps its traceback.
Sub-apps use the same group, so `forecast`, say, answers the same way when invoked on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import ValidationError
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

# URLs in messages lose their API keys and passwords here too, whatever the raiser did.
_URL = re.compile(r"https?://[^\s'\"<>(),;`]+")


def error_roots() -> tuple[type[Exception], ...]:
    """The exception roots of the packages (each light to import: no pandas, torch or web3)."""
    from analytics.errors import AnalyticsError
    from chainrisk.errors import ChainriskError
    from devnet.errors import DevnetError
    from graph.errors import GraphError
    from indexer.errors import IndexerError

    return (ChainriskError, IndexerError, AnalyticsError, GraphError, DevnetError)


def one_line(message: str) -> str:
    """The message on one line (continuation lines joined by '; ') with every URL redacted."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return _URL.sub(lambda m: _redacted(m.group()), "; ".join(lines) or "(no message)")


def _redacted(url: str) -> str:
    from indexer.chain import redact_url, url_secrets

    try:
        return redact_url(url) if url_secrets(url) else url
    except ValueError:  # e.g. a port out of range: nothing of it is worth showing
        return url.split("://", 1)[0] + "://***"


def error_exit(message: str, code: int) -> typer.Exit:
    """Print `error: <message>` on stderr; the caller raises the returned Exit."""
    typer.echo(f"error: {one_line(message)}", err=True)
    return typer.Exit(code)


@contextmanager
def answered() -> Iterator[None]:
    """Turn the package roots and usage errors raised inside into one line and their exit code."""
    try:
        yield
    except NoArgsIsHelpError:
        raise  # prints the help, as asked
    except UsageError as exc:
        raise error_exit(usage_message(exc), exc.exit_code) from None
    except error_roots() as exc:
        raise error_exit(str(exc), int(getattr(exc, "exit_code", 1))) from None


def usage_message(exc: UsageError) -> str:
    """Click's message with the rejected value (typer's validation leaves it out) and where help is."""
    message = exc.format_message().replace("Value error, ", "")
    cause = exc.__cause__
    if isinstance(cause, ValidationError) and cause.errors():
        value = cause.errors()[0].get("input")
        if value is not None and repr(value) not in message:
            message += f"; got {value!r}"
    hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    return message + hint


class ErrorExitGroup(TyperGroup):
    """A Typer group that answers errors through `answered`: while parsing and while invoking."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with answered():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with answered():
            return super().invoke(ctx)


def new_app(**options: Any) -> typer.Typer:
    """A Typer app whose errors take the one error path."""
    return typer.Typer(cls=ErrorExitGroup, **options)
