"""CHAINRISK_DATABASE_URL: each mistake is one `error:` line, exit code 2, nothing made, no password shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chainrisk.db import DatabaseUrlError, check_database_url, redact_url, resolve_url

EXPECTED = (
    "expected postgresql://user:password@host:port/dbname "
    "(percent-encode special characters in the user and password, e.g. @ as %40)"
)
SECRET_PARTS = ("s3cr", "tpart", "pa55", "w0rd")


def _run(
    args: list[str], url: str, tmp_path: Path, level: str = "WARNING"
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "chainrisk.toml"
    config.write_text("")
    env = {
        **os.environ,
        "CHAINRISK_DATABASE_URL": url,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(config),
        "CHAINRISK_LOG_LEVEL": level,
    }
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("garbage", "error: CHAINRISK_DATABASE_URL 'garbage' is not a PostgreSQL URL; "),
        (
            "mysql://bob:s3cr@db/x",
            "error: CHAINRISK_DATABASE_URL 'mysql://bob:***@db/x' is not a PostgreSQL URL; ",
        ),
        (
            "postgresql://bob:s3cr@tpart@127.0.0.1:5432/db",
            "error: CHAINRISK_DATABASE_URL 'postgresql://bob:***@127.0.0.1:5432/db' has an unencoded"
            " @, / or ? in its user or password; ",
        ),
        (
            "postgresql://bob:pa55/w0rd@127.0.0.1/db",
            "error: CHAINRISK_DATABASE_URL 'postgresql://bob:***@127.0.0.1/db' has an unencoded @, / or ?",
        ),
        (
            "postgresql://bob:pa55?w0rd@127.0.0.1/db",
            "error: CHAINRISK_DATABASE_URL 'postgresql://bob:***@127.0.0.1/db' has an unencoded @, / or ?",
        ),
        (
            "postgresql://bob:pa55%zzw0rd@127.0.0.1/db",
            "error: CHAINRISK_DATABASE_URL 'postgresql://bob:***@127.0.0.1/db' has a % that is not followed",
        ),
        (
            "postgresql://bob:s3cr@no such host/db",
            "error: CHAINRISK_DATABASE_URL 'postgresql://bob:***@no such host/db' has an invalid host",
        ),
        (
            "postgresql://bob:s3crtpart@127.0.0.1:1/db",
            "error: cannot connect with CHAINRISK_DATABASE_URL 'postgresql://bob:***@127.0.0.1:1/db':"
            ' connection to server at "127.0.0.1", port 1 failed: Connection refused; ',
        ),
        ("", "error: CHAINRISK_DATABASE_URL is set but empty; "),
    ],
)
def test_a_bad_url_is_one_line_and_exit_2(url: str, message: str, tmp_path: Path) -> None:
    line = _one_error_line(_run(["db", "url"], url, tmp_path))
    assert line.startswith(message), line
    assert line.endswith(EXPECTED) or line.endswith(EXPECTED + ", or unset it to use the embedded server")
    assert not any(part in line for part in SECRET_PARTS), line
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("command", [["db", "start"], ["db", "shell"], ["db", "grant-reader", "rr_x"]])
def test_every_database_command_answers_the_same(command: list[str], tmp_path: Path) -> None:
    for url, message in (
        ("postgresql://bob:s3cr@tpart@127.0.0.1:5432/db", "has an unencoded @, / or ?"),
        ("postgresql://bob:s3crtpart@127.0.0.1:1/db", "Connection refused"),
    ):
        line = _one_error_line(_run(command, url, tmp_path))
        assert "CHAINRISK_DATABASE_URL 'postgresql://bob:***@127.0.0.1:" in line and message in line
        assert line.endswith(EXPECTED)
        assert not any(part in line for part in SECRET_PARTS), line
    assert not (tmp_path / "home").exists()


def test_sqlite_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    database = tmp_path / "chainrisk.db"
    line = _one_error_line(_run(["db", "start"], f"sqlite:///{database}", tmp_path))
    assert line == f"error: CHAINRISK_DATABASE_URL 'sqlite:///{database}' is not a PostgreSQL URL; {EXPECTED}"
    assert not database.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chainrisk.toml"]


def test_a_missing_database_is_named(tmp_path: Path, pg_servers: dict[str, str]) -> None:
    if "pg15" not in pg_servers:
        pytest.skip("the local PostgreSQL 15 is not reachable")
    url = pg_servers["pg15"].rsplit("/", 1)[0] + "/no_such_database_here"
    line = _one_error_line(_run(["db", "url"], url, tmp_path))
    assert 'FATAL: database "no_such_database_here" does not exist' in line


def test_no_part_of_the_password_reaches_the_logs(tmp_path: Path) -> None:
    for url in ("postgresql://bob:s3cr@tpart@127.0.0.1:1/db", "postgresql://bob:s3crtpart@127.0.0.1:1/db"):
        result = _run(["db", "start"], url, tmp_path, level="DEBUG")
        assert result.returncode == 2
        assert not any(part in result.stdout + result.stderr for part in SECRET_PARTS), result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob:pa55w0rd@db.example:5432/chainrisk",
        "postgres://bob@db.example/chainrisk",
        "postgresql+psycopg://bob:p%40ss%2Fw0rd@[::1]:5432/chainrisk?sslmode=require",
        "postgresql://postgres@/chainrisk?host=/tmp/a%20b/pgdata",
        "postgresql://h1:5432,h2:5433/chainrisk?target_session_attrs=read-write",
    ],
)
def test_good_urls_pass_the_check(url: str) -> None:
    assert check_database_url(url).startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:s3cr@tpart@h/db", "postgresql://bob:***@h/db"),
        ("postgresql://bob:pa55/w0rd@h/db", "postgresql://bob:***@h/db"),
        (
            "postgresql://bob@h/db?password=s3cr&sslmode=require",
            "postgresql://bob@h/db?password=***&sslmode=require",
        ),
        ("host=h user=bob password=s3cr dbname=x", "host=h user=bob password=*** dbname=x"),
        ("postgresql//bob:s3cr@h/db", "***@h/db"),
        ("postgresql://bo/b:s3cr@h/db", "postgresql://***@h/db"),
    ],
)
def test_redaction_hides_every_part_of_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_resolve_refuses_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUrlError, match="is not a PostgreSQL URL"):
        resolve_url("sqlite:///x.db", tmp_path / "home")
    assert not (tmp_path / "home").exists()
