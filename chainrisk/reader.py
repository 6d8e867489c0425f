"""`chainrisk db grant-reader`: a login that can read the documented views and nothing else.

What the role gets: LOGIN, CONNECT on this database, USAGE on schema public, SELECT on the views, a
connection limit and a default statement_timeout. What it must not have, and what is done about it:

- more than that already (an existing role with SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or
  BYPASSRLS, membership in other roles, other privileges in this database or on shared objects, ownership of
  objects): refused, naming what it has; `force=True` revokes it (ownership is reassigned to the user running
  the grant) and says what was revoked. Ownership of objects in other databases is refused even then: it can
  only be undone there;
- what every role gets through PUBLIC: TEMPORARY (temporary tables, views and functions) and CONNECT on this
  database, CREATE on its schemas and EXECUTE on the large-object creating functions are revoked from
  PUBLIC. The roles that use this database (the user running the grant, owners of objects in it, roles with
  other privileges in it) first get explicitly what they had through PUBLIC, so that they keep working;
- other databases: on the embedded server the role may log in to this database only (pg_hba.conf). Elsewhere
  chainrisk does not touch other databases: those that grant CONNECT to PUBLIC (PostgreSQL's default) still
  admit the role, and the result says which.

The statement_timeout is a default, not a limit: PostgreSQL lets any role change it for its own sessions
(SET) and for itself (ALTER ROLE ... SET). The role cannot change its connection limit or attributes.
The password is sent as a SCRAM verifier, never in clear: it appears in no statement, log or message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from chainrisk import embedded
from chainrisk.errors import ChainriskError

_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RESERVED = {"public", "none", "current_user", "session_user", "current_role", "all"}
_TIMEOUT = re.compile(r"^\d+(ms|s|min|h|d)?$")
_ATTRIBUTES = ("SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS")
_LARGE_OBJECT_MAKERS = (
    "lo_creat(integer)",
    "lo_create(oid)",
    "lo_from_bytea(oid,bytea)",
    "lo_import(text)",
    "lo_import(text,oid)",
)
_MAX_LISTED = 8


class ReaderRoleError(ChainriskError, ValueError):
    """grant-reader refused: a bad name or option, or a role with more than read access."""


@dataclass
class ReaderGrant:
    """What grant-reader did, in the words the CLI prints."""

    role: str
    views: list[str]
    created: bool
    revoked: list[str] = field(default_factory=list)
    public_changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Extra:
    """One thing an existing role has beyond read access, and the statement that takes it away."""

    what: str
    undo: sql.Composed


def reader_views() -> dict[str, str]:
    """Every view the reader role may SELECT: the indexer's (lending, flows, governance, history), the
    forecasts' and the stored contagion runs'."""
    from analytics.views import VIEWS as FORECAST_VIEWS
    from chainrisk.alerts.views import VIEWS as ALERT_VIEWS
    from chainrisk.contagion.views import VIEWS as CONTAGION_VIEWS
    from chainrisk.reports.views import VIEWS as REPORT_VIEWS
    from indexer.views import VIEWS as INDEXER_VIEWS

    return {**INDEXER_VIEWS, **FORECAST_VIEWS, **CONTAGION_VIEWS, **ALERT_VIEWS, **REPORT_VIEWS}


def grant_reader(
    url: str,
    name: str,
    password: str | None,
    views: Sequence[str],
    *,
    force: bool = False,
    statement_timeout: str = "60s",
    connection_limit: int = 10,
) -> ReaderGrant:
    """Create (or check and update) a login role that can SELECT `views` and nothing else."""
    from chainrisk.db import to_libpq_url

    _check_options(name, password, statement_timeout, connection_limit)
    with psycopg.connect(to_libpq_url(url)) as conn:
        database = _scalar(conn, "SELECT current_database()")
        result = _grant(conn, name, password, views, force, statement_timeout, connection_limit)
        conn.commit()
        result.notes = _restrict_logins(conn, name, database) + _password_note(conn, name)
    return result


def _check_options(name: str, password: str | None, timeout: str, limit: int) -> None:
    if not _ROLE.match(name):
        raise ReaderRoleError(
            f"role name {name!r}: expected lowercase letters, digits and _, starting with a letter or _"
        )
    if name.startswith("pg_") or name in _RESERVED:
        raise ReaderRoleError(f"role name {name!r} is reserved by PostgreSQL: pick another")
    if password is not None and not password:
        raise ReaderRoleError("the password is empty: give one, or leave --password out")
    if not _TIMEOUT.match(timeout):
        raise ReaderRoleError(
            f"--statement-timeout {timeout!r}: expected a number and a unit, e.g. 60s, 5min or 500ms"
            " (0: no timeout)"
        )
    if limit < -1:
        raise ReaderRoleError(f"--connection-limit {limit}: expected -1 (no limit) or a count of 0 or more")


def _grant(
    conn: psycopg.Connection[Any],
    name: str,
    password: str | None,
    views: Sequence[str],
    force: bool,
    timeout: str,
    limit: int,
) -> ReaderGrant:
    tables = _view_relations(conn, views)
    role = sql.Identifier(name)
    exists = _scalar(conn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", name) == 1
    revoked: list[str] = []
    if exists:
        _refuse_unfit(conn, name)
        extras = _extras(conn, name, tables)
        if extras and not force:
            raise ReaderRoleError(_refusal(name, extras))
        _revoke(conn, name, extras)
        revoked = [extra.what for extra in extras]
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sql.SQL(verb + " ROLE {} LOGIN CONNECTION LIMIT {}").format(role, limit))
    if password is not None:
        _set_password(conn, name, password)
    conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(role, sql.Literal(timeout)))
    database = sql.Identifier(_scalar(conn, "SELECT current_database()"))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, role))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
    for table in tables:
        conn.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(sql.SQL(table), role))
    public_changes = _close_public(conn, name)
    left = _extras(conn, name, tables)
    if left:
        raise ReaderRoleError(
            f"could not revoke from role {name}: {_listing(e.what for e in left)}"
            " (granted by another role? revoke it as that role); nothing was changed"
        )
    return ReaderGrant(name, sorted(views), not exists, revoked, public_changes, [])


def _scalar(conn: psycopg.Connection[Any], query: str, *params: object) -> Any:
    row = conn.execute(query, params or None).fetchone()
    assert row is not None
    return row[0]


def _view_relations(conn: psycopg.Connection[Any], views: Sequence[str]) -> list[str]:
    relations = []
    for view in sorted(views):
        relation = _scalar(conn, "SELECT to_regclass(format('public.%%I', %s::text))::text", view)
        if relation is None:
            raise ReaderRoleError(
                f"view {view} does not exist in this database: run `chainrisk migrate` first"
            )
        relations.append(str(relation))
    return relations


def _refuse_unfit(conn: psycopg.Connection[Any], name: str) -> None:
    """Roles grant-reader must never turn into a reader, --force or not."""
    if name == _scalar(conn, "SELECT current_user"):
        raise ReaderRoleError(f"role {name} is the user grant-reader runs as: pick another name")
    if _scalar(conn, "SELECT oid = 10 FROM pg_roles WHERE rolname = %s", name):
        raise ReaderRoleError(f"role {name} is the superuser the server was made with: pick another name")
    elsewhere = conn.execute(_OWNED_ELSEWHERE, {"name": name}).fetchall()
    if elsewhere:
        databases = ", ".join(str(row[0]) for row in elsewhere)
        raise ReaderRoleError(
            f"role {name} owns objects in other databases ({databases}): reassign or drop them there"
            f" (REASSIGN OWNED BY {name} TO ...; DROP OWNED BY {name}), then run grant-reader again"
        )


def _refusal(name: str, extras: list[_Extra]) -> str:
    return (
        f"role {name} already has more than read access: {_listing(e.what for e in extras)};"
        " run again with --force to revoke it (nothing was changed)"
    )


def _listing(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


# What an existing role has beyond the reader's grants.


def _extras(conn: psycopg.Connection[Any], name: str, tables: list[str]) -> list[_Extra]:
    role = sql.Identifier(name)
    found = _attribute_extras(conn, name, role) + _membership_extras(conn, name, role)
    found += _ownership_extras(conn, name)
    allowed = _reader_shape(conn, tables)
    for kind, obj, column, privilege, grantable, _ in conn.execute(_PRIVILEGES, {"names": [name]}).fetchall():
        reader_grant = (kind, obj, privilege) in allowed and column is None
        if reader_grant and not grantable:
            continue
        found.append(_privilege_extra(role, kind, obj, column, privilege, reader_grant))
    return found + _default_privilege_extras(conn, name, role)


def _attribute_extras(conn: psycopg.Connection[Any], name: str, role: sql.Identifier) -> list[_Extra]:
    row = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
        " FROM pg_roles WHERE rolname = %s",
        (name,),
    ).fetchone()
    assert row is not None
    return [
        _Extra(attribute, sql.SQL("ALTER ROLE {} NO" + attribute).format(role))
        for attribute, has in zip(_ATTRIBUTES, row, strict=True)
        if has
    ]


def _membership_extras(conn: psycopg.Connection[Any], name: str, role: sql.Identifier) -> list[_Extra]:
    rows = conn.execute(
        "SELECT g.rolname, gr.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
        " JOIN pg_roles gr ON gr.oid = m.grantor JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s"
        " ORDER BY 1",
        (name,),
    ).fetchall()
    # From PostgreSQL 16 a membership granted by another role is only revoked when named with its grantor.
    by_grantor = conn.info.server_version >= 160000
    extras = []
    for group, grantor in rows:
        revoke = sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), role)
        if by_grantor:
            revoke = sql.SQL("{} GRANTED BY {}").format(revoke, sql.Identifier(grantor))
        extras.append(_Extra(f"membership in {group}", revoke))
    return extras


def _ownership_extras(conn: psycopg.Connection[Any], name: str) -> list[_Extra]:
    rows = conn.execute(_OWNED_HERE, {"name": name}).fetchall()
    reassign = sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(name))
    return [_Extra(f"ownership of {row[0]}", reassign) for row in rows]


def _reader_shape(conn: psycopg.Connection[Any], tables: list[str]) -> set[tuple[str, str, str]]:
    database = _scalar(conn, "SELECT quote_ident(current_database())")
    shape = {("table", table, "SELECT") for table in tables}
    return shape | {("schema", "public", "USAGE"), ("database", str(database), "CONNECT")}


_ON = {
    "table": "TABLE",
    "sequence": "SEQUENCE",
    "column": "TABLE",
    "function": "ROUTINE",
    "schema": "SCHEMA",
    "database": "DATABASE",
    "type": "TYPE",
    "language": "LANGUAGE",
    "large object": "LARGE OBJECT",
    "foreign data wrapper": "FOREIGN DATA WRAPPER",
    "foreign server": "FOREIGN SERVER",
    "tablespace": "TABLESPACE",
    "parameter": "PARAMETER",
}


def _privilege_extra(
    role: sql.Identifier, kind: str, obj: str, column: str | None, privilege: str, reader_grant: bool
) -> _Extra:
    columns = sql.SQL(" ({})").format(sql.SQL(column)) if column else sql.SQL("")
    target = sql.SQL("{}{} ON {} {} FROM {}").format(
        sql.SQL(privilege), columns, sql.SQL(_ON[kind]), sql.SQL(obj), role
    )
    shown = f"{privilege} ({column}) on table {obj}" if column else f"{privilege} on {kind} {obj}"
    if reader_grant:  # the privilege is the reader's; only passing it on is too much
        return _Extra(f"grant option for {shown}", sql.SQL("REVOKE GRANT OPTION FOR {}").format(target))
    return _Extra(shown, sql.SQL("REVOKE {}").format(target))


_DEFAULT_KINDS = {
    "r": "TABLES",
    "S": "SEQUENCES",
    "f": "FUNCTIONS",
    "T": "TYPES",
    "n": "SCHEMAS",
    "L": "LARGE OBJECTS",
}


def _default_privilege_extras(conn: psycopg.Connection[Any], name: str, role: sql.Identifier) -> list[_Extra]:
    """Default privileges that would give the role rights on objects other roles create later."""
    extras = []
    for creator, schema, objtype, privilege in conn.execute(_DEFAULT_PRIVILEGES, {"name": name}).fetchall():
        kind = _DEFAULT_KINDS.get(str(objtype), str(objtype))
        where = sql.SQL(" IN SCHEMA {}").format(sql.Identifier(schema)) if schema else sql.SQL("")
        undo = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {}{} REVOKE {} ON {} FROM {}").format(
            sql.Identifier(creator), where, sql.SQL(privilege), sql.SQL(kind), role
        )
        scope = f" in schema {schema}" if schema else ""
        extras.append(_Extra(f"default {privilege} on {kind.lower()} {creator} creates{scope}", undo))
    return extras


def _revoke(conn: psycopg.Connection[Any], name: str, extras: list[_Extra]) -> None:
    """Take the extras away: ownership first (reassigning also drops the owner's own privileges)."""
    done: set[str] = set()
    for extra in sorted(extras, key=lambda e: not e.what.startswith("ownership of ")):
        statement = extra.undo.as_string(conn)
        if statement not in done:  # one REASSIGN OWNED takes every owned object
            done.add(statement)
            _execute_or_refuse(conn, name, extra)


def _execute_or_refuse(conn: psycopg.Connection[Any], name: str, extra: _Extra) -> None:
    try:
        with conn.transaction():
            conn.execute(extra.undo)
    except psycopg.errors.UndefinedObject:
        return  # gone with the ownership reassigned just before
    except psycopg.Error as exc:
        reason = (exc.diag.message_primary or type(exc).__name__).strip()
        raise ReaderRoleError(
            f"could not revoke {extra.what} from role {name}: {reason}; nothing was changed"
        ) from None


def _set_password(conn: psycopg.Connection[Any], name: str, password: str) -> None:
    verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
    conn.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(verifier.decode()))
    )


