"""PostgreSQL privilege separation: a migration owner role and a runtime application role.

``ninaivalaigal_owner`` owns every table and runs ``migrate``; ``ninaivalaigal_app`` (web, worker,
beat) gets DML on the tables and can only append to and read the audit trail (OWASP ASVS 4.0.3
V7.3.3). ``roles_sql()`` is the one definition (``deploy/security/postgres-roles.sql`` is its
output); passwords never enter the SQL. Run ``db_roles --apply`` again after every ``migrate``
and gate deployments on ``db_roles --check``. Why: docs/decisions/database-roles.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_OWNER_ROLE = "ninaivalaigal_owner"
DEFAULT_APP_ROLE = "ninaivalaigal_app"
DEFAULT_DATABASE = "ninaivalaigal"
SCHEMA = "public"
# Unquoted PostgreSQL identifiers only: no quoting games in role and database names.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

APP_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class NarrowGrant:
    """A table on which the runtime role gets less than the usual DML."""

    table: str
    privileges: tuple[str, ...]
    update_columns: tuple[str, ...] = ()
    why: str = ""


def narrow_grants() -> list[NarrowGrant]:
    """The tables of the audit trail (and Django's migration history), named from the models."""
    from audit.models import AuditCheckpoint, AuditEvent, AuditSkippedSequence, AuditTombstone, ChainHead

    def columns(model, *names: str) -> tuple[str, ...]:
        return tuple(model._meta.get_field(name).column for name in names)

    return [
        NarrowGrant(
            AuditEvent._meta.db_table,
            ("SELECT", "INSERT"),
            columns(AuditEvent, "sequence", "previous_hash", "hash", "chain_key_id"),
            "append and read; UPDATE only of the columns the sealer fills (audit's trigger allows only sealing)",
        ),
        NarrowGrant(
            ChainHead._meta.db_table,
            ("SELECT", "INSERT"),
            columns(
                ChainHead, "sequence", "hash", "tree_size", "tree_frontier", "tree_base", "tree_epoch", "updated_at"
            ),
            "the sealer creates and moves the head and grows the Merkle tree, a reconcile after a restore starts "
            "a new tree epoch; the anchor is moved only by the purge (owner)",
        ),
        NarrowGrant(
            AuditSkippedSequence._meta.db_table,
            ("SELECT", "INSERT"),
            (),
            "the sealer records a number it stepped over (a forged row held it), never changed",
        ),
        NarrowGrant(
            AuditCheckpoint._meta.db_table,
            ("SELECT", "INSERT"),
            (),
            "signed checkpoints are appended, never changed",
        ),
        NarrowGrant(AuditTombstone._meta.db_table, ("SELECT",), (), "written only by the retention purge (owner)"),
        NarrowGrant("django_migrations", ("SELECT",), (), "only migrate (the owner) records migrations"),
    ]


def validate_identifier(value: str, *, what: str) -> str:
    if not IDENTIFIER.fullmatch(value or ""):
        raise ValueError(f"{what} {value!r} is not a plain PostgreSQL name (lower-case letters, digits, _).")
    return value


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def roles_sql(
    *, owner_role: str = DEFAULT_OWNER_ROLE, app_role: str = DEFAULT_APP_ROLE, database: str = DEFAULT_DATABASE
) -> str:
    """The idempotent SQL that creates both roles and sets every ownership and grant.

    Run it as a superuser connected to ``database``, before the first ``migrate`` and again after
    every ``migrate``.
    """
    owner = validate_identifier(owner_role, what="Owner role")
    app = validate_identifier(app_role, what="Application role")
    database = validate_identifier(database, what="Database")
    if owner == app:
        raise ValueError("The owner role and the application role must be different roles.")
    dml = ", ".join(APP_TABLE_PRIVILEGES)
    narrow_blocks = []
    for grant in narrow_grants():
        statements = [
            f"        REVOKE ALL ON {SCHEMA}.{grant.table} FROM {app};",
            f"        GRANT {', '.join(grant.privileges)} ON {SCHEMA}.{grant.table} TO {app};",
        ]
        if grant.update_columns:
            statements.append(
                f"        GRANT UPDATE ({', '.join(grant.update_columns)}) ON {SCHEMA}.{grant.table} TO {app};"
            )
        narrow_blocks.append(
            f"-- {grant.table}: {grant.why}.\n"
            "DO $$\nBEGIN\n"
            f"    IF to_regclass({_literal(f'{SCHEMA}.{grant.table}')}) IS NOT NULL THEN\n"
            + "\n".join(statements)
            + "\n    END IF;\nEND\n$$;"
        )
    narrow = "\n\n".join(narrow_blocks)
    # Only validated plain identifiers and the constants above are interpolated (S608 is about data).
    return f"""-- PostgreSQL least privilege for Ninaivalaigal: a migration owner role and a runtime role.
--
-- Generated by `manage.py db_roles --print-sql` (encryption/database_roles.py explains every
-- grant); `manage.py db_roles --apply` runs the same statements and sets the passwords.
-- Run as a superuser connected to the application's database:
--
--     psql -v ON_ERROR_STOP=1 -d {database} -f deploy/security/postgres-roles.sql
--
-- Idempotent. Order of a deployment:
--   1. run this script (creates the roles, hands the database and schema to the owner);
--   2. set the passwords: \\password {owner} and \\password {app} in psql (or db_roles --apply);
--   3. run `manage.py migrate` with DATABASE_URL naming {owner};
--   4. run this script again (narrows the audit tables that now exist; run it after every migrate);
--   5. run the web process, the worker and beat with DATABASE_URL naming {app}.
-- Backups (pg_dump) work as {app}; verify_backup needs an account with CREATEDB
-- (ENCRYPTION_BACKUP_VERIFY_DATABASE_URL); the audit retention purge (audit_archive) runs as {owner}.

BEGIN;

-- 1. The roles. Both log in; neither is a superuser or can create roles or databases.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {_literal(owner)}) THEN
        CREATE ROLE {owner} LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {_literal(app)}) THEN
        CREATE ROLE {app} LOGIN;
    END IF;
END
$$;
ALTER ROLE {owner} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE {app} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;

-- The runtime role must not be able to act as the owner (membership would inherit ownership).
DO $$
BEGIN
    IF pg_has_role({_literal(app)}, {_literal(owner)}, 'MEMBER') THEN
        REVOKE {owner} FROM {app};
    END IF;
END
$$;

-- 2. The database: owned by the owner; the runtime role may connect, nothing more.
ALTER DATABASE {database} OWNER TO {owner};
REVOKE ALL ON DATABASE {database} FROM PUBLIC;
GRANT CONNECT ON DATABASE {database} TO {app};

-- 3. The schema: owned by the owner; nobody else may create objects in it.
ALTER SCHEMA {SCHEMA} OWNER TO {owner};
REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC;
GRANT USAGE ON SCHEMA {SCHEMA} TO {app};

-- 4. Objects created earlier by another role (a superuser's migrate) now belong to the owner.
--    Sequences that belong to a column move with their table.
DO $$
DECLARE
    object record;
BEGIN
    FOR object IN
        SELECT c.oid::regclass AS name FROM pg_catalog.pg_class c
        WHERE c.relnamespace = {_literal(SCHEMA)}::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND c.relowner <> {_literal(owner)}::regrole
          AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_depend d
              WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO %I', object.name, {_literal(owner)});
    END LOOP;
    FOR object IN
        SELECT p.oid::regprocedure AS name FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = {_literal(SCHEMA)}::regnamespace AND p.proowner <> {_literal(owner)}::regrole
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', object.name, {_literal(owner)});
    END LOOP;
END
$$;

-- 5. The runtime role on every existing table and sequence: read and write rows, nothing else.
REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM {app};
GRANT {dml} ON ALL TABLES IN SCHEMA {SCHEMA} TO {app};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA {SCHEMA} FROM {app};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {SCHEMA} TO {app};

-- 6. Tables the runtime role may only append to and read (applied when they exist).
{narrow}

-- 7. Tables and sequences the owner creates later get the same runtime grants at once.
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {SCHEMA} GRANT {dml} ON TABLES TO {app};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {SCHEMA} GRANT USAGE, SELECT ON SEQUENCES TO {app};

COMMIT;
"""  # noqa: S608


def scram_verifier(connection, *, role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password`` for ``role``, computed by libpq on the client."""
    return connection.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode("ascii")


def roles_apply(
    connection,
    *,
    owner_role: str = DEFAULT_OWNER_ROLE,
    app_role: str = DEFAULT_APP_ROLE,
    database: str = DEFAULT_DATABASE,
    passwords: dict[str, str] | None = None,
) -> None:
    """Run ``roles_sql`` on ``connection`` (psycopg, a superuser, connected to ``database``).

    ``passwords`` maps role names to passwords to set (as client-side SCRAM verifiers).
    Permission: the caller has checked it (an operator holding superuser credentials).
    """
    from psycopg import sql

    if connection.info.dbname != database:
        raise ValueError(f"Connect to the database {database!r} itself (connected to {connection.info.dbname!r}).")
    connection.autocommit = True
    connection.execute(roles_sql(owner_role=owner_role, app_role=app_role, database=database))
    for role, password in (passwords or {}).items():
        verifier = scram_verifier(connection, role=role, password=password)
        connection.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))


def roles_check(connection, *, owner_role: str = DEFAULT_OWNER_ROLE, app_role: str = DEFAULT_APP_ROLE) -> list[str]:
    """Return what is wrong with the runtime role's privileges in this database (empty: all is well).

    Read-only; any account may run it. Catches the usual drift: a migrate since the last
    ``--apply`` (a new audit table with full DML, or a table owned by another role), a role
    made superuser or member of the owner, ``CREATE`` on the schema.
    """
    problems: list[str] = []

    def one(query: str, *params):
        return connection.execute(query, params).fetchone()

    role = one("SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = %s", app_role)
    if role is None:
        return [f"The application role {app_role} does not exist."]
    if any(role):
        problems.append(f"{app_role} has a superuser, CREATEDB, CREATEROLE or BYPASSRLS attribute.")
    if one("SELECT to_regrole(%s)", owner_role)[0] is None:
        problems.append(f"The owner role {owner_role} does not exist.")
    elif one("SELECT pg_has_role(%s, %s, 'MEMBER')", app_role, owner_role)[0]:
        problems.append(f"{app_role} is a member of {owner_role} and so can act as the owner.")
    if one("SELECT has_schema_privilege(%s, %s, 'CREATE')", app_role, SCHEMA)[0]:
        problems.append(f"{app_role} can create objects in schema {SCHEMA}.")
    if one("SELECT has_database_privilege(%s, current_database(), 'CREATE')", app_role)[0]:
        problems.append(f"{app_role} can create schemas in this database.")
    if one("SELECT has_database_privilege(%s, current_database(), 'TEMPORARY')", app_role)[0]:
        problems.append(f"{app_role} can create temporary tables in this database.")
    tables = connection.execute(
        "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
        "WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p') ORDER BY c.relname",
        [SCHEMA],
    ).fetchall()
    narrow = {grant.table: grant for grant in narrow_grants()}
    for table, table_owner in tables:
        qualified = f"{SCHEMA}.{table}"
        if table_owner != owner_role:
            problems.append(f"{table} is owned by {table_owner}, not {owner_role}.")
        for extra in ("TRUNCATE", "REFERENCES", "TRIGGER"):
            if one("SELECT has_table_privilege(%s, %s, %s)", app_role, qualified, extra)[0]:
                problems.append(f"{app_role} has {extra} on {table}.")
        grant = narrow.get(table)
        expected = set(grant.privileges) if grant else set(APP_TABLE_PRIVILEGES)
        for privilege in APP_TABLE_PRIVILEGES:
            held = one("SELECT has_table_privilege(%s, %s, %s)", app_role, qualified, privilege)[0]
            if held and privilege not in expected:
                problems.append(f"{app_role} has {privilege} on {table} (it must not).")
            elif not held and privilege in expected:
                problems.append(f"{app_role} lacks {privilege} on {table} (run db_roles --apply after migrate).")
        if grant:
            updatable = {
                name
                for (name,) in connection.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                    "AND NOT attisdropped AND has_column_privilege(%s, attrelid, attnum, 'UPDATE')",
                    [qualified, app_role],
                ).fetchall()
            }
            if updatable != set(grant.update_columns):
                problems.append(
                    f"{app_role} may UPDATE columns {sorted(updatable)} of {table}; expected "
                    f"{sorted(grant.update_columns)}."
                )
    return problems
