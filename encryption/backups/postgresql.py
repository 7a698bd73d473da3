"""PostgreSQL backups: ``pg_dump`` in an exported snapshot, verified by ``pg_restore`` into a scratch database.

The client programs get the connection settings from ``PG*`` variables and the password from a
private ``.pgpass`` file: credentials never reach a command line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from encryption import conf
from encryption.backups.file_format import BackupError, BackupReader, BackupWriter, VerificationResult
from encryption.backups.private_files import SCRATCH_DATABASE_FILE, open_private
from encryption.backups.progress import ProgressCallback, emit
from encryption.backups.verification import check_dump, check_encrypted_values, check_row_counts, decrypt_to

# One logger for the package: its lines name ``encryption.backups`` whichever module writes them.
logger = logging.getLogger("encryption.backups")


def pg_program(name: str) -> str:
    """The path of ``pg_dump``/``pg_restore``: in ``ENCRYPTION_BACKUP_PG_BINDIR``, else on PATH."""
    directory = conf.get("ENCRYPTION_BACKUP_PG_BINDIR") or ""
    if directory:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise BackupError(f"{name} is not in ENCRYPTION_BACKUP_PG_BINDIR.", stage="tools")
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed or not on PATH: install the PostgreSQL client programs (of the server's major "
            "version or newer) or set ENCRYPTION_BACKUP_PG_BINDIR.",
            stage="tools",
        )
    return found


def pg_dump_options() -> list[str]:
    """pg_dump's compression: ``ENCRYPTION_BACKUP_PG_COMPRESSION`` (gzip level 0-9, default 0).

    Off by default: most of a memory database is ciphertext, which gzip cannot shrink beyond
    base64's quarter, and on it gzip runs an order of magnitude slower than the dump itself
    (bench/backup_bench.py). A large audit table (plain JSON) compresses well: raise it then.
    """
    level = int(conf.get("ENCRYPTION_BACKUP_PG_COMPRESSION"))
    if not 0 <= level <= 9:
        raise BackupError("ENCRYPTION_BACKUP_PG_COMPRESSION is a gzip level from 0 to 9.", stage="dump")
    return [f"--compress={level}"]


def server_settings(using: str = DEFAULT_DB_ALIAS, *, for_verification: bool = False) -> dict:
    """Host, port, user, password and TLS options of the database server for backups.

    ``ENCRYPTION_BACKUP_VERIFY_DATABASE_URL`` names the server account that creates and drops the
    scratch databases of verification (``for_verification``; it needs CREATEDB, the runtime role
    has not); backups themselves read through the application's own connection settings.
    """
    url = (conf.get("ENCRYPTION_BACKUP_VERIFY_DATABASE_URL") or "") if for_verification else ""
    if url:
        import environ

        source = environ.Env.db_url_config(url)
    else:
        source = connections[using].settings_dict
    return _server(source)


def _server(config: dict) -> dict:
    """The parts of a Django database entry that ``pg_dump``/``pg_restore``/psycopg need."""
    options = config.get("OPTIONS") or {}
    return {
        "NAME": config.get("NAME") or "",
        "USER": config.get("USER") or "",
        "PASSWORD": config.get("PASSWORD") or "",
        "HOST": config.get("HOST") or "",
        "PORT": str(config.get("PORT") or ""),
        "SSL": {name: options[name] for name in ("sslmode", "sslrootcert", "sslcert", "sslkey") if options.get(name)},
    }


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pg_environment(server: dict, *, dbname: str, private: Path) -> dict[str, str]:
    """Environment of a ``pg_dump``/``pg_restore`` child: PG* variables and a 0600 ``.pgpass``.

    Inherited PG* variables are dropped first, so only the settings of this database apply.
    """
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    environment.update({"PGDATABASE": dbname, "PGAPPNAME": "ninaivalaigal-backup", "PGCONNECT_TIMEOUT": "10"})
    for name, variable in (("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER")):
        if server[name]:
            environment[variable] = server[name]
    for option, value in server["SSL"].items():
        environment["PG" + option.upper()] = str(value)
    passfile = private / "pgpass"
    with open_private(passfile) as handle:
        if server["PASSWORD"]:
            # Wildcards: this file exists for this one child process only.
            handle.write(f"*:*:*:*:{_pgpass_escape(server['PASSWORD'])}\n".encode())
    environment["PGPASSFILE"] = str(passfile)
    return environment


def _connect(server: dict, *, dbname: str, autocommit: bool = True):
    """A psycopg connection to ``dbname`` on ``server`` (see ``server_settings``)."""
    import psycopg

    params = {
        "dbname": dbname,
        "user": server["USER"] or None,
        "password": server["PASSWORD"] or None,
        "host": server["HOST"] or None,
        "port": server["PORT"] or None,
        "application_name": "ninaivalaigal-backup",
        "connect_timeout": 10,
        **server["SSL"],
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, autocommit=autocommit)


def _last_lines(path: Path, count: int = 3) -> str:
    """The last lines a client program wrote to its error output, for the operator's message."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-count:])[:600]


