"""Encrypted database backups: create, verify by restoring into a scratch database, and rotate.

What a backup is
----------------
SQLite is copied through its online backup API (a consistent snapshot while the web process, the
worker and beat keep writing) into a private temporary file that is then streamed; PostgreSQL is
dumped by ``pg_dump --format=custom`` inside an exported snapshot, streamed from its standard
output. The table row counts in the manifest are counted in that same snapshot, so they must match
the restored copy exactly. The dump is encrypted as it streams, a chunk at a time, so memory use
does not grow with the size of the database.

File format: the streaming authenticated encryption of ``encryption.streams`` (AES-256-GCM
frames under an HKDF per-file key, STREAM construction, authenticated header, the manifest as the
one final frame), with the magic ``NVBACKUP``, the ``backup`` key ring and labels of its own.
The header also names the database kind. Hence a changed, reordered, dropped, repeated, foreign
or appended frame, a changed header and a truncated file all fail verification.

The last frame is the **manifest** (JSON, authenticated and encrypted like the data): created and
finished at, database kind and server version, dump format, dump size and SHA-256, chunk count,
key id, row count of every table, the encrypted columns of every model, the latest migration of
every app. It is written last because its sizes, checksum and counts are known only at the end.

Verification decrypts every frame, restores into a scratch database (a temporary SQLite file, or
a temporary PostgreSQL database created and dropped, restored with ``pg_restore``), compares the
dump's size and SHA-256 and every table's row count with the manifest, and decrypts a sample of
values of every encrypted column with the field key ring: a backup is only useful if its
encrypted fields can still be read. It writes nothing but the scratch copy (removed afterwards)
and its audit event: the live database and the backup file are never changed.

Credentials never reach a command line: ``pg_dump`` and ``pg_restore`` read the password from a
private temporary ``.pgpass`` file (mode 0600) named by ``PGPASSFILE``, the other connection
settings from ``PG*`` environment variables.

Events: ``system.backup_created``, ``system.backup_verified`` and ``system.backup_failed``
(OWASP ASVS 4.0.3 V7.1.3), with sizes, counts, the checksum and the key id, never key material.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from audit.actions import Action, Outcome
from audit.services import Target, record
from encryption import conf
from encryption.errors import DecryptionError, KeyConfigurationError
from encryption.keyring import Key, get_key_ring
from encryption.streams import StreamError, StreamFormat, StreamReader, StreamWriter

logger = logging.getLogger(__name__)

# --- Format constants (the frame format itself is encryption.streams) ------------------------
MAGIC = b"NVBACKUP"
FORMAT_NAME = "ninaivalaigal-backup"
FILE_SUFFIX = ".nvbak"
# Plaintext bytes per frame. Memory use is a small multiple of this whatever the database size.
CHUNK_SIZE = 1024 * 1024
KDF_LABEL = b"ninaivalaigal backup v1 file key\x00"
AD_LABEL = b"nvbackup/v1"
BACKUP_FORMAT = StreamFormat(
    name=FORMAT_NAME,
    magic=MAGIC,
    purpose="backup",
    kdf_label=KDF_LABEL,
    ad_label=AD_LABEL,
    noun="backup",
    required_header=("database",),
)

# Called as progress(stage, bytes_done_since_last_call, total_bytes_or_None).
ProgressCallback = Callable[[str, int, "int | None"], None]


class BackupError(StreamError):
    """A backup could not be created or did not verify. ``str()`` is a message for the operator.

    ``stage`` names the step that failed (``header``, ``decrypt``, ``dump``, ``restore``,
    ``row-counts``, ``encrypted-fields``...).
    """


@dataclass
class BackupResult:
    """What ``backup_create`` wrote."""

    path: Path
    manifest: dict
    file_bytes: int
    seconds: float

    @property
    def dump_bytes(self) -> int:
        return self.manifest["dump_bytes"]

    def summary(self) -> dict:
        """Counts, sizes, checksum and key id only: safe for an audit event and a log line."""
        return {
            "file": self.path.name,
            "database": self.manifest["database"]["vendor"],
            "key_id": self.manifest["key_id"],
            "dump_bytes": self.manifest["dump_bytes"],
            "file_bytes": self.file_bytes,
            "dump_sha256": self.manifest["dump_sha256"],
            "tables": len(self.manifest["tables"]),
            "rows": sum(self.manifest["tables"].values()),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class VerificationResult:
    """What ``backup_verify`` checked."""

    path: Path
    manifest: dict
    file_bytes: int
    seconds: float
    tables_checked: int = 0
    rows_checked: int = 0
    values_decrypted: dict[str, int] = field(default_factory=dict)
    models_absent: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "file": self.path.name,
            "database": self.manifest["database"]["vendor"],
            "key_id": self.manifest["key_id"],
            "created_at": self.manifest["created_at"],
            "dump_bytes": self.manifest["dump_bytes"],
            "file_bytes": self.file_bytes,
            "dump_sha256": self.manifest["dump_sha256"],
            "tables": self.tables_checked,
            "rows": self.rows_checked,
            "values_decrypted": sum(self.values_decrypted.values()),
            "models_sampled": len(self.values_decrypted),
            "seconds": round(self.seconds, 3),
        }


# =============================================================================================
# The file format: encryption.streams with the backup's magic, labels, key ring and header
# =============================================================================================
class BackupWriter(StreamWriter):
    """Seal a dump into the backup format: ``write()`` the dump, then ``finish(manifest)``."""

    def __init__(self, stream: IO[bytes], *, key: Key, database: str, chunk_size: int | None = None) -> None:
        super().__init__(
            stream,
            stream_format=BACKUP_FORMAT,
            key=key,
            header={"database": database},
            chunk_size=chunk_size or CHUNK_SIZE,
        )

    @property
    def dump_bytes(self) -> int:
        return self.plaintext_bytes

    @property
    def dump_sha256(self) -> str:
        return self.plaintext_sha256

    def finish(self, manifest: dict) -> dict:
        """Seal the last partial chunk and the manifest, with the dump's size and SHA-256."""
        return super().finish({**manifest, "dump_bytes": self.dump_bytes, "dump_sha256": self.dump_sha256})


