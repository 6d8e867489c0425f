"""Shared fixtures: real PostgreSQL servers, fresh databases cloned from a migrated template."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.db import start_embedded, to_libpq_url, to_sqlalchemy_url

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
# One template per test session: sessions running side by side (or another checkout's) never rebuild
# each other's template mid-run. A session that dies leaves its template; the next one drops it.
TEMPLATE_PREFIX = "chainrisk_tpl_"
TEMPLATE = f"{TEMPLATE_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:6]}"


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    # The CLI configures logging for the process; keep that from leaking into later tests.
    levels = {name: logging.getLogger(name).level for name in ("", "alembic", "httpx", "httpcore")}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def data_file(relative: str) -> Path:
    """A recorded data file under data/ (see data/SOURCES.md); the repository ships them, so missing fails."""
    path = DATA / relative
    if not path.is_file():
        pytest.fail(f"data file missing from the repository: {path}")
    return path


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def test_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CHAINRISK_HOME for tests: reuse a stable one so the embedded server and npm tools persist."""
    home = Path(os.environ.get("CHAINRISK_TEST_HOME", ROOT / ".chainrisk" / "test-home"))
    home.mkdir(parents=True, exist_ok=True)
    return home


def _server_urls(home: Path) -> dict[str, str]:
    urls = {"embedded": to_libpq_url(start_embedded(home))}
    local = os.environ.get("CHAINRISK_TEST_PG_URL", LOCAL_PG)
    if _reachable(local):
        urls["pg15"] = local
    return urls


@pytest.fixture(scope="session")
def pg_servers(test_home: Path) -> dict[str, str]:
    return _server_urls(test_home)


def _with_database(server_url: str, name: str) -> str:
    base, _, _query = server_url.partition("?")
    prefix = base.rsplit("/", 1)[0]
    query = f"?{_query}" if _query else ""
    return f"{prefix}/{name}{query}"


def _build_template(server_url: str) -> None:
    from chainrisk.migrate import upgrade

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    upgrade(to_sqlalchemy_url(_with_database(server_url, TEMPLATE)))


def _drop_orphan_templates(server_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (TEMPLATE_PREFIX + "%",)
        ).fetchall()
        for (name,) in rows:
            pid = int(str(name)[len(TEMPLATE_PREFIX) :].split("_")[0])
            if not _alive(pid):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def templates(pg_servers: dict[str, str]) -> Iterator[dict[str, str]]:
    for url in pg_servers.values():
        _drop_orphan_templates(url)
        _build_template(url)
    yield pg_servers
    for url in pg_servers.values():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')


def _fresh_database(server_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    try:
        yield to_sqlalchemy_url(_with_database(server_url, name))
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(templates: dict[str, str]) -> Iterator[str]:
    """A fresh, migrated database on the embedded server (SQLAlchemy URL)."""
    yield from _fresh_database(templates["embedded"])


@pytest.fixture(params=["embedded", "pg15"])
def any_db_url(request: pytest.FixtureRequest, templates: dict[str, str]) -> Iterator[str]:
    """A fresh, migrated database on each available server: embedded PostgreSQL 18 and the local 15."""
    if request.param not in templates:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL server {request.param!r} not reachable in CI")
        pytest.skip(f"PostgreSQL server {request.param!r} not reachable")
    yield from _fresh_database(templates[request.param])


@pytest.fixture
def second_db_url(templates: dict[str, str]) -> Iterator[str]:
    """Another fresh database on the embedded server, e.g. for a from-scratch comparison."""
    yield from _fresh_database(templates["embedded"])


@pytest.fixture(scope="session")
def node_home(test_home: Path) -> Path:
    """CHAINRISK_HOME with the pinned npm tools (anvil, solc-js) installed once."""
    from devnet.npm import ensure_node_modules

    ensure_node_modules(test_home)
    return test_home


@pytest.fixture
def anvil_factory(node_home: Path) -> Callable[..., Any]:
    """Builds fresh anvil nodes (context managers) on free ports with --prune-history."""
    from devnet.anvil import Anvil

    def make(**options: Any) -> Anvil:
        return Anvil(node_home, **options)

    return make
