"""Archives of purged events: writing rows and their manifest, reading them, verifying them.

Each archive is ``<AUDIT_DIR>/archive/audit-<first>-<last>-<time>.jsonl.gz.nvarc`` (the file of
``audit.retention.archive_file``) with a MAC'd manifest beside it. ``verify_archive`` reads the
file back and checks every line before anything is purged. Formats and why:
docs/decisions/audit-retention.md.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils import timezone

from audit import conf
from audit.chain import (
    CONTENT_FIELDS,
    ChainKey,
    ChainKeyError,
    ChainKeys,
    content_mac,
    link_hash,
    macs_equal,
    manifest_mac,
    signing_key,
)
from audit.heads import audit_dir
from audit.retention.archive_file import ArchiveError, ArchiveReader, ArchiveWriter

# v2: encrypted, with key ids; v1 (read only): plain gzip, every MAC under the legacy key.
ARCHIVE_FORMAT = "audit-archive/v2"
ARCHIVE_FORMATS_READ = ("audit-archive/v1", ARCHIVE_FORMAT)
# The columns of an event an archive holds (everything its MACs need).
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


@dataclass
class ArchiveFile:
    """An archive just written: its file, its manifest and what it holds."""

    path: Path
    manifest_path: Path
    count: int
    first_sequence: int
    last_sequence: int
    sha256: str


def archive_dir() -> Path:
    return audit_dir() / "archive"


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
    with ArchiveReader(path) as reader:
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
    writer = ArchiveWriter(path)
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
    with ArchiveReader(path) as reader:
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