class BackupReader(StreamReader):
    """Read a backup: the clear header first, then authenticated dump chunks, then the manifest.

    Every failure raises ``BackupError`` with a message that says what is wrong with the file.
    """

    error = BackupError

    def __init__(self, stream: IO[bytes], *, name: str = "the backup") -> None:
        super().__init__(stream, stream_format=BACKUP_FORMAT, name=name)
        self.database = str(self.header["database"])


# =============================================================================================
# Helpers: private temporary folders, PostgreSQL connection settings and client programs
# =============================================================================================
@contextlib.contextmanager
def _private_directory(prefix: str) -> Iterator[Path]:
    """A temporary folder only this user can enter (0700), removed with everything in it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        os.chmod(path, 0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _open_private(path: Path) -> IO[bytes]:
    """Create ``path`` with mode 0600 (and fail if it exists), opened for binary writing."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(descriptor, "wb")


def _emit(progress: ProgressCallback | None, stage: str, done: int, total: int | None) -> None:
    if progress is not None:
        progress(stage, done, total)


def _pg_program(name: str) -> str:
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


def _server_settings(using: str = DEFAULT_DB_ALIAS) -> dict:
    """Host, port, user, password and TLS options of the database server for backups.

    ``ENCRYPTION_BACKUP_VERIFY_DATABASE_URL`` names the server account that creates and drops the
    scratch databases of verification (it needs CREATEDB; the runtime role has not); backups
    themselves read through the application's own connection settings.
    """
    settings_dict = connections[using].settings_dict
    options = settings_dict.get("OPTIONS") or {}
    return {
        "NAME": settings_dict.get("NAME") or "",
        "USER": settings_dict.get("USER") or "",
        "PASSWORD": settings_dict.get("PASSWORD") or "",
        "HOST": settings_dict.get("HOST") or "",
        "PORT": str(settings_dict.get("PORT") or ""),
        "SSL": {name: options[name] for name in ("sslmode", "sslrootcert", "sslcert", "sslkey") if options.get(name)},
    }


