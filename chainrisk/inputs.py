"""Checks of command-line input that click's types do not make: files, dates, ports, addresses.

Each raises `OptionError` naming the option, the value and the expected form, before a command touches the
database or a file, so a refused command changes nothing.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from chainrisk.errors import ChainriskError
from indexer.config import MAX_CHAIN_ID

__all__ = ["MAX_BLOCK", "MAX_CHAIN_ID", "MAX_PORT", "OptionError"]

# Block numbers are stored as BIGINT; anything above is a typo, not a block.
MAX_BLOCK = 2**63 - 1
MAX_PORT = 65_535


class OptionError(ChainriskError, ValueError):
    """A command-line option, argument or input file is wrong; the message names it and the value."""


def input_file(option: str, path: Path, what: str = "file") -> Path:
    """An existing regular file (or a device such as /dev/stdin), never a directory."""
    if not path.exists():
        raise OptionError(f"{option} {str(path)!r}: {what} not found; expected an existing file")
    if path.is_dir():
        raise OptionError(f"{option} {str(path)!r}: is a directory; expected a {what}")
    return path


def output_file(option: str, path: Path) -> Path:
    """A path a file can be written to: not a directory, inside an existing directory."""
    if path.is_dir():
        raise OptionError(f"{option} {str(path)!r}: is a directory; expected a file name to write")
    parent = path.parent
    if not parent.is_dir():
        raise OptionError(
            f"{option} {str(path)!r}: the folder {str(parent)!r} does not exist; create it or choose another"
        )
    return path


def output_dir(option: str, path: Path) -> Path:
    """A folder to write into: an existing folder or a new one, never an existing file."""
    if path.exists() and not path.is_dir():
        raise OptionError(f"{option} {str(path)!r}: is a file; expected a folder")
    return path


def iso_date(option: str, value: str) -> str:
    """A calendar date written YYYY-MM-DD."""
    try:
        date.fromisoformat(value)
    except ValueError:
        raise OptionError(f"{option} {value!r}: not a date; expected YYYY-MM-DD, e.g. 2022-01-31") from None
    if len(value) != 10:  # fromisoformat also takes 20220131 and week dates
        raise OptionError(f"{option} {value!r}: expected YYYY-MM-DD, e.g. 2022-01-31")
    return value


def date_range(start_option: str, start: str, end_option: str, end: str) -> None:
    """Both dates well formed and in order."""
    iso_date(start_option, start)
    iso_date(end_option, end)
    if end < start:
        raise OptionError(f"{end_option} {end} is before {start_option} {start}; expected a later date")


def free_port(option: str, port: int, host: str) -> int:
    """A port in 0..65535 that nothing listens on (0: the system picks one later)."""
    if not 0 <= port <= MAX_PORT:
        raise OptionError(f"{option} {port}: out of range; expected a port in 0..{MAX_PORT}")
    if port == 0:
        return port
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OptionError(
                f"{option} {port}: port {port} is in use on {host}; choose another port or stop what"
                " listens there"
            ) from None
        if exc.errno == errno.EACCES:
            raise OptionError(
                f"{option} {port}: not allowed to listen on port {port} (ports below 1024 need privileges);"
                " choose a port above 1023"
            ) from None
        raise OptionError(f"{option} {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
    return port


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def addresses(option: str, values: Iterable[str]) -> list[str]:
    """Lowercase 0x addresses; mixed case must pass its EIP-55 checksum."""
    from indexer.config import normalise_address
    from indexer.errors import InputError

    out = []
    for value in values:
        try:
            out.append(normalise_address(value.strip()))
        except InputError as exc:
            raise OptionError(f"{option}: {exc}") from None
    return out


def unique(option: str, values: Iterable[str]) -> None:
    """Each value once: a repeated one would silently decide which of two meanings wins."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise OptionError(f"{option} {value!r} is given twice; give each once")
        seen.add(value)
