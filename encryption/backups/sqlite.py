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
    _check_restored_file(scratch, manifest, result, progress=progress)


def target_table_count(path: Path) -> int:
    """Tables in the SQLite file ``path`` (0 for a missing or empty file); ``BackupError`` if unreadable."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        database = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            (count,) = database.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchone()
        finally:
            database.close()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"The target {path.name} is not a SQLite database ({error}).", stage="target") from None
    return int(count)


def file_sha256(path: Path) -> tuple[int, str]:
    """The size and SHA-256 of a file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def restore(
    reader: BackupReader, result: VerificationResult, *, target: Path, progress: ProgressCallback | None
) -> None:
    """Decrypt into a private file beside ``target``, check it, then move it into place; fill in ``result``.

    The file appears under ``target``'s name only once it is complete and checked (size, SHA-256,
    integrity, row counts): a failed restore leaves ``target`` as it was. A replaced database's
    ``-wal`` and ``-shm`` files go with it (they belong to the old file and would corrupt the new).
    """
    import contextlib
    import os
    import secrets

    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.restoring")
    try:
        with open_private(partial) as handle:
            size, sha256 = decrypt_to(reader, handle.write, file_bytes=result.file_bytes, progress=progress)
            handle.flush()
            os.fsync(handle.fileno())
        manifest = reader.manifest
        result.manifest = manifest
        check_dump(manifest, size, sha256)
        emit(progress, "check", 0, None)
        _check_restored_file(partial, manifest, result)
        for suffix in ("-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{target}{suffix}")
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    # After: the file in place is byte for byte the dump the manifest describes.
    size, sha256 = file_sha256(target)
    if manifest.get("dump_bytes") != size or manifest.get("dump_sha256") != sha256:
        raise BackupError(
            f"The restored {target.name} does not match the backup's SHA-256 (changed while restoring?).",
            stage="after-restore",
        )
    _check_restored_file(target, manifest, result)


def _check_restored_file(path: Path, manifest: dict, result: VerificationResult, *, progress=None) -> None:
    """The restored file opens, passes ``quick_check``, holds the manifest's rows, and decrypts."""
    try:
        database = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
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

        result.values_decrypted.clear()
        result.models_absent.clear()
        emit(progress, "check", 0, None)
        check_encrypted_values(fetch, set(restored), result)
    finally:
        database.close()