def _verify_server_settings(using: str = DEFAULT_DB_ALIAS) -> dict:
    url = conf.get("ENCRYPTION_BACKUP_VERIFY_DATABASE_URL") or ""
    if not url:
        return _server_settings(using)
    import environ

    config = environ.Env.db_url_config(url)
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


def _pg_environment(server: dict, *, dbname: str, private: Path) -> dict[str, str]:
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
    with _open_private(passfile) as handle:
        if server["PASSWORD"]:
            # Wildcards: this file exists for this one child process only.
            handle.write(f"*:*:*:*:{_pgpass_escape(server['PASSWORD'])}\n".encode())
    environment["PGPASSFILE"] = str(passfile)
    return environment


def _pg_connect(server: dict, *, dbname: str, autocommit: bool = True):
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
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-count:])[:600]


def _latest_migrations(using: str) -> dict[str, str]:
    from django.db.migrations.recorder import MigrationRecorder

    latest: dict[str, str] = {}
    with contextlib.suppress(Exception):
        for app, name in (
            MigrationRecorder(connections[using]).migration_qs.order_by("app", "name").values_list("app", "name")
        ):
            latest[app] = name
    return latest


def _encrypted_columns() -> dict[str, dict]:
    from encryption.selectors import encrypted_model_list

    return {
        item.label: {"table": item.model._meta.db_table, "columns": [f.column for f in item.encrypted_fields]}
        for item in encrypted_model_list()
        if item.encrypted_fields
    }


# =============================================================================================
# Dump: SQLite (online backup API) and PostgreSQL (pg_dump in an exported snapshot)
# =============================================================================================
def _sqlite_tables(database: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in database.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    counts = {}
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        counts[name] = database.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]  # noqa: S608 - quoted name
    return counts


