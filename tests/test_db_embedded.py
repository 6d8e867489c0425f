"""The embedded server: homes with spaces, interrupted first starts, who may log in, concurrent commands."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from chainrisk import embedded
from chainrisk.db import embedded_pgdata, start_embedded, stop_embedded, to_libpq_url
from chainrisk.embedded import EmbeddedHomeError
from chainrisk.migrate import alembic_config

HEAD = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()


def _env(home: Path | str | None, config: Path, url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINRISK_")}
    env |= {"CHAINRISK_CONFIG": str(config), "CHAINRISK_LOG_LEVEL": "WARNING"}
    if home is not None:
        env["CHAINRISK_HOME"] = str(home)
    if url is not None:
        env["CHAINRISK_DATABASE_URL"] = url
    return env


def _chainrisk(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chainrisk", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=180)
    return process.returncode, out, err


def _revision(url: str) -> object:
    with psycopg.connect(to_libpq_url(url)) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def _no_server_left(home: Path) -> bool:
    return embedded._running(embedded_pgdata(home)) is None


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "chainrisk.toml"
    path.write_text("")
    return path


@pytest.fixture
def spaced_home() -> Iterator[Path]:
    """A fresh home with spaces, as on macOS (~/Library/Application Support/chainrisk), short enough that
    the socket lives in it too. Its server is stopped afterwards."""
    root = Path(tempfile.mkdtemp(prefix="cr home "))
    home = root / "Application Support" / "chainrisk"
    try:
        yield home
    finally:
        stop_embedded(home)
        assert _no_server_left(home)
        subprocess.run(["rm", "-rf", str(root)], check=True)


@pytest.mark.slow
def test_a_home_with_spaces_starts_migrates_and_stops(spaced_home: Path, config: Path) -> None:
    env = _env(spaced_home, config)
    code, out, err = _finish(_chainrisk("migrate", env=env))
    assert code == 0, err
    assert out.strip() == "schema is up to date"
    code, out, err = _finish(_chainrisk("db", "url", env=env))
    assert code == 0, err
    socket = str(embedded_pgdata(spaced_home)).replace(" ", "%20")
    assert out.strip() == f"postgresql+psycopg://postgres@/chainrisk?host={socket}"
    assert _revision(out.strip()) == HEAD
    with psycopg.connect(to_libpq_url(out.strip())) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
    code, out, err = _finish(_chainrisk("db", "stop", env=env))
    assert (code, out.strip()) == (0, "stopped"), err
    assert _no_server_left(spaced_home)
    code, out, _ = _finish(_chainrisk("db", "stop", env=env))
    assert (code, out.strip()) == (0, "not running")


@pytest.mark.slow
def test_logins_other_than_the_owner_need_a_password(spaced_home: Path) -> None:
    url = to_libpq_url(start_embedded(spaced_home))
    name = f"u_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'right'")
        conn.execute(f"CREATE ROLE {name}_nopw LOGIN")
    as_role = url.replace("postgres@", f"{name}@")
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(as_role).close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(as_role.replace(f"{name}@", f"{name}:wrong@")).close()
    psycopg.connect(as_role.replace(f"{name}@", f"{name}:right@")).close()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(url.replace("postgres@", f"{name}_nopw@")).close()
    # The superuser has no password: only the OS user running the server gets in, by peer authentication.
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody").pw_name
        psql = embedded._bin("psql")
        denied = subprocess.run(
            [str(psql), "-w", "-c", "SELECT 1", url], user=nobody, capture_output=True, text=True, timeout=30
        )
        assert denied.returncode != 0


@pytest.mark.slow
def test_a_server_made_with_trust_is_tightened_at_the_next_start(spaced_home: Path) -> None:
    """What an older chainrisk made (every login trusted) is rewritten and reloaded, without a restart."""
    url = to_libpq_url(start_embedded(spaced_home))
    pgdata = embedded_pgdata(spaced_home)
    (pgdata / "pg_hba.conf").write_text("local all all trust\n")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("CREATE ROLE trusted_before LOGIN")
    psycopg.connect(url.replace("postgres@", "trusted_before@")).close()
    pid = (pgdata / "postmaster.pid").read_text().split()[0]
    assert to_libpq_url(start_embedded(spaced_home)) == url
    assert (pgdata / "postmaster.pid").read_text().split()[0] == pid
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(url.replace("postgres@", "trusted_before@")).close()
    assert embedded.configure(pgdata) is False  # nothing left to change: no reload at the next start


@pytest.mark.slow
def test_an_interrupted_first_start_does_not_block_the_next(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = "import sys, pathlib, chainrisk.db as db; db.start_embedded(pathlib.Path(sys.argv[1]))"
    child = subprocess.Popen([sys.executable, "-c", script, str(home)], start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(home.glob(".pgdata-initdb-*/PG_VERSION")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    pgdata = embedded_pgdata(home)
    assert not pgdata.exists(), "initdb finished before it could be interrupted"
    assert list(home.glob(".pgdata-initdb-*")), "the interrupted initdb left nothing behind to clean"
    try:
        url = start_embedded(home)
        with psycopg.connect(to_libpq_url(url)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("chainrisk",)
        assert not list(home.glob(".pgdata-initdb-*"))
    finally:
        stop_embedded(home)
    assert _no_server_left(home)


@pytest.mark.slow
def test_an_incomplete_data_directory_is_made_again(tmp_path: Path) -> None:
    """A data directory an interrupted in-place initdb left (PG_VERSION, no pg_control) is replaced."""
    home = tmp_path / "home"
    pgdata = embedded_pgdata(home)
    (pgdata / "base").mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("18\n")
    try:
        url = start_embedded(home)
        with psycopg.connect(to_libpq_url(url)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert (pgdata / "global" / "pg_control").is_file()
    finally:
        stop_embedded(home)


@pytest.mark.slow
def test_a_home_too_long_for_a_socket_puts_the_socket_in_the_temp_dir(tmp_path: Path) -> None:
    home = tmp_path / ("d" * 60) / ("e" * 60) / "home"
    try:
        url = start_embedded(home)
        socket_dir = Path(url.split("host=", 1)[1])
        assert socket_dir.parent == Path(tempfile.gettempdir()) and socket_dir.name.startswith("chainrisk-")
        assert socket_dir.stat().st_mode & 0o777 == 0o700
        with psycopg.connect(to_libpq_url(url)) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
    finally:
        stop_embedded(home)
    assert _no_server_left(home)
    socket_dir.rmdir()  # empty once the server is stopped


@pytest.mark.parametrize("home", ["", ".", "relative/home"])
def test_an_empty_or_relative_home_is_refused(home: str, tmp_path: Path, config: Path) -> None:
    with pytest.raises(EmbeddedHomeError, match="is empty or relative: expected an absolute directory"):
        start_embedded(Path(home))
    code, out, err = _finish(_chainrisk("db", "start", env=_env(home, config), cwd=tmp_path))
    assert code == 2 and out == "", err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "CHAINRISK_HOME" in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chainrisk.toml"]


@pytest.mark.slow
def test_two_migrations_at_once_on_a_fresh_home_both_succeed(tmp_path: Path, config: Path) -> None:
    home = tmp_path / "fresh home"
    env = _env(home, config)
    try:
        runs = [_chainrisk("migrate", env=env) for _ in range(2)]
        results = [_finish(run) for run in runs]
        assert [r[0] for r in results] == [0, 0], [r[2] for r in results]
        assert _revision(start_embedded(home)) == HEAD
    finally:
        stop_embedded(home)
    assert _no_server_left(home)


@pytest.mark.slow
def test_two_migrations_at_once_on_a_fresh_database_both_succeed(
    tmp_path: Path, config: Path, pg_servers: dict[str, str]
) -> None:
    if "pg15" not in pg_servers:
        pytest.skip("the local PostgreSQL 15 is not reachable")
    server = pg_servers["pg15"]
    name = f"t_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.rsplit("/", 1)[0] + f"/{name}"
    try:
        runs = [_chainrisk("migrate", env=_env(tmp_path / "home", config, url)) for _ in range(2)]
        results = [_finish(run) for run in runs]
        assert [r[0] for r in results] == [0, 0], [r[2] for r in results]
        assert _revision(url) == HEAD
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) > 0 FROM address_labels").fetchone() == (True,)
        assert not (tmp_path / "home").exists()
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
