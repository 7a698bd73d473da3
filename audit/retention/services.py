"""The archive run: archive, verify and purge every sealed event past retention, batch by batch.

``audit_events_archive`` is the service ``manage.py audit_archive`` and the daily task call. One
archiver runs at a time; each batch is written, read back and checked, and only then purged in a
transaction that records ``AUDIT_ARCHIVED`` and ``AUDIT_PURGED``. Safe to run twice. Why:
docs/decisions/audit-retention.md.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit import conf
from audit.actions import Action, Outcome
from audit.heads import audit_dir
from audit.retention.archive import ARCHIVE_FIELDS, ArchiveFile, verify_archive, write_archive
from audit.retention.purge import past_retention, purge_archived
from audit.sealing import seal_pending
from audit.services import record

# PostgreSQL advisory lock id of the archiver (an arbitrary constant, "audit archive").
ARCHIVE_ADVISORY_LOCK_ID = 0x61756474_61726368 & 0x7FFFFFFFFFFFFFFF


class ArchiveBusy(Exception):
    """Another archiver is running."""


@dataclass
class ArchiveResult:
    """What an archive run did (a dry run only counts ``eligible``)."""

    eligible: int = 0
    archived: int = 0
    purged: int = 0
    dry_run: bool = False
    files: list[ArchiveFile] = field(default_factory=list)
    anchor_sequence: int = 0


@contextlib.contextmanager
def archive_lock():
    """One archiver at a time: a PostgreSQL advisory lock, or a file lock on one machine."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ARCHIVE_ADVISORY_LOCK_ID])
            if not cursor.fetchone()[0]:
                raise ArchiveBusy("another audit_archive run holds the lock")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ARCHIVE_ADVISORY_LOCK_ID])
        return
    import fcntl

    directory = audit_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / "archive.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveBusy("another audit_archive run holds the lock") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _purge_and_record(rows: list[dict[str, Any]], archive: ArchiveFile) -> int:
    """Purge the rows of a verified archive and record it, in one transaction; return rows deleted."""
    with transaction.atomic():
        purged = purge_archived(rows, archive)
        summary = {
            "archive_file": archive.path.name,
            "archive_sha256": archive.sha256,
            "count": archive.count,
            "first_sequence": archive.first_sequence,
            "last_sequence": archive.last_sequence,
        }
        record(action=Action.AUDIT_ARCHIVED, outcome=Outcome.SUCCESS, context=summary)
        record(
            action=Action.AUDIT_PURGED,
            outcome=Outcome.SUCCESS,
            context={**summary, "anchor_sequence": purged.anchor_sequence},
        )
    return purged.deleted


def archive_past_retention(
    *,
    now: datetime.datetime | None = None,
    batch_size: int | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ArchiveResult:
    """Archive, verify and purge every sealed event past retention, ``batch_size`` per archive.

    Raises ``ArchiveBusy`` if another archiver runs, ``ArchiveError`` if a batch does not read
    back exactly (that batch is not purged; earlier ones stay purged).
    """
    from audit.models import ChainHead

    now = now or timezone.now()
    batch_size = batch_size or conf.get("AUDIT_ARCHIVE_BATCH_SIZE")
    result = ArchiveResult(dry_run=dry_run)
    result.eligible = past_retention(now).count()
    if on_start is not None:
        on_start(result.eligible)
    if dry_run or not result.eligible:
        return result
    with archive_lock():
        while True:
            rows = list(past_retention(now).order_by("sequence").values(*ARCHIVE_FIELDS)[:batch_size])
            if not rows:
                break
            archive = write_archive(rows)
            verify_archive(archive.manifest_path, expected=rows)
            result.purged += _purge_and_record(rows, archive)
            result.archived += archive.count
            result.files.append(archive)
            if progress is not None:
                progress(archive.count)
    result.anchor_sequence = ChainHead.objects.filter(pk=1).values_list("anchor_sequence", flat=True).first() or 0
    return result


def audit_events_archive(
    *,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ArchiveResult:
    """Seal what is pending, then archive, verify and purge events past retention; idempotent.

    Called by ``manage.py audit_archive`` and ``audit.tasks.audit_archive``; permission is the
    caller's (both run with operator rights). Each purged batch records ``AUDIT_ARCHIVED`` and
    ``AUDIT_PURGED`` in its own transaction.
    """
    seal_pending()
    return archive_past_retention(dry_run=dry_run, batch_size=batch_size, progress=progress, on_start=on_start)