def _dump_sqlite(writer: BackupWriter, *, using: str, private: Path, progress: ProgressCallback | None) -> dict:
    connection = connections[using]
    name = str(connection.settings_dict["NAME"])
    snapshot_path = private / "snapshot.sqlite3"
    in_memory = name == ":memory:" or "mode=memory" in name
    if in_memory:
        connection.ensure_connection()
        source = connection.connection
    else:
        # Our own read-only connection: sees committed data only, as pg_dump does, and is unaffected
        # by whatever transaction the caller's Django connection has open.
        source = sqlite3.connect(f"{Path(name).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(snapshot_path)
        try:
            # One step (pages=-1): a single read transaction, so the copy is consistent even while
            # other processes write (stepwise copying restarts on every write by another connection).
            source.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=DELETE")
            tables = _sqlite_tables(target)
            server_version = target.execute("SELECT sqlite_version()").fetchone()[0]
        finally:
            target.close()
    finally:
        if not in_memory:
            source.close()
    total = snapshot_path.stat().st_size
    with open(snapshot_path, "rb") as snapshot:
        while chunk := snapshot.read(writer.chunk_size):
            writer.write(chunk)
            _emit(progress, "encrypt", len(chunk), total)
    return {
        "database": {"vendor": "sqlite", "server_version": server_version, "dump_format": "sqlite3-database-file"},
        "tables": tables,
    }


_PG_TABLES_SQL = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY n.nspname, c.relname
"""


def _pg_tables(database) -> dict[str, int]:
    from psycopg import sql

    counts = {}
    for schema, table in database.execute(_PG_TABLES_SQL).fetchall():
        (count,) = database.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()
        counts[table if schema == "public" else f"{schema}.{table}"] = count
    return counts


def _dump_postgresql(writer: BackupWriter, *, using: str, private: Path, progress: ProgressCallback | None) -> dict:
    from psycopg import IsolationLevel

    server = _server_settings(using)
    pg_dump = _pg_program("pg_dump")
    stderr_path = private / "pg_dump.stderr"
    with _pg_connect(server, dbname=server["NAME"], autocommit=False) as snapshot:
        # The snapshot that pg_dump imports (--snapshot): counts and dump see the same data.
        snapshot.isolation_level = IsolationLevel.REPEATABLE_READ
        snapshot.read_only = True
        snapshot.execute("SET LOCAL statement_timeout = 0")
        snapshot.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        (snapshot_id,) = snapshot.execute("SELECT pg_export_snapshot()").fetchone()
        (server_version,) = snapshot.execute("SHOW server_version").fetchone()
        (database_bytes,) = snapshot.execute("SELECT pg_database_size(current_database())").fetchone()
        tables = _pg_tables(snapshot)
        environment = _pg_environment(server, dbname=server["NAME"], private=private)
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
                    _emit(progress, "dump", len(chunk), database_bytes)
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
    }


# =============================================================================================
# Restore and check: the scratch database, row counts, a sample of every encrypted column
# =============================================================================================
def _sample_size() -> int:
    return int(conf.get("ENCRYPTION_BACKUP_VERIFY_SAMPLE_SIZE"))


def _check_row_counts(manifest: dict, restored: dict[str, int]) -> int:
    expected = manifest.get("tables") or {}
    missing = sorted(set(expected) - set(restored))
    extra = sorted(set(restored) - set(expected))
    if missing or extra:
        raise BackupError(
            f"The restored copy's tables differ from the manifest (missing: {', '.join(missing) or 'none'}; "
            f"unexpected: {', '.join(extra) or 'none'}).",
            stage="row-counts",
        )
    wrong = [
        f"{name} {restored[name]} rows, manifest {expected[name]}"
        for name in sorted(expected)
        if restored[name] != expected[name]
    ]
    if wrong:
        raise BackupError(f"Row counts differ from the manifest: {'; '.join(wrong[:10])}.", stage="row-counts")
    return sum(restored.values())


def _check_encrypted_values(
    fetch: Callable[[str, list[str], int], list[tuple]], tables: set[str], result: VerificationResult
) -> None:
    """Decrypt up to ``ENCRYPTION_BACKUP_VERIFY_SAMPLE_SIZE`` random rows of every encrypted column.

    ``fetch(table, columns, limit)`` returns raw stored values (tokens) from the restored copy.
    The first value that does not decrypt stops verification: the message names the model, the
    column and the key id, never the value.
    """
    from encryption.selectors import encrypted_model_list

    limit = _sample_size()
    for item in encrypted_model_list():
        if not item.encrypted_fields:
            continue
        table = item.model._meta.db_table
        if table not in tables:
            result.models_absent.append(item.label)
            continue
        columns = [f.column for f in item.encrypted_fields]
        decrypted = 0
        for row in fetch(table, columns, limit):
            for column_field, token in zip(item.encrypted_fields, row, strict=True):
                if token is None:
                    continue
                try:
                    column_field.decrypt_token(token)
                except DecryptionError as error:
                    raise BackupError(
                        f"An encrypted value of {item.label}.{column_field.column} in the backup cannot be "
                        f"decrypted with the field key ring: {error.reason} (key id {error.key_id!r}). Restoring "
                        "it would give unreadable data.",
                        stage="encrypted-fields",
                    ) from None
                decrypted += 1
        result.values_decrypted[item.label] = decrypted


def _decrypt_to(
    reader: BackupReader, sink: Callable[[bytes], None], *, file_bytes: int, progress: ProgressCallback | None
) -> tuple[int, str]:
    """Stream the dump's plaintext into ``sink``; return its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    seen = reader.bytes_read
    _emit(progress, "decrypt", seen, file_bytes)
    for chunk in reader.chunks():
        digest.update(chunk)
        size += len(chunk)
        sink(chunk)
        _emit(progress, "decrypt", reader.bytes_read - seen, file_bytes)
        seen = reader.bytes_read
    _emit(progress, "decrypt", reader.bytes_read - seen, file_bytes)
    return size, digest.hexdigest()


def _check_dump(manifest: dict, size: int, sha256: str) -> None:
    if manifest.get("dump_bytes") != size or manifest.get("dump_sha256") != sha256:
        raise BackupError("The decrypted dump does not match the size and SHA-256 in the manifest.", stage="checksum")


def _verify_sqlite(
    reader: BackupReader, result: VerificationResult, *, private: Path, progress: ProgressCallback | None
) -> None:
    scratch = private / "restore.sqlite3"
    with _open_private(scratch) as handle:
        size, sha256 = _decrypt_to(reader, handle.write, file_bytes=result.file_bytes, progress=progress)
    manifest = reader.manifest
    result.manifest = manifest
    _check_dump(manifest, size, sha256)
    try:
        database = sqlite3.connect(f"{scratch.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise BackupError(f"The restored SQLite file does not open: {error}.", stage="restore") from None
    try:
        try:
            (check,) = database.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise BackupError(f"The restored SQLite file fails its integrity check: {check}.", stage="restore")
            restored = _sqlite_tables(database)
        except sqlite3.DatabaseError as error:
            raise BackupError(f"The restored SQLite file is not a usable database: {error}.", stage="restore") from None
        result.rows_checked = _check_row_counts(manifest, restored)
        result.tables_checked = len(restored)

        def fetch(table: str, columns: list[str], limit: int) -> list[tuple]:
            quoted = ", ".join('"' + column.replace('"', '""') + '"' for column in columns)
            where = " OR ".join('"' + column.replace('"', '""') + '" IS NOT NULL' for column in columns)
            name = '"' + table.replace('"', '""') + '"'
            return database.execute(
                f"SELECT {quoted} FROM {name} WHERE {where} ORDER BY random() LIMIT ?",  # noqa: S608 - quoted names
                [limit],
            ).fetchall()

        _emit(progress, "check", 0, None)
        _check_encrypted_values(fetch, set(restored), result)
    finally:
        database.close()


def _verify_postgresql(
    reader: BackupReader, result: VerificationResult, *, using: str, private: Path, progress: ProgressCallback | None
) -> None:
    from psycopg import sql

    server = _verify_server_settings(using)
    pg_restore = _pg_program("pg_restore")
    scratch_name = f"nv_verify_{timezone.now():%Y%m%d%H%M%S}_{secrets.token_hex(4)}"
    maintenance = server["NAME"] or "postgres"
    try:
        with _pg_connect(server, dbname=maintenance) as admin:
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
        environment = _pg_environment(server, dbname=scratch_name, private=private)
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
                size, sha256 = _decrypt_to(reader, sink, file_bytes=result.file_bytes, progress=progress)
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
                returncode = process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        manifest = reader.manifest
        result.manifest = manifest
        _check_dump(manifest, size, sha256)
        if returncode != 0:
            raise BackupError(
                f"pg_restore failed (exit status {returncode}): {_last_lines(stderr_path)}", stage="restore"
            )
        _emit(progress, "check", 0, None)
        with _pg_connect(server, dbname=scratch_name) as restored_database:
            restored = _pg_tables(restored_database)
            result.rows_checked = _check_row_counts(manifest, restored)
            result.tables_checked = len(restored)

            def fetch(table: str, columns: list[str], limit: int) -> list[tuple]:
                statement = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY random() LIMIT %s").format(
                    sql.SQL(", ").join(sql.Identifier(column) for column in columns),
                    sql.Identifier(table),
                    sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns),
                )
                return restored_database.execute(statement, [limit]).fetchall()

            _check_encrypted_values(fetch, set(restored), result)
    finally:
        try:
            with _pg_connect(server, dbname=maintenance) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch_name)))
        except Exception:
            logger.exception("could not drop the scratch database %s of a backup verification", scratch_name)