_TABLES_SQL = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY n.nspname, c.relname
"""


def table_row_counts(database) -> dict[str, int]:
    """The row count of every table (``schema.table`` outside ``public``), as ``database`` sees it."""
    from psycopg import sql

    counts = {}
    for schema, table in database.execute(_TABLES_SQL).fetchall():
        (count,) = database.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()
        counts[table if schema == "public" else f"{schema}.{table}"] = count
    return counts


# An order-independent digest of a table's rows: two sums of 60-bit slices of each row text's MD5.
# Not a defence against forgery (the backup file is authenticated); a check that the restore put
# back exactly the rows that were dumped, computed by the server without moving the rows.
_DIGEST_SQL = """
    SELECT count(*), coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint::numeric), 0),
           coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::bigint::numeric), 0)
    FROM (SELECT md5(t::text) AS h FROM {} AS t) AS rows
"""
DIGEST_METHOD = "pg-row-md5-sum60x2"


def table_digests(database) -> dict[str, str]:
    """A content digest of every table (keys as in ``table_row_counts``), as ``database`` sees it."""
    from psycopg import sql

    digests = {}
    for schema, table in database.execute(_TABLES_SQL).fetchall():
        statement = sql.SQL(_DIGEST_SQL).format(sql.Identifier(schema, table))
        count, first, second = database.execute(statement).fetchone()
        digests[table if schema == "public" else f"{schema}.{table}"] = f"{count}:{first}:{second}"
    return digests


def dump(writer: BackupWriter, *, using: str, private: Path, progress: ProgressCallback | None) -> dict:
    """Stream ``pg_dump`` into ``writer`` in the snapshot the row counts were taken in; return the manifest part."""
    from psycopg import IsolationLevel

    server = server_settings(using)
    pg_dump = pg_program("pg_dump")
    stderr_path = private / "pg_dump.stderr"
    with _connect(server, dbname=server["NAME"], autocommit=False) as snapshot:
        # The snapshot that pg_dump imports (--snapshot): counts and dump see the same data.
        snapshot.isolation_level = IsolationLevel.REPEATABLE_READ
        snapshot.read_only = True
        snapshot.execute("SET LOCAL statement_timeout = 0")
        snapshot.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        (snapshot_id,) = snapshot.execute("SELECT pg_export_snapshot()").fetchone()
        (server_version,) = snapshot.execute("SHOW server_version").fetchone()
        (database_bytes,) = snapshot.execute("SELECT pg_database_size(current_database())").fetchone()
        tables = table_row_counts(snapshot)
        digests = table_digests(snapshot)
        environment = pg_environment(server, dbname=server["NAME"], private=private)
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell, no secrets
                [pg_dump, "--format=custom", "--no-password", *pg_dump_options(), f"--snapshot={snapshot_id}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=environment,
            )
            try:
                while chunk := process.stdout.read(writer.chunk_size):
                    writer.write(chunk)
                    # The database's size on disk is only an estimate of the (compressed) dump's.
                    emit(progress, "dump", len(chunk), database_bytes)
                returncode = process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                process.stdout.close()
        snapshot.rollback()
    if returncode != 0:
        raise BackupError(f"pg_dump failed (exit status {returncode}): {_last_lines(stderr_path)}", stage="dump")
    return {
        "database": {"vendor": "postgresql", "server_version": server_version, "dump_format": "pg_dump-custom"},
        "tables": tables,
        "table_digests": {"method": DIGEST_METHOD, "tables": digests},
    }


# The only names a scratch database can have: a leftover's file naming anything else is ignored.
SCRATCH_NAME = re.compile(r"nv_verify_\d{14}_[0-9a-f]{8}")


def new_scratch_name(private: Path) -> str:
    """A fresh scratch database name, written into the run folder *before* the database exists.

    If the run dies, the next backup command finds the name there and drops the database.
    """
    name = f"nv_verify_{timezone.now():%Y%m%d%H%M%S}_{secrets.token_hex(4)}"
    with open_private(private / SCRATCH_DATABASE_FILE) as handle:
        handle.write(name.encode("ascii"))
    return name


def drop_scratch_database(name: str, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Drop the scratch database ``name`` of a dead verification (nothing if it does not exist)."""
    from psycopg import sql

    if not SCRATCH_NAME.fullmatch(name):
        raise ValueError("not a scratch database name")
    if connections[using].vendor != "postgresql":
        raise RuntimeError("the configured database is not PostgreSQL")
    server = server_settings(using, for_verification=True)
    with _connect(server, dbname=server["NAME"] or "postgres") as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    logger.warning("dropped the scratch database %s of a backup verification that died", name)


