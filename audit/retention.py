"""Retention: archive events past their retention period, verify the archive, then purge them.

OWASP ASVS 4.0.3 V8.3.8 (retention). Each action keeps its events for
``AUDIT_RETENTION_OVERRIDES.get(action, AUDIT_RETENTION_DAYS)`` days. A run:

1. takes the archive lock (one archiver at a time: a PostgreSQL advisory lock, or a file lock
   on the embedded default);
2. selects up to ``AUDIT_ARCHIVE_BATCH_SIZE`` sealed events past retention, in sequence order;
3. writes them as gzip JSON Lines to ``<AUDIT_DIR>/archive/audit-<first>-<last>-<time>.jsonl.gz``
   with a manifest (count, first/last sequence and hash, the sequence ranges, the file's SHA-256,
   a MAC over all of it);
4. reads the file back and checks every line against its MACs, the chain links inside it, the
   manifest and the rows it is about to delete — and only then
5. purges them in one transaction: a tombstone per event (sequence, previous hash, hash, MAC),
   the rows deleted with the PostgreSQL trigger's purge switch on for that transaction only,
   tombstones that now continue the anchor folded into it (so after a normal purge no tombstone
   remains), and ``AUDIT_ARCHIVED``/``AUDIT_PURGED`` events recorded in the same transaction.

The chain stays verifiable: verification starts from the authenticated anchor and walks over
tombstones of events purged from between kept ones (per-action retention leaves such holes).

Running twice does nothing the second time (nothing is left past retention); a run interrupted
before step 5 leaves an archive whose events are still in the database and will be archived
again — harmless duplicates, both manifests say what they hold.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.actions import Action, Outcome
from audit.chain import (
    CONTENT_FIELDS,
    anchor_mac,
    chain_key,
    content_mac,
    link_hash,
    macs_equal,
    manifest_mac,
    tombstone_mac,
)
from audit.heads import audit_dir

ARCHIVE_FORMAT = "audit-archive/v1"
ARCHIVE_FIELDS = ("id", "sequence", "previous_hash", "hash", "content_mac", *CONTENT_FIELDS)
# PostgreSQL advisory lock id of the archiver (an arbitrary constant, "audit archive").
ARCHIVE_ADVISORY_LOCK_ID = 0x61756474_61726368 & 0x7FFFFFFFFFFFFFFF


class ArchiveError(Exception):
    """The archive could not be written or did not read back exactly; nothing was purged."""


class ArchiveBusy(Exception):
    """Another archiver is running."""


@dataclass
class ArchiveFile:
    path: Path
    manifest_path: Path
    count: int
    first_sequence: int
    last_sequence: int
    sha256: str


@dataclass
class ArchiveResult:
    eligible: int = 0
    archived: int = 0
    purged: int = 0
    dry_run: bool = False
    files: list[ArchiveFile] = field(default_factory=list)
    anchor_sequence: int = 0


def archive_dir() -> Path:
    return audit_dir() / "archive"


def retention_days(action: str) -> int:
    """Days the events of ``action`` are kept (``AUDIT_RETENTION_OVERRIDES`` or the default)."""
    return int(settings.AUDIT_RETENTION_OVERRIDES.get(action, settings.AUDIT_RETENTION_DAYS))


def past_retention(now: datetime.datetime | None = None):
    """Sealed events older than their action's retention period."""
    from audit.models import AuditEvent

    now = now or timezone.now()
    overrides = {str(action): int(days) for action, days in settings.AUDIT_RETENTION_OVERRIDES.items()}
    condition = Q(timestamp__lt=now - datetime.timedelta(days=settings.AUDIT_RETENTION_DAYS)) & ~Q(
        action__in=list(overrides)
    )
    for action, days in overrides.items():
        condition |= Q(action=action, timestamp__lt=now - datetime.timedelta(days=days))
    return AuditEvent.objects.sealed().filter(condition)


# --- The archive file: the seam for encryption ------------------------------------------------


