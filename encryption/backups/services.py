"""The backup services: create, verify, prune and the daily job, each recording its audit event.

Events: ``system.backup_created``, ``system.backup_verified`` and ``system.backup_failed``
(OWASP ASVS 4.0.3 V7.1.3), with sizes, counts, the checksum and the key id, never key material.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import secrets
import time
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from audit.actions import Action, Outcome
from audit.services import Target, record
from encryption import conf
from encryption.backups import postgresql, sqlite
from encryption.backups.file_format import (
    FILE_SUFFIX,
    BackupError,
    BackupReader,
    BackupResult,
    BackupWriter,
    VerificationResult,
    backup_directory,
)
from encryption.backups.private_files import open_private, private_directory, scratch_leftovers_remove
from encryption.backups.progress import ProgressCallback
from encryption.errors import KeyConfigurationError
from encryption.keyring import get_key_ring

# One logger for the package: its lines name ``encryption.backups`` whichever module writes them.
logger = logging.getLogger("encryption.backups")

BACKUP_NAME_PREFIX = "backup-"


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


def scratch_cleanup(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Remove what runs killed earlier left in the scratch folder (and their scratch databases).

    Every backup, verification and restore calls it first, so decrypted data of a ``kill -9``ed
    run lives only until the next run. Never raises: a failure is logged and retried next time.
    """
    try:
        return scratch_leftovers_remove(drop_database=lambda name: postgresql.drop_scratch_database(name, using=using))
    except Exception:
        logger.exception("could not clean the scratch folder of earlier backup runs")
        return []


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
    scratch_cleanup(using=using)
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
        from encryption.selectors import backup_depends_on

        depends_on = backup_depends_on()
        with private_directory("ninaivalaigal-backup-") as private, open_private(partial) as handle:
            writer = BackupWriter(handle, key=key, database=vendor, depends_on=depends_on)
            backend = sqlite if vendor == "sqlite" else postgresql
            dump = backend.dump(writer, using=using, private=private, progress=progress)
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
    """Django's version, for the manifest."""
    import django

    return django.get_version()


def _latest_migrations(using: str) -> dict[str, str]:
    """The latest applied migration of every app, for the manifest (empty if none can be read)."""
    from django.db.migrations.recorder import MigrationRecorder

    latest: dict[str, str] = {}
    with contextlib.suppress(Exception):
        for app, name in (
            MigrationRecorder(connections[using]).migration_qs.order_by("app", "name").values_list("app", "name")
        ):
            latest[app] = name
    return latest


def _encrypted_columns() -> dict[str, dict]:
    """The table and encrypted columns of every model that has some, for the manifest."""
    from encryption.selectors import encrypted_model_list

    return {
        item.label: {"table": item.model._meta.db_table, "columns": [f.column for f in item.encrypted_fields]}
        for item in encrypted_model_list()
        if item.encrypted_fields
    }


def _fsync_directory(directory: Path) -> None:
    """Sync ``directory`` so the new name of the backup survives a crash (best effort)."""
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
    scratch_cleanup(using=using)
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
            with private_directory("ninaivalaigal-verify-") as private:
                if reader.database == "sqlite":
                    sqlite.verify(reader, result, private=private, progress=progress)
                elif reader.database == "postgresql":
                    if connections[using].vendor != "postgresql":
                        raise BackupError(
                            f"{path.name} is a PostgreSQL backup; verify it with DATABASE_URL pointing at a "
                            "PostgreSQL server (a scratch database is created there).",
                            stage="restore",
                        )
                    postgresql.verify(reader, result, using=using, private=private, progress=progress)
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


def _authenticate(path: Path, *, progress: ProgressCallback | None) -> tuple[str, dict, int]:
    """Read ``path`` to its end once, writing nothing: every chunk, the manifest, size and SHA-256.

    Returns the database kind, the manifest and the file's size. The check before a restore:
    a damaged, truncated or wrong-key file is refused before the target is touched.
    """
    from encryption.backups.verification import check_dump, decrypt_to

    stream = _open_backup(path)
    with stream:
        file_bytes = os.fstat(stream.fileno()).st_size
        reader = BackupReader(stream, name=path.name)
        size, sha256 = decrypt_to(
            reader,
            lambda chunk: None,
            file_bytes=file_bytes,
            progress=(lambda stage, done, total: progress("authenticate", done, total)) if progress else None,
        )
        check_dump(reader.manifest, size, sha256)
        return reader.database, reader.manifest, file_bytes


