"""`chainrisk db grant-reader`, checked as the role on the embedded server and on PostgreSQL 15."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from chainrisk.db import to_libpq_url
from chainrisk.reader import reader_views

VIEWS = reader_views()

Roles = Callable[..., str]


def _embedded(url: str) -> bool:
    return "host=/" in url  # the embedded server is reached over its Unix socket only


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(to_libpq_url(url), autocommit=True)


def _url_as(url: str, user: str, password: str | None, database: str | None = None) -> str:
    parsed = sa.make_url(url).set(username=user, password=password)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _login(url: str, user: str, password: str | None, database: str | None = None) -> psycopg.Connection:
    return psycopg.connect(to_libpq_url(_url_as(url, user, password, database)), autocommit=True)


@pytest.fixture
def roles(any_db_url: str) -> Iterator[Roles]:
    """Makes uniquely named roles (roles are cluster-wide) and drops them and what they own afterwards."""
    made: list[str] = []

    def make(prefix: str = "rr", options: str = "") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        made.append(name)
        if options:
            with _admin(any_db_url) as conn:
                conn.execute(f'CREATE ROLE "{name}" {options}')
        return name

    yield make
    with _admin(any_db_url) as conn:
        for name in made:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                conn.execute(f'REASSIGN OWNED BY "{name}" TO CURRENT_USER')
                conn.execute(f'DROP OWNED BY "{name}"')
                conn.execute(f'DROP ROLE "{name}"')


@pytest.fixture
def cli(any_db_url: str, tmp_path: Path) -> Callable[..., Result]:
    config = tmp_path / "chainrisk.toml"
    config.write_text("")

    def run(*args: str, url: str = any_db_url, password: str | None = None) -> Result:
        env = {
            "CHAINRISK_DATABASE_URL": url,
            "CHAINRISK_HOME": str(tmp_path / "home"),
            "CHAINRISK_CONFIG": str(config),
            "CHAINRISK_LOG_LEVEL": "WARNING",
            "CHAINRISK_READER_PASSWORD": password,
        }
        from chainrisk.cli import app

        quiet = {name: logging.getLogger(name).level for name in ("alembic", "httpx", "httpcore")}
        try:
            return CliRunner().invoke(app, ["db", "grant-reader", *args], env=env)
        finally:
            for name, level in quiet.items():
                logging.getLogger(name).setLevel(level)

    return run


def _one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _state(url: str, name: str) -> list[object]:
    """What grant-reader could change: the role, its memberships and settings, and what PUBLIC may do."""
    with _admin(url) as conn:
        queries = [
            "SELECT to_jsonb(a) - 'oid' FROM pg_authid a WHERE rolname = %(n)s",
            "SELECT array_agg(roleid::regrole::text ORDER BY 1) FROM pg_auth_members"
            " WHERE member::regrole::text = %(n)s",
            "SELECT array_agg(setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE r.rolname = %(n)s",
            "SELECT datacl::text FROM pg_database WHERE datname = current_database()",
            "SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'",
            "SELECT array_agg(proacl::text ORDER BY oid) FROM pg_proc WHERE proname LIKE 'lo\\_%%'",
            "SELECT array_agg(relname || ':' || relowner::regrole::text || ':' || coalesce(relacl::text, '')"
            " ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
            "SELECT array_agg(defaclacl::text) FROM pg_default_acl",
        ]
        return [conn.execute(q, {"n": name}).fetchone() for q in queries]


def test_a_new_reader_reads_the_views_and_nothing_else(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    name, password = roles(), "p@ss/w:rd?" + secrets.token_urlsafe(8)
    result = cli(name, password=password)
    assert result.exit_code == 0, result.stderr
    assert f"role {name} created; it can read: {', '.join(sorted(VIEWS))}" in result.stdout
    assert "(statement_timeout 60s by default, at most 10 connections)" in result.stdout
    assert password not in result.stdout + result.stderr
    with _login(any_db_url, name, password) as conn:
        for view in sorted(VIEWS):
            conn.execute(f"SELECT * FROM {view} LIMIT 0")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1min",)
        assert conn.execute("SHOW lo_compat_privileges").fetchone() == ("off",)
        for statement in (
            "SELECT count(*) FROM logs",
            "INSERT INTO cursors VALUES ('x', 1, 1, 'h', now())",
            "DELETE FROM address_labels",
            "CREATE TEMP TABLE t (a int)",
            "CREATE TEMP VIEW v AS SELECT 1",
            "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE TABLE public.t (a int)",
            "CREATE VIEW public.v AS SELECT 1",
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE SCHEMA s",
            "SELECT lo_create(0)",
            "SELECT lo_creat(-1)",
            "SELECT lo_from_bytea(0, 'x')",
            f"ALTER ROLE {name} CONNECTION LIMIT -1",
            f"ALTER ROLE {name} CREATEDB",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with _admin(any_db_url) as conn:
        row = conn.execute(
            "SELECT rolpassword, rolconnlimit, rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication"
            " OR rolbypassrls FROM pg_authid WHERE rolname = %s",
            (name,),
        ).fetchone()
    assert row is not None
    assert str(row[0]).startswith("SCRAM-SHA-256$") and password not in str(row[0])
    assert row[1:] == (10, False)
    again = cli(name)
    assert again.exit_code == 0, again.stderr
    assert "revoked" not in again.stdout and f"role {name} updated" in again.stdout


def test_the_timeout_is_a_default_the_role_can_change(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    name = roles()
    result = cli(name, "--statement-timeout", "5s", "--connection-limit", "3", password="pw-" + name)
    assert result.exit_code == 0, result.stderr
    assert "(statement_timeout 5s by default, at most 3 connections)" in result.stdout
    with _login(any_db_url, name, "pw-" + name) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(10)")
        # As documented: PostgreSQL lets every role set its own session defaults.
        conn.execute("SET statement_timeout = '1min'")
        conn.execute(f"ALTER ROLE {name} SET statement_timeout = '1min'")
    with _admin(any_db_url) as conn:
        limit = conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    assert limit == (3,)


def test_the_reader_logs_in_to_its_database_only(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    name = roles()
    result = cli(name, password="pw-" + name)
    assert result.exit_code == 0, result.stderr
    with _admin(any_db_url) as conn:
        # Another database made after the grant, as a later `CREATE DATABASE` would be.
        other = f"t_other_{uuid.uuid4().hex[:8]}"
        conn.execute(f'CREATE DATABASE "{other}"')
    try:
        if _embedded(any_db_url):
            for database in ("postgres", "chainrisk", other):
                with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
                    _login(any_db_url, name, "pw-" + name, database)
            assert "note: chainrisk leaves other databases alone" not in result.stdout
        else:
            # A server chainrisk did not make: other databases are left alone, and the output says so.
            assert "note: chainrisk leaves other databases alone:" in result.stdout
            assert f"still admit {name}" in result.stdout and "postgres" in result.stdout
            _login(any_db_url, name, "pw-" + name, "postgres").close()
        with _login(any_db_url, name, "pw-" + name) as conn:
            conn.execute("SELECT * FROM votes LIMIT 0")
    finally:
        with _admin(any_db_url) as conn:
            conn.execute(f'DROP DATABASE "{other}" WITH (FORCE)')


def test_other_logins_keep_what_they_had_through_public(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    """The indexer's login (no superuser, no owner) keeps CONNECT and TEMPORARY when PUBLIC loses them."""
    indexer = roles("idx", "LOGIN PASSWORD 'idx-pw'")
    with _admin(any_db_url) as conn:
        conn.execute(f"GRANT INSERT, SELECT ON cursors TO {indexer}")
    name = roles()
    result = cli(name, password="pw-" + name)
    assert result.exit_code == 0, result.stderr
    database = sa.make_url(any_db_url).database
    assert f"revoked from PUBLIC: CONNECT, TEMPORARY on database {database}" in result.stdout
    assert f"granted CONNECT, TEMPORARY on database {database} to {indexer}" in result.stdout
    with _login(any_db_url, indexer, "idx-pw") as conn:
        conn.execute("CREATE TEMP TABLE scratch (a int)")
        conn.execute("INSERT INTO cursors VALUES ('x', 1, 1, 'h', now())")
    stranger = roles("nobody", "LOGIN PASSWORD 'nobody-pw'")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _login(any_db_url, stranger, "nobody-pw")