# What every role gets through PUBLIC, and the roles that must keep it.


def _close_public(conn: psycopg.Connection[Any], reader: str) -> list[str]:
    keep = _users_of_database(conn, reader)
    changes = _close_database(conn, keep) + _close_schemas(conn, keep)
    return changes + _close_large_objects(conn)


def _users_of_database(conn: psycopg.Connection[Any], reader: str) -> list[str]:
    """Roles that use this database beyond reading it: they keep what they had through PUBLIC."""
    owners = {str(row[0]) for row in conn.execute(_USERS, {"reader": reader}).fetchall()}
    tables = [str(row[0]) for row in conn.execute(_VIEW_RELATIONS).fetchall()]
    shape = _reader_shape(conn, tables)
    holders = {
        str(grantee)
        for kind, obj, column, privilege, grantable, grantee in conn.execute(_PRIVILEGES, {"names": None})
        if (kind, obj, privilege) not in shape or column is not None or grantable
    }
    # Superusers need no grant; predefined roles (pg_monitor...) hold privileges on the catalogs only.
    exempt = {str(r[0]) for r in conn.execute(_EXEMPT).fetchall()}
    return sorted((owners | holders) - exempt - {reader})


def _close_database(conn: psycopg.Connection[Any], keep: list[str]) -> list[str]:
    database = _scalar(conn, "SELECT current_database()")
    public = [p for p in ("CONNECT", "TEMPORARY", "CREATE") if _public_has(conn, "database", database, p)]
    if not public:
        return []
    changes = _grant_back(conn, keep, "DATABASE", database, public)
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
    left = [p for p in public if _public_has(conn, "database", database, p)]
    if left:
        user = _scalar(conn, "SELECT current_user")
        raise ReaderRoleError(
            f"cannot revoke {', '.join(left)} on database {database} from PUBLIC as {user}: run grant-reader"
            " as the database owner or a superuser (nothing was changed)"
        )
    return [f"revoked from PUBLIC: {', '.join(public)} on database {database}", *changes]