def verify(
    reader: BackupReader, result: VerificationResult, *, using: str, private: Path, progress: ProgressCallback | None
) -> None:
    """Restore into a new scratch database, check it and drop it; fill in ``result``."""
    from psycopg import sql

    server = server_settings(using, for_verification=True)
    pg_restore = pg_program("pg_restore")
    scratch_name = new_scratch_name(private)
    maintenance = server["NAME"] or "postgres"
    try:
        with _connect(server, dbname=maintenance) as admin:
            # A new name every time: CREATE DATABASE fails rather than reuse anything that exists.
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(scratch_name))
            )
    except Exception as error:
        import psycopg

        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        hint = (
            " The account needs CREATEDB: set ENCRYPTION_BACKUP_VERIFY_DATABASE_URL to one that has it."
            if isinstance(error, psycopg.errors.InsufficientPrivilege)
            else ""
        )
        raise BackupError(
            f"Cannot create the scratch database for verification ({type(error).__name__}: {first_line}).{hint}",
            stage="restore",
        ) from None
    try:
        stderr_path = private / "pg_restore.stderr"
        environment = pg_environment(server, dbname=scratch_name, private=private)
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell, no secrets
                [
                    pg_restore,
                    "--no-password",
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    f"--dbname={scratch_name}",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=environment,
            )
            broken = False

            def sink(chunk: bytes) -> None:
                nonlocal broken
                if broken:
                    return
                try:
                    process.stdin.write(chunk)
                except BrokenPipeError:
                    broken = True  # pg_restore stopped; keep authenticating, then report its error

            try:
                size, sha256 = decrypt_to(reader, sink, file_bytes=result.file_bytes, progress=progress)
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
                returncode = process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        manifest = reader.manifest
        result.manifest = manifest
        check_dump(manifest, size, sha256)
        if returncode != 0:
            raise BackupError(
                f"pg_restore failed (exit status {returncode}): {_last_lines(stderr_path)}", stage="restore"
            )
        emit(progress, "check", 0, None)
        with _connect(server, dbname=scratch_name) as restored_database:
            restored = table_row_counts(restored_database)
            result.rows_checked = check_row_counts(manifest, restored)
            result.tables_checked = len(restored)

            def fetch(table: str, columns: list[str], limit: int) -> list[tuple]:
                statement = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY random() LIMIT %s").format(
                    sql.SQL(", ").join(sql.Identifier(column) for column in columns),
                    sql.Identifier(table),
                    sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns),
                )
                return restored_database.execute(statement, [limit]).fetchall()

            check_encrypted_values(fetch, set(restored), result)
    finally:
        try:
            with _connect(server, dbname=maintenance) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch_name)))
        except Exception:
            logger.exception("could not drop the scratch database %s of a backup verification", scratch_name)