# =============================================================================================
# Services
# =============================================================================================
def _record(*, action: Action, outcome: Outcome, actor, path: Path, context: dict) -> None:
    """Record a backup event, its target the backup file (by name: no machine path in events)."""
    record(
        action=action,
        outcome=outcome,
        actor=actor,
        target=Target(type="encryption.backup", id=path.name[:64], repr=path.name),
        context=context,
    )


def _failure(error: BaseException, *, operation: str, actor, path: Path) -> BackupError:
    """Turn any failure into a ``BackupError`` and record ``BACKUP_FAILED`` (outside any transaction)."""
    if not isinstance(error, BackupError):
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        error = BackupError(f"{type(error).__name__}: {detail}"[:600], stage="unexpected")
    try:
        _record(
            action=Action.BACKUP_FAILED,
            outcome=Outcome.FAILURE,
            actor=actor,
            path=path,
            context={"operation": operation, "file": path.name, "stage": error.stage, "reason": str(error)},
        )
    except Exception:
        logger.exception("could not record the audit event of a failed backup %s", operation)
    logger.error("backup %s failed for %s: %s", operation, path.name, error)
    return error


def backup_create(
    *,
    output: str | os.PathLike,
    actor=None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    using: str = DEFAULT_DB_ALIAS,
) -> BackupResult:
    """Write an encrypted backup of the database to ``output``; record ``BACKUP_CREATED``.

    The file appears only when complete (written beside it under a temporary name, synced, then
    renamed): a failed backup leaves no partial file and never replaces an existing one. An
    existing ``output`` is refused unless ``overwrite``. Raises ``BackupError`` (and records
    ``BACKUP_FAILED``) on any failure. Call it outside a transaction: only committed data is
    backed up.

    Permission: the caller has checked it (an operator at the shell, or the scheduled task).
    """
    path = Path(output)
    started = time.monotonic()
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        if path.exists() and not overwrite:
            raise BackupError(
                f"{path.name} already exists; choose another name (or overwrite it explicitly).", stage="output"
            )
        if not path.parent.is_dir():
            raise BackupError(f"The folder for {path.name} does not exist.", stage="output")
        connection = connections[using]
        vendor = connection.vendor
        if vendor not in ("sqlite", "postgresql"):
            raise BackupError(f"Backups support SQLite and PostgreSQL, not {vendor}.", stage="dump")
        try:
            key = get_key_ring("backup").primary
        except KeyConfigurationError as error:
            raise BackupError(f"No backup key: {error}", stage="key") from None
        with _private_directory("ninaivalaigal-backup-") as private, _open_private(partial) as handle:
            writer = BackupWriter(handle, key=key, database=vendor)
            dump = (_dump_sqlite if vendor == "sqlite" else _dump_postgresql)(
                writer, using=using, private=private, progress=progress
            )
            manifest = writer.finish(
                {
                    **dump,
                    "finished_at": timezone.now().isoformat(),
                    "encrypted_columns": _encrypted_columns(),
                    "migrations": _latest_migrations(using),
                    "django_version": _django_version(),
                }
            )
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(partial, path)
        else:
            os.link(partial, path)  # fails if the name was taken meanwhile: nothing is replaced
            partial.unlink()
        _fsync_directory(path.parent)
    except BaseException as error:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        raise _failure(error, operation="create", actor=actor, path=path) from None
    result = BackupResult(
        path=path, manifest=manifest, file_bytes=path.stat().st_size, seconds=time.monotonic() - started
    )
    _record(action=Action.BACKUP_CREATED, outcome=Outcome.SUCCESS, actor=actor, path=path, context=result.summary())
    logger.info(
        "backup written: %s (%d bytes of dump, %d tables)", path.name, result.dump_bytes, len(manifest["tables"])
    )
    return result