def _close_schemas(conn: psycopg.Connection[Any], keep: list[str]) -> list[str]:
    schemas = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE has_schema_privilege('public', oid, 'CREATE')"
        " AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1"
    ).fetchall()
    changes = []
    for (schema,) in schemas:
        kept = _grant_back(conn, keep, "SCHEMA", schema, ["CREATE"])
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
        if _public_has(conn, "schema", schema, "CREATE"):
            user = _scalar(conn, "SELECT current_user")
            raise ReaderRoleError(
                f"cannot revoke CREATE on schema {schema} from PUBLIC as {user}: run grant-reader as its"
                " owner or a superuser (nothing was changed)"
            )
        changes += [f"revoked from PUBLIC: CREATE on schema {schema}", *kept]
    return changes


def _close_large_objects(conn: psycopg.Connection[Any]) -> list[str]:
    """Revoke EXECUTE on the functions that create large objects: any role could fill the disk with them."""
    public = [f for f in _LARGE_OBJECT_MAKERS if _public_has(conn, "function", f"pg_catalog.{f}", "EXECUTE")]
    for function in public:
        conn.execute(
            sql.SQL("REVOKE EXECUTE ON FUNCTION pg_catalog.{} FROM PUBLIC").format(sql.SQL(function))
        )
    done = [f for f in public if not _public_has(conn, "function", f"pg_catalog.{f}", "EXECUTE")]
    return [f"revoked from PUBLIC: EXECUTE on function {', '.join(done)}"] if done else []