def _open_backup(path: Path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise BackupError(f"{path.name} does not exist.", stage="open") from None
    except IsADirectoryError:
        raise BackupError(f"{path.name} is a folder, not a backup file.", stage="open") from None
    except OSError as error:
        raise BackupError(f"{path.name} cannot be read: {error.strerror}.", stage="open") from None


def backup_restore(
    *,
    path: str | os.PathLike,
    database_url: str | None = None,
    sqlite_file: str | os.PathLike | None = None,
    force: bool = False,
    actor=None,
    progress: ProgressCallback | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> VerificationResult:
    """Restore the backup ``path`` into a new, empty database; verify it before and after.

    The target: for a SQLite backup the file ``sqlite_file`` (default: the configured SQLite
    database's file); for a PostgreSQL backup the database of ``database_url`` (default: the
    configured PostgreSQL database). A target that already holds tables is refused unless
    ``force``. Before anything is written, the whole file is authenticated and its dump checked
    against the manifest; after the restore, the target's row counts per table and the content
    digests the backup records (the file's SHA-256 for SQLite, per-table digests for PostgreSQL)
    are compared with the manifest and a sample of every encrypted column is decrypted. A failed
    restore leaves the target as it was (SQLite: moved into place only once checked; PostgreSQL:
    one transaction). Records ``BACKUP_RESTORED`` or ``BACKUP_FAILED`` (operation ``restore``) on
    the configured database; raises ``BackupError`` with a message for the operator.

    Stop every web, worker and beat process that uses the target first. Permission: the caller
    has checked it (an operator at the shell).
    """
    path = Path(path)
    started = time.monotonic()
    scratch_cleanup(using=using)
    restoring = None
    if progress is not None:

        def restoring(stage: str, done: int, total: int | None) -> None:
            progress("restore" if stage == "decrypt" else stage, done, total)

    try:
        vendor, _manifest, file_bytes = _authenticate(path, progress=progress)
        result = VerificationResult(path=path, manifest={}, file_bytes=file_bytes, seconds=0.0)
        if vendor == "sqlite":
            if database_url:
                raise BackupError(
                    f"{path.name} is a SQLite backup: it restores into a file (--sqlite-file), not a database URL.",
                    stage="target",
                )
            target = _sqlite_target(sqlite_file, using=using)
            tables = sqlite.target_table_count(target)
            if tables and not force:
                raise BackupError(
                    f"The target {target.name} is not empty ({tables} tables): restore into a new file, or pass "
                    "--force to replace it.",
                    stage="target",
                )
            result.target = f"sqlite file {target.name}"
            if connections[using].vendor == "sqlite" and _same_file(connections[using].settings_dict["NAME"], target):
                connections[using].close()  # its file is about to be replaced
            with open(path, "rb") as stream:
                reader = BackupReader(stream, name=path.name)
                sqlite.restore(reader, result, target=target, progress=restoring)
        elif vendor == "postgresql":
            if sqlite_file:
                raise BackupError(
                    f"{path.name} is a PostgreSQL backup: it restores into a database (--database-url), not a file.",
                    stage="target",
                )
            server = postgresql.target_server(database_url, using=using)
            result.target = postgresql.describe_target(server)
            tables = postgresql.target_table_count(server)
            if tables and not force:
                raise BackupError(
                    f"The target {result.target} is not empty ({tables} tables, sequences or views): restore into "
                    "a new, empty database, or pass --force to replace the backup's tables in it.",
                    stage="target",
                )
            with private_directory("ninaivalaigal-restore-") as private, open(path, "rb") as stream:
                reader = BackupReader(stream, name=path.name)
                postgresql.restore(
                    reader, result, server=server, replace=bool(tables), private=private, progress=restoring
                )
        else:
            raise BackupError(f"{path.name} names an unknown database kind.", stage="header")
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        raise _failure(error, operation="restore", actor=actor, path=path) from None
    result.seconds = time.monotonic() - started
    try:
        _record(
            action=Action.BACKUP_RESTORED,
            outcome=Outcome.SUCCESS,
            actor=actor,
            path=path,
            context={**result.summary(), "target": result.target, "digests_checked": result.digests_checked},
        )
    except Exception:
        # The restore is done and checked; an audit table that is not there (a target other than
        # the configured database, itself still empty) must not make it look failed.
        logger.exception("could not record the audit event of a restore")
    logger.info(
        "backup restored: %s into %s (%d tables, %d rows)",
        path.name,
        result.target,
        result.tables_checked,
        result.rows_checked,
    )
    return result


def _sqlite_target(sqlite_file, *, using: str) -> Path:
    if sqlite_file:
        target = Path(sqlite_file)
    elif connections[using].vendor == "sqlite":
        name = str(connections[using].settings_dict["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise BackupError("The configured SQLite database is in memory: give --sqlite-file.", stage="target")
        target = Path(name)
    else:
        raise BackupError(
            "This is a SQLite backup and the configured database is not SQLite: give --sqlite-file.", stage="target"
        )
    if target.is_dir():
        raise BackupError(f"The target {target.name} is a folder; give the database file's path.", stage="target")
    if not target.parent.is_dir():
        raise BackupError(f"The folder for the target {target.name} does not exist.", stage="target")
    return target


def _same_file(name, target: Path) -> bool:
    try:
        return Path(str(name)).resolve() == target.resolve()
    except OSError:
        return False


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
