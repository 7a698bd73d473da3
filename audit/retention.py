"""Retention: archive events past their retention period, verify the archive, then purge them.

OWASP ASVS 4.0.3 V8.3.8 (retention). Each action keeps its events for
``AUDIT_RETENTION_OVERRIDES.get(action, AUDIT_RETENTION_DAYS)`` days. A run:

1. takes the archive lock (one archiver at a time: a PostgreSQL advisory lock, or a file lock
   on the embedded default);
2. selects up to ``AUDIT_ARCHIVE_BATCH_SIZE`` sealed events past retention, in sequence order;
3. writes them as gzip JSON Lines, encrypted, to
   ``<AUDIT_DIR>/archive/audit-<first>-<last>-<time>.jsonl.gz.nvarc`` with a manifest beside it
   (count, first/last sequence and hash, the sequence ranges, the file's SHA-256, the key ids,
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

The archive file
----------------
The JSON Lines are compressed, then encrypted (compression first: ciphertext does not compress)
with the streaming authenticated encryption of ``encryption.streams`` — AES-256-GCM frames under
an HKDF per-file key, STREAM construction, an authenticated clear header and a final manifest
frame — under the primary key of the ``audit_archive`` key ring. That purpose is not ``backup``:
archives are kept for years and backups for days, so their keys retire on different schedules,
and an investigator who is given the archive key cannot open a whole-database backup with it.
The file starts with ``NVAUDARC``; its header names the key id, and so does the manifest (under
``encryption``). A changed, reordered, dropped or appended frame, a wrong key and a truncated file
are refused with an ``ArchiveError`` — during ``archive_past_retention`` that means nothing is
purged. Reading is streamed (one frame and gzip's window in memory, whatever the archive's size).

Archives written before encryption (plain gzip, ``.jsonl.gz``, manifest format
``audit-archive/v1`` with ``"encryption": null``) are still read and verified: the reader tells
the two apart by their first bytes, not by their names. Their events carry no key ids, so their
MACs are checked with the legacy chain key (``audit.chain``).

``manage.py audit_archive --read PATH`` prints an archive as JSON Lines for an investigator, and
``--verify PATH`` checks it against its manifest.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit import conf
from audit.actions import Action, Outcome
from audit.chain import (
    CONTENT_FIELDS,
    ChainKey,
    ChainKeyError,
    ChainKeys,
    anchor_mac,
    content_mac,
    link_hash,
    macs_equal,
    manifest_mac,
    signing_key,
    tombstone_mac,
)
from audit.heads import audit_dir
from encryption.errors import KeyConfigurationError
from encryption.keyring import get_key_ring
from encryption.streams import StreamError, StreamFormat, StreamReader, StreamWriter

# v2: encrypted, with key ids; v1 (read only): plain gzip, every MAC under the legacy key.
ARCHIVE_FORMAT = "audit-archive/v2"
ARCHIVE_FORMATS_READ = ("audit-archive/v1", ARCHIVE_FORMAT)
ARCHIVE_FIELDS = (
    "id",
    "sequence",
    "previous_hash",
    "hash",
    "content_mac",
    "content_key_id",
    "chain_key_id",
    *CONTENT_FIELDS,
)
ARCHIVE_SUFFIX = ".jsonl.gz.nvarc"
LEGACY_ARCHIVE_SUFFIX = ".jsonl.gz"
# The key ring that encrypts archives (see "The archive file" above for why not ``backup``).
ARCHIVE_KEY_PURPOSE = "audit_archive"
ARCHIVE_MAGIC = b"NVAUDARC"
ARCHIVE_STREAM_FORMAT = StreamFormat(
    name="ninaivalaigal-audit-archive",
    magic=ARCHIVE_MAGIC,
    purpose=ARCHIVE_KEY_PURPOSE,
    kdf_label=b"ninaivalaigal audit archive v1 file key\x00",
    ad_label=b"nvauditarchive/v1",
    noun="audit archive",
)
_GZIP_MAGIC = b"\x1f\x8b"
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
    return int(conf.get("AUDIT_RETENTION_OVERRIDES").get(action, conf.get("AUDIT_RETENTION_DAYS")))


def past_retention(now: datetime.datetime | None = None):
    """Sealed events older than their action's retention period."""
    from audit.models import AuditEvent

    now = now or timezone.now()
    overrides = {str(action): int(days) for action, days in conf.get("AUDIT_RETENTION_OVERRIDES").items()}
    condition = Q(timestamp__lt=now - datetime.timedelta(days=conf.get("AUDIT_RETENTION_DAYS"))) & ~Q(
        action__in=list(overrides)
    )
    for action, days in overrides.items():
        condition |= Q(action=action, timestamp__lt=now - datetime.timedelta(days=days))
    return AuditEvent.objects.sealed().filter(condition)