def _large_object_note(conn: psycopg.Connection[Any]) -> list[str]:
    notes = []
    left = [f for f in _LARGE_OBJECT_MAKERS if _public_has(conn, "function", f"pg_catalog.{f}", "EXECUTE")]
    if left:
        notes.append(
            f"note: only a superuser can revoke EXECUTE on {', '.join(left)} from PUBLIC:"
            " the role can still create large objects"
        )
    if _scalar(conn, "SELECT current_setting('lo_compat_privileges')") == "on":
        notes.append(
            "note: lo_compat_privileges is on (a server setting): every role can read and write every large"
            " object; set it off in postgresql.conf"
        )
    return notes


def _public_has(conn: psycopg.Connection[Any], kind: str, obj: str, privilege: str) -> bool:
    check = {"database": "has_database_privilege", "schema": "has_schema_privilege"}.get(
        kind, "has_function_privilege"
    )
    return bool(_scalar(conn, f"SELECT {check}('public', %s, %s)", obj, privilege))


def _grant_back(
    conn: psycopg.Connection[Any], keep: list[str], on: str, obj: str, privileges: list[str]
) -> list[str]:
    """Grant `keep` roles explicitly what they hold now (through PUBLIC), before PUBLIC loses it."""
    changes = []
    check = "has_database_privilege" if on == "DATABASE" else "has_schema_privilege"
    owner_of = {
        "DATABASE": "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
        "SCHEMA": "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
    }[on]
    owner = _scalar(conn, owner_of, obj)
    for role in keep:
        if role == owner:
            continue  # an owner keeps its privileges when PUBLIC loses them
        held = [p for p in privileges if _scalar(conn, f"SELECT {check}(%s, %s, %s)", role, obj, p)]
        if held:
            conn.execute(
                sql.SQL("GRANT {} ON {} {} TO {}").format(
                    sql.SQL(", ".join(held)), sql.SQL(on), sql.Identifier(obj), sql.Identifier(role)
                )
            )
            changes.append(
                f"granted {', '.join(held)} on {on.lower()} {obj} to {role}"
                f" (it had {'them' if len(held) > 1 else 'it'} through PUBLIC)"
            )
    return changes