def open_archive_writer(path: Path) -> IO[bytes]:
    """Open an archive for writing. The one place archives are written.

    Seam for the encryption app: once the key ring offers a streaming AEAD for the
    ``audit-archive`` purpose, wrap the gzip stream here (and the reader below) and record the
    key id in the manifest; nothing else changes.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return gzip.GzipFile(fileobj=os.fdopen(descriptor, "wb"), mode="wb", compresslevel=6)


def open_archive_reader(path: Path) -> IO[bytes]:
    """Open an archive for reading (the counterpart of ``open_archive_writer``)."""
    return gzip.open(path, "rb")


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    document = dict(row)
    document["uuid"] = str(document["uuid"])
    document["timestamp"] = document["timestamp"].astimezone(datetime.UTC).isoformat(timespec="microseconds")
    return document


def _ranges(sequences: list[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for sequence in sequences:
        if ranges and sequence == ranges[-1][1] + 1:
            ranges[-1][1] = sequence
        else:
            ranges.append([sequence, sequence])
    return ranges


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_archive(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the events of an archive file, one dict per line."""
    with open_archive_reader(path) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def write_archive(rows: list[dict[str, Any]], *, directory: Path | None = None) -> ArchiveFile:
    """Write ``rows`` (in sequence order) and their manifest; return what was written."""
    directory = directory or archive_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created_at = timezone.now()
    first, last = rows[0], rows[-1]
    name = f"audit-{first['sequence']:012d}-{last['sequence']:012d}-{created_at:%Y%m%dT%H%M%S%fZ}.jsonl.gz"
    path = directory / name
    with open_archive_writer(path) as handle:
        for row in rows:
            handle.write(json.dumps(_jsonable(row), sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n")
    manifest = {
        "format": ARCHIVE_FORMAT,
        "file": name,
        "sha256": _file_sha256(path),
        "count": len(rows),
        "first_sequence": first["sequence"],
        "last_sequence": last["sequence"],
        "first_previous_hash": first["previous_hash"],
        "first_hash": first["hash"],
        "last_hash": last["hash"],
        "sequence_ranges": _ranges([row["sequence"] for row in rows]),
        "created_at": created_at.isoformat(),
        "retention_days": settings.AUDIT_RETENTION_DAYS,
        "retention_overrides": dict(settings.AUDIT_RETENTION_OVERRIDES),
        "encryption": None,
    }
    manifest["mac"] = manifest_mac(manifest)
    manifest_path = directory / (name + ".manifest.json")
    descriptor = os.open(manifest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return ArchiveFile(
        path=path,
        manifest_path=manifest_path,
        count=len(rows),
        first_sequence=first["sequence"],
        last_sequence=last["sequence"],
        sha256=manifest["sha256"],
    )


def verify_archive(manifest_path: Path, *, expected: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Read an archive back and check it against its manifest, its MACs and ``expected`` rows.

    Raises ``ArchiveError`` naming the first discrepancy; returns the manifest when all holds.
    """
    key = chain_key()
    manifest = json.loads(Path(manifest_path).read_text())
    if not macs_equal(manifest_mac(manifest, key=key), manifest.get("mac")):
        raise ArchiveError(f"{manifest_path.name}: the manifest is not authentic")
    path = Path(manifest_path).parent / manifest["file"]
    if _file_sha256(path) != manifest["sha256"]:
        raise ArchiveError(f"{path.name}: SHA-256 differs from the manifest")
    sequences: list[int] = []
    previous_sequence, previous_hash = None, None
    expected_by_id = {row["id"]: row["hash"] for row in expected} if expected is not None else None
    seen_ids = set()
    for line in read_archive(path):
        sequence = line["sequence"]
        if not macs_equal(content_mac(line, key=key), line["content_mac"]):
            raise ArchiveError(f"{path.name}: event #{sequence} does not match its content MAC")
        recomputed = link_hash(
            sequence=sequence, previous_hash=line["previous_hash"], content_mac_value=line["content_mac"], key=key
        )
        if not macs_equal(recomputed, line["hash"]):
            raise ArchiveError(f"{path.name}: event #{sequence} does not match its chain hash")
        follows = previous_sequence is not None and sequence == previous_sequence + 1
        if follows and line["previous_hash"] != previous_hash:
            raise ArchiveError(f"{path.name}: event #{sequence} does not follow #{previous_sequence}")
        if previous_sequence is not None and sequence <= previous_sequence:
            raise ArchiveError(f"{path.name}: event #{sequence} is out of order")
        if expected_by_id is not None and expected_by_id.get(line["id"]) != line["hash"]:
            raise ArchiveError(f"{path.name}: event #{sequence} is not the row about to be purged")
        seen_ids.add(line["id"])
        sequences.append(sequence)
        previous_sequence, previous_hash = sequence, line["hash"]
    if len(sequences) != manifest["count"]:
        raise ArchiveError(f"{path.name}: {len(sequences)} events, the manifest says {manifest['count']}")
    if _ranges(sequences) != manifest["sequence_ranges"]:
        raise ArchiveError(f"{path.name}: the sequence numbers differ from the manifest")
    if expected_by_id is not None and seen_ids != set(expected_by_id):
        raise ArchiveError(f"{path.name}: the archive does not hold exactly the rows about to be purged")
    return manifest


# --- Purge ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _purge_switch():
    """Let the PostgreSQL trigger accept DELETE for the current transaction only."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.allow_purge', 'on', true)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('audit.allow_purge', 'off', true)")


def _fold_tombstones(head, key: bytes) -> None:
    """Fold tombstones that continue the anchor into it, checking each as it goes."""
    from audit.models import AuditTombstone

    anchor_sequence, anchor_hash = head.anchor_sequence, head.anchor_hash
    while True:
        batch = list(
            AuditTombstone.objects.filter(sequence__gt=anchor_sequence)
            .order_by("sequence")
            .values_list("sequence", "previous_hash", "hash", "mac")[:5000]
        )
        folded = 0
        for sequence, previous_hash, hash_value, mac in batch:
            if sequence != anchor_sequence + 1:
                break
            if not macs_equal(tombstone_mac(sequence=sequence, previous_hash=previous_hash, hash_value=hash_value,
                                            key=key), mac):
                raise ArchiveError(f"tombstone #{sequence} is not authentic; the anchor was not moved")
            if previous_hash != anchor_hash:
                raise ArchiveError(f"tombstone #{sequence} does not follow the anchor; the anchor was not moved")
            anchor_sequence, anchor_hash = sequence, hash_value
            folded += 1
        if folded < len(batch) or not batch:
            break
    if anchor_sequence != head.anchor_sequence:
        AuditTombstone.objects.filter(sequence__lte=anchor_sequence).delete()
        head.anchor_sequence, head.anchor_hash = anchor_sequence, anchor_hash
        head.anchor_mac = anchor_mac(sequence=anchor_sequence, hash_value=anchor_hash, key=key)
        head.save(update_fields=["anchor_sequence", "anchor_hash", "anchor_mac", "updated_at"])


def purge_archived(rows: list[dict[str, Any]], archive: ArchiveFile) -> int:
    """Delete archived rows, leaving authenticated tombstones; fold the anchor. One transaction."""
    from audit.models import AuditEvent, AuditTombstone, ChainHead
    from audit.services import record

    key = chain_key()
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with transaction.atomic():
        ChainHead.objects.get_or_create(pk=1)
        head = ChainHead.objects.select_for_update().get(pk=1)
        AuditTombstone.objects.bulk_create(
            [
                AuditTombstone(
                    sequence=row["sequence"],
                    previous_hash=row["previous_hash"],
                    hash=row["hash"],
                    archive=archive.path.name,
                    mac=tombstone_mac(
                        sequence=row["sequence"], previous_hash=row["previous_hash"], hash_value=row["hash"], key=key
                    ),
                )
                for row in rows
            ],
            batch_size=1000,
        )
        deleted = 0
        with _purge_switch(), connection.cursor() as cursor:
            ids = [row["id"] for row in rows]
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                placeholders = ", ".join(["%s"] * len(chunk))
                cursor.execute(
                    f"DELETE FROM {table} WHERE id IN ({placeholders}) AND sequence IS NOT NULL",  # noqa: S608
                    chunk,
                )
                deleted += cursor.rowcount
        if deleted != len(rows):
            raise ArchiveError(f"deleted {deleted} of {len(rows)} archived events; rolled back")
        _fold_tombstones(head, key)
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
            context={**summary, "anchor_sequence": head.anchor_sequence},
        )
    return deleted


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


def archive_past_retention(
    *,
    now: datetime.datetime | None = None,
    batch_size: int | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ArchiveResult:
    """Archive, verify and purge every sealed event past retention (see the module docstring)."""
    from audit.models import ChainHead

    now = now or timezone.now()
    batch_size = batch_size or settings.AUDIT_ARCHIVE_BATCH_SIZE
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
            result.purged += purge_archived(rows, archive)
            result.archived += archive.count
            result.files.append(archive)
            if progress is not None:
                progress(archive.count)
    result.anchor_sequence = ChainHead.objects.filter(pk=1).values_list("anchor_sequence", flat=True).first() or 0
    return result


def valid_retention_overrides(overrides: Any) -> list[str]:
    """Problems with an ``AUDIT_RETENTION_OVERRIDES`` value (for the system check)."""
    if not isinstance(overrides, dict):
        return ["AUDIT_RETENTION_OVERRIDES must be a dict of action value -> days"]
    problems = []
    known = set(Action.values)
    for action, days in overrides.items():
        if action not in known:
            problems.append(f"AUDIT_RETENTION_OVERRIDES names an unknown action {action!r}")
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            problems.append(f"AUDIT_RETENTION_OVERRIDES[{action!r}] must be a whole number of days >= 1")
    return problems