# --- The archive file: gzip JSON Lines inside the encrypted stream ----------------------------


class ArchiveWriter:
    """One archive being written: ``write()`` JSON Lines, then ``finish(manifest)`` or ``abort()``.

    Compresses, then encrypts under the primary ``audit_archive`` key, streaming (one frame in
    memory). The file is created 0600 and never over an existing one.
    """

    def __init__(self, path: Path) -> None:
        try:
            key = get_key_ring(ARCHIVE_KEY_PURPOSE).primary
        except KeyConfigurationError as error:
            raise ArchiveError(f"No {ARCHIVE_KEY_PURPOSE} key to encrypt the archive: {error}") from None
        self.path = path
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(descriptor, "wb")
        self._stream = StreamWriter(self._file, stream_format=ARCHIVE_STREAM_FORMAT, key=key)
        # mtime=0: the gzip header carries no clock; the manifest says when the archive was made.
        self._gzip = gzip.GzipFile(filename="", fileobj=self._stream, mode="wb", compresslevel=6, mtime=0)

    @property
    def encryption(self) -> dict[str, Any]:
        """What the manifest records of the encryption (never key material)."""
        return {
            "format": ARCHIVE_STREAM_FORMAT.name,
            "cipher": "AES-256-GCM",
            "purpose": ARCHIVE_KEY_PURPOSE,
            "key_id": self._stream.key_id,
        }

    def write(self, data: bytes) -> int:
        return self._gzip.write(data)

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Close the gzip stream, seal ``manifest`` as the final frame, sync and close the file."""
        self._gzip.close()
        sealed = self._stream.finish(manifest)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return sealed

    def abort(self) -> None:
        """Close and remove a file that was not finished (a partial archive is never left behind)."""
        with contextlib.suppress(Exception):
            self._gzip.close()
        self._file.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def open_archive_writer(path: Path) -> ArchiveWriter:
    """Open an archive for writing. The one place archives are written."""
    return ArchiveWriter(path)


class ArchiveReader:
    """One archive read back as JSON Lines, streamed; a context manager.

    Encrypted archives (``NVAUDARC``) are decrypted and authenticated frame by frame; plain gzip
    archives from before encryption are read as they are. Every failure (a missing key, a
    changed, truncated or appended file, bad gzip) raises ``ArchiveError`` naming the file.
    After ``lines()`` is exhausted, ``stream_manifest`` holds the encrypted file's own manifest
    (``None`` for a plain archive).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.encrypted = False
        self.key_id: str | None = None
        self._file: IO[bytes] | None = None
        self._stream: StreamReader | None = None
        self._plaintext: IO[bytes] | None = None

    def __enter__(self) -> ArchiveReader:
        try:
            self._file = open(self.path, "rb")  # closed by __exit__
        except FileNotFoundError:
            raise ArchiveError(f"{self.name} does not exist") from None
        except OSError as error:
            raise ArchiveError(f"{self.name} cannot be read: {error.strerror}") from None
        try:
            magic = self._file.read(len(ARCHIVE_MAGIC))
            self._file.seek(0)
            if magic == ARCHIVE_MAGIC:
                try:
                    self._stream = StreamReader(self._file, stream_format=ARCHIVE_STREAM_FORMAT, name=self.name)
                except StreamError as error:
                    raise ArchiveError(str(error)) from None
                self.encrypted = True
                self.key_id = self._stream.key_id
                self._plaintext = self._stream.open()
            elif magic.startswith(_GZIP_MAGIC):
                self._plaintext = self._file
            else:
                raise ArchiveError(f"{self.name} is not an audit archive (neither encrypted nor gzip)")
        except BaseException:
            self._file.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self._file is not None:
            self._file.close()

    @property
    def stream_manifest(self) -> dict[str, Any] | None:
        return self._stream.manifest if self._stream is not None else None

    def lines(self) -> Iterator[bytes]:
        """Yield the archive's lines; at the end the encrypted file is known to be complete."""
        if self._plaintext is None:
            raise RuntimeError("use ArchiveReader as a context manager")
        try:
            with gzip.GzipFile(fileobj=self._plaintext, mode="rb") as lines:
                yield from lines
            if self._stream is not None:
                # gzip stops at its own end; the frames after it (only the final one) must follow.
                if self._plaintext.read(1):
                    raise ArchiveError(f"{self.name} has data after its compressed events")
                if self._stream.manifest is None:
                    raise ArchiveError(f"{self.name} is truncated: it ends without its final (manifest) chunk")
        except StreamError as error:
            raise ArchiveError(str(error)) from None
        except (OSError, EOFError, zlib.error) as error:
            raise ArchiveError(f"{self.name} is not a complete gzip stream: {error}") from None