def _django_version() -> str:
    import django

    return django.get_version()


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def backup_verify(
    *,
    path: str | os.PathLike,
    actor=None,
    progress: ProgressCallback | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> VerificationResult:
    """Decrypt ``path``, restore it into a scratch database and check it; record the outcome.

    Checks, in order: the header and the backup key; every chunk's authentication, their order
    and the final chunk (no truncation, nothing appended); the dump's size and SHA-256 against
    the manifest; the restore itself; every table's row count against the manifest; a random
    sample of every encrypted column decrypts with the field key ring. Records
    ``BACKUP_VERIFIED``, or ``BACKUP_FAILED`` and raises ``BackupError`` with a message saying
    what is wrong. Nothing but the scratch copy (removed afterwards) is written.

    Permission: the caller has checked it (an operator at the shell, or the scheduled task).
    """
    path = Path(path)
    started = time.monotonic()
    try:
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below, after the reader is done
        except FileNotFoundError:
            raise BackupError(f"{path.name} does not exist.", stage="open") from None
        except OSError as error:
            raise BackupError(f"{path.name} cannot be read: {error.strerror}.", stage="open") from None
        with stream:
            file_bytes = os.fstat(stream.fileno()).st_size
            reader = BackupReader(stream, name=path.name)
            result = VerificationResult(path=path, manifest={}, file_bytes=file_bytes, seconds=0.0)
            with _private_directory("ninaivalaigal-verify-") as private:
                if reader.database == "sqlite":
                    _verify_sqlite(reader, result, private=private, progress=progress)
                elif reader.database == "postgresql":
                    if connections[using].vendor != "postgresql":
                        raise BackupError(
                            f"{path.name} is a PostgreSQL backup; verify it with DATABASE_URL pointing at a "
                            "PostgreSQL server (a scratch database is created there).",
                            stage="restore",
                        )
                    _verify_postgresql(reader, result, using=using, private=private, progress=progress)
                else:
                    raise BackupError(f"{path.name} names an unknown database kind.", stage="header")
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        raise _failure(error, operation="verify", actor=actor, path=path) from None
    result.seconds = time.monotonic() - started
    _record(action=Action.BACKUP_VERIFIED, outcome=Outcome.SUCCESS, actor=actor, path=path, context=result.summary())
    logger.info("backup verified: %s (%d tables, %d rows)", path.name, result.tables_checked, result.rows_checked)
    return result


# --- The daily job ---------------------------------------------------------------------------
BACKUP_NAME_PREFIX = "backup-"


def backup_directory() -> Path:
    """Where the scheduled backups go: ``ENCRYPTION_BACKUP_DIR``, else ``VAR_DIR/backups``."""
    configured = conf.get("ENCRYPTION_BACKUP_DIR") or ""
    return Path(configured) if configured else Path(settings.VAR_DIR) / "backups"


def backup_prune(*, directory: Path, keep: int) -> list[Path]:
    """Delete the oldest ``backup-*.nvbak`` files of ``directory`` beyond the newest ``keep``.

    Names carry a UTC timestamp, so name order is age order. Failed backups were renamed
    ``*.failed`` and are left for an operator; other files are never touched.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1.")
    backups = sorted(p for p in directory.glob(f"{BACKUP_NAME_PREFIX}*{FILE_SUFFIX}") if p.is_file())
    removed = []
    for old in backups[:-keep]:
        old.unlink()
        removed.append(old)
        logger.info("backup pruned (retention %d): %s", keep, old.name)
    return removed


def backup_create_and_verify(*, directory: Path | None = None, keep: int | None = None, actor=None) -> dict:
    """The daily job: a new backup in ``directory``, verified, then old ones pruned to ``keep``.

    Each step records its own audit event. A backup that fails verification is renamed
    ``<name>.failed`` (kept for inspection, never counted as a good backup) and nothing is pruned,
    so a bad night never costs a good old backup. Raises ``BackupError`` on failure.
    """
    directory = directory or backup_directory()
    keep = keep if keep is not None else conf.get("ENCRYPTION_BACKUP_KEEP")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    vendor = connections[DEFAULT_DB_ALIAS].vendor
    name = f"{BACKUP_NAME_PREFIX}{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%S%fZ}-{vendor}{FILE_SUFFIX}"
    created = backup_create(output=directory / name, actor=actor)
    try:
        verified = backup_verify(path=created.path, actor=actor)
    except BackupError:
        with contextlib.suppress(OSError):
            created.path.rename(created.path.with_name(created.path.name + ".failed"))
        raise
    pruned = backup_prune(directory=directory, keep=keep)
    return {**verified.summary(), "pruned": [path.name for path in pruned]}