# Logins to other databases.


def _restrict_logins(conn: psycopg.Connection[Any], name: str, database: str) -> list[str]:
    """On the embedded server: the role logs in to this database only. Elsewhere: say what stays open."""
    conn.autocommit = True
    readers = embedded.readers_file(conn)
    if readers is not None:
        roles = [str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()]
        databases = [str(r[0]) for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
        if embedded.allow_reader(readers, name, database, roles, databases):
            conn.execute("SELECT pg_reload_conf()")
        return _large_object_note(conn)
    open_dbs = [
        str(row[0])
        for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datallowconn AND datname <> current_database()"
            " AND has_database_privilege('public', oid, 'CONNECT') ORDER BY 1"
        ).fetchall()
    ]
    notes = _large_object_note(conn)
    if open_dbs:
        notes.append(
            f"note: chainrisk leaves other databases alone: {_listing(open_dbs)} still admit {name} "
            "(CONNECT granted to PUBLIC); revoke it there if that matters"
        )
    return notes


def _password_note(conn: psycopg.Connection[Any], name: str) -> list[str]:
    # Only a superuser may look at pg_authid; others get no note rather than a guess.
    if not _scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        return []
    if _scalar(conn, "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", name):
        return []
    return [f"note: {name} has no password: it can log in only where pg_hba.conf trusts it (give --password)"]


# Catalog queries.

_VIEW_RELATIONS = """
SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'v'
"""