def target_server(url: str | None, *, using: str = DEFAULT_DB_ALIAS) -> dict:
    """Connection settings of a restore's target: ``url``, else the configured database.

    The URL is never repeated in a message (it may hold a password).
    """
    if not url:
        if connections[using].vendor != "postgresql":
            raise BackupError(
                "This is a PostgreSQL backup and the configured database is not PostgreSQL: give --database-url.",
                stage="target",
            )
        return server_settings(using)
    import environ
    from django.core.exceptions import ImproperlyConfigured

    try:
        config = environ.Env.db_url_config(url)
    except (KeyError, ValueError, ImproperlyConfigured):
        raise BackupError("The target database URL is not a valid database URL.", stage="target") from None
    if "postgresql" not in str(config.get("ENGINE", "")):
        raise BackupError("This is a PostgreSQL backup: the target URL must be postgres://...", stage="target")
    if not config.get("NAME"):
        raise BackupError("The target database URL names no database.", stage="target")
    return _server(config)


def describe_target(server: dict) -> str:
    """``database NAME on HOST:PORT``: no user, no password."""
    where = server["HOST"] or "the local socket"
    if server["PORT"]:
        where += f":{server['PORT']}"
    return f"database {server['NAME']} on {where}"


def target_table_count(server: dict) -> int:
    """Tables in the target database; ``BackupError`` naming the target if it cannot be reached."""
    try:
        with _connect(server, dbname=server["NAME"]) as database:
            (count,) = database.execute(
                """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"""
            ).fetchone()
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        # psycopg's message may name the user; never the password (it is not in the message).
        raise BackupError(
            f"Cannot connect to the target {describe_target(server)} ({type(error).__name__}: {first_line[:200]}).",
            stage="target",
        ) from None
    return int(count)


def restore(
    reader: BackupReader,
    result: VerificationResult,
    *,
    server: dict,
    replace: bool,
    private: Path,
    progress: ProgressCallback | None,
) -> None:
    """``pg_restore`` into the target in one transaction, then check it there; fill in ``result``.

    ``--single-transaction --exit-on-error``: a restore that fails leaves the target as it was,
    and a file that fails authentication on the way kills ``pg_restore`` before it can commit
    (the service has authenticated the whole file once already, so that is a file changed
    meanwhile). ``replace`` (the operator's ``--force``) adds ``--clean --if-exists``.
    """
    pg_restore = pg_program("pg_restore")
    stderr_path = private / "pg_restore.stderr"
    environment = pg_environment(server, dbname=server["NAME"], private=private)
    arguments = [
        pg_restore,
        "--no-password",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={server['NAME']}",
    ]
    if replace:
        arguments[1:1] = ["--clean", "--if-exists"]
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell, no secrets
            arguments, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, env=environment
        )
        broken = False

        def sink(chunk: bytes) -> None:
            nonlocal broken
            if broken:
                return
            try:
                process.stdin.write(chunk)
            except BrokenPipeError:
                broken = True

        try:
            size, sha256 = decrypt_to(reader, sink, file_bytes=result.file_bytes, progress=progress)
            manifest = reader.manifest
            result.manifest = manifest
            check_dump(manifest, size, sha256)
            # Only a dump that authenticated to its end and matches its manifest may commit.
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if returncode != 0:
        raise BackupError(f"pg_restore failed (exit status {returncode}): {_last_lines(stderr_path)}", stage="restore")
    emit(progress, "check", 0, None)
    check_restored_database(server, manifest, result)


def check_restored_database(server: dict, manifest: dict, result: VerificationResult) -> None:
    """Row counts, content digests and a decrypted sample of the restored target, against the manifest."""
    from psycopg import sql

    with _connect(server, dbname=server["NAME"]) as database:
        restored = table_row_counts(database)
        result.rows_checked = check_row_counts(manifest, restored)
        result.tables_checked = len(restored)
        recorded = manifest.get("table_digests") or {}
        if recorded.get("method") == DIGEST_METHOD:
            now = table_digests(database)
            wrong = sorted(name for name, digest in recorded.get("tables", {}).items() if now.get(name) != digest)
            if wrong:
                raise BackupError(
                    f"The restored rows differ from the backup's content digests in: {', '.join(wrong[:10])}.",
                    stage="after-restore",
                )
            result.digests_checked = len(recorded.get("tables", {}))

        def fetch(table: str, columns: list[str], limit: int) -> list[tuple]:
            statement = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY random() LIMIT %s").format(
                sql.SQL(", ").join(sql.Identifier(column) for column in columns),
                sql.Identifier(table),
                sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns),
            )
            return database.execute(statement, [limit]).fetchall()

        check_encrypted_values(fetch, set(restored), result)