def open_archive_reader(path: Path) -> ArchiveReader:
    """Open an archive for reading (the counterpart of ``open_archive_writer``)."""
    return ArchiveReader(path)


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
    """Yield the events of an archive file (encrypted or plain gzip), one dict per line, streamed.

    Raises ``ArchiveError`` if the file cannot be decrypted or is damaged; lines already yielded
    came from authenticated frames, but the archive is only known to be complete at the end.
    """
    path = Path(path)
    with open_archive_reader(path) as reader:
        for number, line in enumerate(reader.lines(), start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                raise ArchiveError(f"{path.name}: line {number} is not JSON") from None


def write_archive(rows: list[dict[str, Any]], *, directory: Path | None = None) -> ArchiveFile:
    """Write ``rows`` (in sequence order) and their manifest; return what was written."""
    directory = directory or archive_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created_at = timezone.now()
    first, last = rows[0], rows[-1]
    name = f"audit-{first['sequence']:012d}-{last['sequence']:012d}-{created_at:%Y%m%dT%H%M%S%fZ}{ARCHIVE_SUFFIX}"
    path = directory / name
    writer = open_archive_writer(path)
    try:
        for row in rows:
            writer.write(json.dumps(_jsonable(row), sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n")
        # The encrypted file's own manifest binds it to what it holds (checked by verify_archive).
        writer.finish(
            {
                "file": name,
                "count": len(rows),
                "first_sequence": first["sequence"],
                "last_sequence": last["sequence"],
                "last_hash": last["hash"],
            }
        )
    except BaseException:
        writer.abort()
        raise
    key = signing_key()
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
        "retention_days": conf.get("AUDIT_RETENTION_DAYS"),
        "retention_overrides": dict(conf.get("AUDIT_RETENTION_OVERRIDES")),
        "encryption": writer.encryption,
        # The audit_chain key of this manifest's MAC (the events name their own keys).
        "key_id": key.id,
    }
    manifest["mac"] = manifest_mac(manifest, key=key)
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


def _event_key(keys: ChainKeys, key_id: Any, *, what: str, name: str, sequence: Any) -> ChainKey:
    try:
        return keys.get(key_id)
    except ChainKeyError as error:
        raise ArchiveError(f"{name}: the {what} of event #{sequence} cannot be checked: {error}") from None


def _load_manifest(manifest_path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(Path(manifest_path).read_text())
    except FileNotFoundError:
        raise ArchiveError(f"{manifest_path.name} does not exist") from None
    except (OSError, ValueError) as error:
        raise ArchiveError(f"{manifest_path.name} is not a readable manifest: {error}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("file"), str):
        raise ArchiveError(f"{manifest_path.name} is not an archive manifest")
    return manifest


def manifest_path_for(path: Path) -> Path:
    """The manifest of an archive file (or ``path`` itself if it is a manifest)."""
    path = Path(path)
    return path if path.name.endswith(".manifest.json") else path.with_name(path.name + ".manifest.json")


def verify_archive(manifest_path: Path, *, expected: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Read an archive back and check it against its manifest, its MACs and ``expected`` rows.

    Every MAC is checked with the key its stored id names (the manifest's ``key_id``, each
    event's ``content_key_id``/``chain_key_id``; none: the legacy key), and an encrypted archive
    is decrypted and authenticated to its last frame. Raises ``ArchiveError`` naming the first
    discrepancy; returns the manifest when all holds.
    """
    manifest_path = Path(manifest_path)
    keys = ChainKeys()
    manifest = _load_manifest(manifest_path)
    if manifest.get("format") not in ARCHIVE_FORMATS_READ:
        raise ArchiveError(f"{manifest_path.name}: unknown archive format {manifest.get('format')!r}")
    try:
        manifest_key = keys.get(manifest.get("key_id"))
    except ChainKeyError as error:
        raise ArchiveError(f"{manifest_path.name}: the manifest cannot be checked: {error}") from None
    if not macs_equal(manifest_mac(manifest, key=manifest_key), manifest.get("mac")):
        raise ArchiveError(f"{manifest_path.name}: the manifest is not authentic")
    path = manifest_path.parent / Path(manifest["file"]).name
    if not path.exists():
        raise ArchiveError(f"{path.name} does not exist")
    if _file_sha256(path) != manifest["sha256"]:
        raise ArchiveError(f"{path.name}: SHA-256 differs from the manifest")
    encryption = manifest.get("encryption")
    sequences: list[int] = []
    previous_sequence, previous_hash = None, None
    expected_by_id = {row["id"]: row["hash"] for row in expected} if expected is not None else None
    seen_ids = set()
    with open_archive_reader(path) as reader:
        if bool(encryption) != reader.encrypted:
            raise ArchiveError(f"{path.name}: the manifest and the file disagree on whether it is encrypted")
        if reader.encrypted and encryption.get("key_id") != reader.key_id:
            raise ArchiveError(f"{path.name}: encrypted with another key than the manifest names")
        for number, raw in enumerate(reader.lines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                sequence = line["sequence"]
            except (ValueError, KeyError, TypeError):
                raise ArchiveError(f"{path.name}: line {number} is not an archived event") from None
            content_key = _event_key(
                keys, line.get("content_key_id"), what="content MAC", name=path.name, sequence=sequence
            )
            try:
                authentic = macs_equal(content_mac(line, key=content_key), line["content_mac"])
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ArchiveError(f"{path.name}: line {number} is not an archived event") from None
            if not authentic:
                raise ArchiveError(f"{path.name}: event #{sequence} does not match its content MAC")
            chain_key = _event_key(keys, line.get("chain_key_id"), what="chain hash", name=path.name, sequence=sequence)
            recomputed = link_hash(
                sequence=sequence,
                previous_hash=line["previous_hash"],
                content_mac_value=line["content_mac"],
                key=chain_key,
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
        stream_manifest = reader.stream_manifest
    if stream_manifest is not None:
        held = {name: stream_manifest.get(name) for name in ("file", "count", "first_sequence", "last_sequence")}
        if held != {name: manifest[name] for name in held}:
            raise ArchiveError(f"{path.name}: the encrypted file's own manifest differs from {manifest_path.name}")
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


def _fold_tombstones(head, key: ChainKey) -> None:
    """Fold tombstones that continue the anchor into it, checking each as it goes.

    Each tombstone is checked with the key its ``key_id`` names; the moved anchor is MAC'd with
    ``key`` (the signing key) and stores its id.
    """
    from audit.models import AuditTombstone

    keys = ChainKeys()
    anchor_sequence, anchor_hash = head.anchor_sequence, head.anchor_hash
    while True:
        batch = list(
            AuditTombstone.objects.filter(sequence__gt=anchor_sequence)
            .order_by("sequence")
            .values_list("sequence", "previous_hash", "hash", "mac", "key_id")[:5000]
        )
        folded = 0
        for sequence, previous_hash, hash_value, mac, key_id in batch:
            if sequence != anchor_sequence + 1:
                break
            try:
                tombstone_key = keys.get(key_id)
            except ChainKeyError as error:
                raise ArchiveError(
                    f"tombstone #{sequence} cannot be checked ({error}); the anchor was not moved"
                ) from None
            expected_mac = tombstone_mac(
                sequence=sequence, previous_hash=previous_hash, hash_value=hash_value, key=tombstone_key
            )
            if not macs_equal(expected_mac, mac):
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
        head.anchor_key_id = key.id
        head.save(update_fields=["anchor_sequence", "anchor_hash", "anchor_mac", "anchor_key_id", "updated_at"])


def purge_archived(rows: list[dict[str, Any]], archive: ArchiveFile) -> int:
    """Delete archived rows, leaving authenticated tombstones; fold the anchor. One transaction."""
    from audit.models import AuditEvent, AuditTombstone, ChainHead
    from audit.services import record

    key = signing_key()
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
                    key_id=key.id,
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