# Privileges granted to roles explicitly (PUBLIC's are not listed), in this database and on shared objects,
# except what an owner holds on its own objects (ownership is listed on its own).
_PRIVILEGES = """
WITH acl AS (
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind, c.oid::regclass::text AS obj,
           NULL::text AS col, c.relowner AS owner, (aclexplode(c.relacl)).*
      FROM pg_class c WHERE c.relacl IS NOT NULL
    UNION ALL
    SELECT 'column', c.oid::regclass::text, quote_ident(a.attname), c.relowner, (aclexplode(a.attacl)).*
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE a.attacl IS NOT NULL
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text, NULL, p.proowner, (aclexplode(p.proacl)).*
      FROM pg_proc p WHERE p.proacl IS NOT NULL
    UNION ALL
    SELECT 'schema', quote_ident(n.nspname), NULL, n.nspowner, (aclexplode(n.nspacl)).*
      FROM pg_namespace n WHERE n.nspacl IS NOT NULL
    UNION ALL
    SELECT 'database', quote_ident(d.datname), NULL, d.datdba, (aclexplode(d.datacl)).*
      FROM pg_database d WHERE d.datacl IS NOT NULL
    UNION ALL
    SELECT 'type', t.oid::regtype::text, NULL, t.typowner, (aclexplode(t.typacl)).*
      FROM pg_type t WHERE t.typacl IS NOT NULL
    UNION ALL
    SELECT 'language', quote_ident(l.lanname), NULL, l.lanowner, (aclexplode(l.lanacl)).*
      FROM pg_language l WHERE l.lanacl IS NOT NULL
    UNION ALL
    SELECT 'large object', m.oid::text, NULL, m.lomowner, (aclexplode(m.lomacl)).*
      FROM pg_largeobject_metadata m WHERE m.lomacl IS NOT NULL
    UNION ALL
    SELECT 'foreign data wrapper', quote_ident(w.fdwname), NULL, w.fdwowner, (aclexplode(w.fdwacl)).*
      FROM pg_foreign_data_wrapper w WHERE w.fdwacl IS NOT NULL
    UNION ALL
    SELECT 'foreign server', quote_ident(s.srvname), NULL, s.srvowner, (aclexplode(s.srvacl)).*
      FROM pg_foreign_server s WHERE s.srvacl IS NOT NULL
    UNION ALL
    SELECT 'tablespace', quote_ident(s.spcname), NULL, s.spcowner, (aclexplode(s.spcacl)).*
      FROM pg_tablespace s WHERE s.spcacl IS NOT NULL
    UNION ALL
    SELECT 'parameter', p.parname, NULL, 10::oid, (aclexplode(p.paracl)).*
      FROM pg_parameter_acl p WHERE p.paracl IS NOT NULL
)
SELECT acl.kind, acl.obj, acl.col, acl.privilege_type, acl.is_grantable, r.rolname
  FROM acl JOIN pg_roles r ON r.oid = acl.grantee
 WHERE acl.grantee <> acl.owner AND (%(names)s::text[] IS NULL OR r.rolname = ANY(%(names)s::text[]))
 ORDER BY r.rolname, acl.kind, acl.obj, acl.col, acl.privilege_type
"""

_OWNED_HERE = """
SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
 WHERE d.refclassid = 'pg_authid'::regclass AND d.deptype = 'o' AND r.rolname = %(name)s
   AND d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
 ORDER BY 1
"""

_OWNED_ELSEWHERE = """
SELECT DISTINCT db.datname
  FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid JOIN pg_database db ON db.oid = d.dbid
 WHERE d.refclassid = 'pg_authid'::regclass AND d.deptype = 'o' AND r.rolname = %(name)s
   AND db.datname <> current_database()
 ORDER BY 1
"""

_DEFAULT_PRIVILEGES = """
SELECT pg_get_userbyid(d.defaclrole), n.nspname, d.defaclobjtype, a.privilege_type
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace,
       aclexplode(d.defaclacl) a JOIN pg_roles r ON r.oid = a.grantee
 WHERE r.rolname = %(name)s
 ORDER BY 1, 2, 3, 4
"""

_EXEMPT = "SELECT rolname FROM pg_roles WHERE rolsuper OR rolname LIKE 'pg\\_%'"

_USERS = """
SELECT current_user
UNION
SELECT DISTINCT r.rolname
  FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
 WHERE d.refclassid = 'pg_authid'::regclass AND d.deptype = 'o' AND r.rolname <> %(reader)s
   AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