def test_the_database_owner_can_grant_without_being_a_superuser(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    owner = roles("own", "LOGIN CREATEROLE PASSWORD 'own-pw'")
    with _admin(any_db_url) as conn:
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        conn.execute(f'ALTER DATABASE "{database[0]}" OWNER TO {owner}')
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {owner}")
        for view in VIEWS:
            conn.execute(f"ALTER VIEW {view} OWNER TO {owner}")
    name = roles()
    result = cli(name, url=_url_as(any_db_url, owner, "own-pw"), password="pw-" + name)
    assert result.exit_code == 0, result.stderr
    assert "note: only a superuser can revoke EXECUTE on" in result.stdout
    with _login(any_db_url, owner, "own-pw") as conn:
        conn.execute("CREATE TEMP TABLE scratch (a int)")
    with _login(any_db_url, name, "pw-" + name) as conn:
        conn.execute("SELECT * FROM proposals LIMIT 0")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TEMP TABLE t (a int)")


EXTRAS = {
    "attributes": (
        "ALTER ROLE {r} SUPERUSER CREATEROLE CREATEDB REPLICATION BYPASSRLS",
        ["SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS"],
    ),
    "membership": ("GRANT pg_write_all_data TO {r}", ["membership in pg_write_all_data"]),
    "table": ("GRANT INSERT, DELETE ON logs TO {r}", ["DELETE on table logs", "INSERT on table logs"]),
    "column": ("GRANT UPDATE (block_number) ON logs TO {r}", ["UPDATE (block_number) on table logs"]),
    "sequence": (
        "CREATE SEQUENCE public.seq_{r}; GRANT USAGE ON SEQUENCE public.seq_{r} TO {r}",
        ["USAGE on sequence seq_{r}"],
    ),
    "function": (
        "CREATE FUNCTION public.f_{r}() RETURNS int LANGUAGE sql AS 'SELECT 1';"
        " GRANT EXECUTE ON FUNCTION public.f_{r}() TO {r}",
        ["EXECUTE on function f_{r}()"],
    ),
    "ownership": (
        "CREATE TABLE public.t_{r} (a int); ALTER TABLE public.t_{r} OWNER TO {r}",
        ["ownership of table t_{r}"],
    ),
    "schema": ("GRANT CREATE ON SCHEMA public TO {r}", ["CREATE on schema public"]),
    "database": (
        "GRANT CREATE, TEMPORARY ON DATABASE {db} TO {r}",
        ["CREATE on database {db}", "TEMPORARY on database {db}"],
    ),
    "grant option": (
        "GRANT SELECT ON votes TO {r} WITH GRANT OPTION",
        ["grant option for SELECT on table votes"],
    ),
    "default privileges": (
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT INSERT ON TABLES TO {r}",
        ["default INSERT on tables"],
    ),
}


@pytest.mark.parametrize("kind", list(EXTRAS))
def test_a_role_with_more_is_refused_unchanged_then_forced(
    kind: str, any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    name = roles("rr", "LOGIN")
    database = sa.make_url(any_db_url).database
    setup, expected = EXTRAS[kind]
    with _admin(any_db_url) as conn:
        for statement in setup.format(r=name, db=f'"{database}"').split("; "):
            conn.execute(statement)
    expected = [e.format(r=name, db=database) for e in expected]
    before = _state(any_db_url, name)

    line = _one_error_line(cli(name))
    assert line.startswith(f"error: role {name} already has more than read access: ")
    assert all(e in line for e in expected), line
    assert "run again with --force" in line
    assert _state(any_db_url, name) == before

    forced = cli(name, "--force", password="pw-" + name)
    assert forced.exit_code == 0, forced.stderr
    revoked = [line for line in forced.stdout.splitlines() if line.startswith(f"revoked from {name}: ")]
    assert all(any(e in line for line in revoked) for e in expected), forced.stdout
    again = cli(name)
    assert again.exit_code == 0, again.stderr
    assert "revoked" not in again.stdout
    with _login(any_db_url, name, "pw-" + name) as conn:
        conn.execute("SELECT * FROM votes LIMIT 0")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO logs SELECT * FROM logs LIMIT 0" if kind != "ownership" else "CREATE SCHEMA s"
            )


def test_objects_owned_in_another_database_are_refused_even_with_force(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    name = roles("rr", "LOGIN")
    other = f"t_other_{uuid.uuid4().hex[:8]}"
    with _admin(any_db_url) as conn:
        conn.execute(f'CREATE DATABASE "{other}"')
    try:
        with _login(any_db_url, sa.make_url(any_db_url).username or "postgres", None, other) as conn:
            conn.execute(f"CREATE TABLE mine (a int); ALTER TABLE mine OWNER TO {name}")
        before = _state(any_db_url, name)
        for args in ((name,), (name, "--force")):
            line = _one_error_line(cli(*args))
            assert line == (
                f"error: role {name} owns objects in other databases ({other}): reassign or drop them there"
                f" (REASSIGN OWNED BY {name} TO ...; DROP OWNED BY {name}), then run grant-reader again"
            )
            assert _state(any_db_url, name) == before
    finally:
        with _admin(any_db_url) as conn:
            conn.execute(f'DROP DATABASE "{other}" WITH (FORCE)')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Robert; DROP"], "error: role name 'Robert; DROP': expected lowercase letters, digits and _"),
        (["pg_reader"], "error: role name 'pg_reader' is reserved by PostgreSQL: pick another"),
        (["{r}", "--statement-timeout", "1 hour"], "error: --statement-timeout '1 hour': expected a number"),
        (["{r}", "--password", ""], "error: the password is empty: give one, or leave --password out"),
    ],
)
def test_bad_names_and_options_change_nothing(
    args: list[str], message: str, any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    name = roles()
    before = _state(any_db_url, name)
    line = _one_error_line(cli(*(a.format(r=name) for a in args)))
    assert line.startswith(message), line
    assert _state(any_db_url, name) == before
    with _admin(any_db_url) as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None


def test_the_user_it_runs_as_is_refused(any_db_url: str, cli: Callable[..., Result]) -> None:
    user = sa.make_url(any_db_url).username
    line = _one_error_line(cli(str(user), "--force"))
    assert line == f"error: role {user} is the user grant-reader runs as: pick another name"


def test_embedded_logins_need_a_password(any_db_url: str, roles: Roles, cli: Callable[..., Result]) -> None:
    if not _embedded(any_db_url):
        pytest.skip("the local PostgreSQL 15 trusts every local login: its pg_hba.conf is not chainrisk's")
    name, nameless = roles(), roles()
    assert cli(name, password="right-" + name).exit_code == 0
    with pytest.raises(psycopg.OperationalError, match="password"):
        _login(any_db_url, name, None)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _login(any_db_url, name, "wrong")
    _login(any_db_url, name, "right-" + name).close()
    result = cli(nameless)
    assert result.exit_code == 0
    assert (
        f"note: {nameless} has no password: it can log in only where pg_hba.conf trusts it" in result.stdout
    )
    with pytest.raises(psycopg.OperationalError):
        _login(any_db_url, nameless, None)


def test_the_superuser_the_server_was_made_with_is_refused(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    other = roles("su", "LOGIN SUPERUSER PASSWORD 'su-pw'")
    with _admin(any_db_url) as conn:
        bootstrap = conn.execute("SELECT rolname FROM pg_roles WHERE oid = 10").fetchone()
    assert bootstrap is not None
    before = _state(any_db_url, str(bootstrap[0]))
    line = _one_error_line(cli(str(bootstrap[0]), "--force", url=_url_as(any_db_url, other, "su-pw")))
    assert line == f"error: role {bootstrap[0]} is the superuser the server was made with: pick another name"
    assert _state(any_db_url, str(bootstrap[0])) == before


def test_a_database_without_the_views_is_refused(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    name = roles()
    empty = f"t_empty_{uuid.uuid4().hex[:8]}"
    with _admin(any_db_url) as conn:
        conn.execute(f'CREATE DATABASE "{empty}"')
    try:
        url = _url_as(any_db_url, str(sa.make_url(any_db_url).username), None, empty)
        line = _one_error_line(cli(name, url=url, password="pw"))
        first = min(VIEWS)  # the first view checked, in name order
        expected = f"error: view {first} does not exist in this database: run `chainrisk migrate`"
        assert line.startswith(expected)
        with psycopg.connect(to_libpq_url(url)) as conn:
            assert conn.execute("SELECT datacl FROM pg_database WHERE datname = %s", (empty,)).fetchone() == (
                None,
            )
            assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None
    finally:
        with _admin(any_db_url) as conn:
            conn.execute(f'DROP DATABASE "{empty}" WITH (FORCE)')


def test_what_force_cannot_revoke_leaves_everything_as_it_was(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    """A privilege passed on by a role other than the owner is not the owner's to revoke: nothing changes."""
    owner, middle = roles("own", "LOGIN"), roles("mid", "LOGIN")
    name = roles("rr", "LOGIN SUPERUSER")
    with _admin(any_db_url) as conn:
        conn.execute(f"CREATE TABLE public.t_{name} (a int)")
        conn.execute(f"ALTER TABLE public.t_{name} OWNER TO {owner}")
        conn.execute(f"SET ROLE {owner}")
        conn.execute(f"GRANT INSERT ON public.t_{name} TO {middle} WITH GRANT OPTION")
        conn.execute(f"SET ROLE {middle}")
        conn.execute(f"GRANT INSERT ON public.t_{name} TO {name}")
        conn.execute("RESET ROLE")
    before = _state(any_db_url, name)
    line = _one_error_line(cli(name, "--force", password="pw"))
    assert line == (
        f"error: could not revoke from role {name}: INSERT on table t_{name} (granted by another role?"
        " revoke it as that role); nothing was changed"
    )
    assert _state(any_db_url, name) == before


def test_create_on_a_schema_is_taken_from_public_but_kept_by_its_users(
    any_db_url: str, roles: Roles, cli: Callable[..., Result]
) -> None:
    """Databases made before PostgreSQL 15 still let PUBLIC create in schema public."""
    indexer = roles("idx", "LOGIN PASSWORD 'idx-pw'")
    with _admin(any_db_url) as conn:
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        conn.execute(f"GRANT INSERT ON cursors TO {indexer}")
    name = roles()
    result = cli(name, password="pw-" + name)
    assert result.exit_code == 0, result.stderr
    assert "revoked from PUBLIC: CREATE on schema public" in result.stdout
    assert f"granted CREATE on schema public to {indexer} (it had it through PUBLIC)" in result.stdout
    with _login(any_db_url, name, "pw-" + name) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE public.mine (a int)")
    with _login(any_db_url, indexer, "idx-pw") as conn:
        conn.execute(f"CREATE TABLE public.made_by_{indexer} (a int)")
