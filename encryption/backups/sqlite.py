"""SQLite backups: a copy through the online backup API, verified by opening the restored file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from django.db import connections

from encryption.backups.file_format import BackupError, BackupReader, BackupWriter, VerificationResult
from encryption.backups.private_files import open_private
from encryption.backups.progress import ProgressCallback, emit
from encryption.backups.verification import check_dump, check_encrypted_values, check_row_counts, decrypt_to


def table_row_counts(database: sqlite3.Connection) -> dict[str, int]:
    """The row count of every table of ``database``, by table name."""
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


def dump(writer: BackupWriter, *, using: str, private: Path, progress: ProgressCallback | None) -> dict:
    """Snapshot the database into ``private`` and stream it into ``writer``; return the manifest part."""
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
            tables = table_row_counts(target)
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
            emit(progress, "encrypt", len(chunk), total)
    return {
        "database": {"vendor": "sqlite", "server_version": server_version, "dump_format": "sqlite3-database-file"},
        "tables": tables,
    }


def verify(
    reader: BackupReader, result: VerificationResult, *, private: Path, progress: ProgressCallback | None
) -> None:
    """Decrypt into a scratch file in ``private``, then check it; fill in ``result``."""
    scratch = private / "restore.sqlite3"
    with open_private(scratch) as handle:
        size, sha256 = decrypt_to(reader, handle.write, file_bytes=result.file_bytes, progress=progress)
    manifest = reader.manifest
    result.manifest = manifest
    check_dump(manifest, size, sha256)
    try:
        database = sqlite3.connect(f"{scratch.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise BackupError(f"The restored SQLite file does not open: {error}.", stage="restore") from None
    try:
        try:
            (check,) = database.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise BackupError(f"The restored SQLite file fails its integrity check: {check}.", stage="restore")
            restored = table_row_counts(database)
        except sqlite3.DatabaseError as error:
            raise BackupError(f"The restored SQLite file is not a usable database: {error}.", stage="restore") from None
        result.rows_checked = check_row_counts(manifest, restored)
        result.tables_checked = len(restored)

        def fetch(table: str, columns: list[str], limit: int) -> list[tuple]:
            quoted = ", ".join('"' + column.replace('"', '""') + '"' for column in columns)
            where = " OR ".join('"' + column.replace('"', '""') + '" IS NOT NULL' for column in columns)
            name = '"' + table.replace('"', '""') + '"'
            return database.execute(
                f"SELECT {quoted} FROM {name} WHERE {where} ORDER BY random() LIMIT ?",  # noqa: S608 - quoted names
                [limit],
            ).fetchall()

        emit(progress, "check", 0, None)
        check_encrypted_values(fetch, set(restored), result)
    finally:
        database.close()
