"""Audit archives are encrypted: gzip inside the streaming AEAD of encryption.streams, refused when damaged.

Also: archives written before encryption still read and verify, reading is streamed, and an
investigator reads an archive with ``manage.py audit_archive --read``.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import tracemalloc
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

import audit
from audit.chain import legacy_key, manifest_mac
from audit.models import AuditEvent, ChainHead
from audit.retention.archive import read_archive, verify_archive
from audit.retention.archive_file import ARCHIVE_STREAM_FORMAT, ArchiveError, ArchiveWriter
from audit.retention.services import archive_past_retention
from audit.sealing import seal_pending
from audit.verification import verify_chain
from encryption.streams import StreamReader
from tests.audit.support import record_legacy
from tests.encryption.helpers import make_key, ring

pytestmark = pytest.mark.django_db

ARCHIVE_KEY_ID = "dev-audit-archive"  # the primary of the test settings' audit_archive ring


@pytest.fixture
def history(undeclared_context_keys):
    """Five events 400 days old (#1-#5), then three from today (#6-#8), sealed, numbered under ``n``."""
    now = timezone.now()
    for number in range(5):
        with time_machine.travel(now - datetime.timedelta(days=400, minutes=-number), tick=False):
            audit.record(action=audit.Action.MEMORY_READ, context={"n": number, "marker": "archived-plaintext"})
    for number in range(3):
        audit.record(action=audit.Action.MEMORY_READ, context={"n": 5 + number})
    seal_pending()


@pytest.fixture
def archived(history):
    """The archive of #1-#5."""
    result = archive_past_retention()
    assert result.archived == 5
    return result.files[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- What is on disk --------------------------------------------------------------------------------
def test_the_archive_is_gzip_json_lines_inside_the_encrypted_stream(archived):
    data = archived.path.read_bytes()
    assert data.startswith(b"NVAUDARC")
    assert b"archived-plaintext" not in data and b"memory.read" not in data
    with open(archived.path, "rb") as handle:
        reader = StreamReader(handle, stream_format=ARCHIVE_STREAM_FORMAT)
        assert reader.key_id == ARCHIVE_KEY_ID
        compressed = b"".join(reader.chunks())
    assert compressed.startswith(b"\x1f\x8b")  # compressed first, then encrypted
    lines = [json.loads(line) for line in gzip.decompress(compressed).splitlines()]
    assert [line["sequence"] for line in lines] == [1, 2, 3, 4, 5]
    assert reader.manifest["count"] == 5 and reader.manifest["file"] == archived.path.name
    assert (reader.manifest["first_sequence"], reader.manifest["last_sequence"]) == (1, 5)


def test_a_rotated_archive_key_still_reads_old_archives_and_encrypts_new_ones(archived, settings):
    settings.ENCRYPTION_AUDIT_ARCHIVE_KEYS = ring(make_key("archive-2027"), settings.ENCRYPTION_AUDIT_ARCHIVE_KEYS)
    assert verify_archive(archived.manifest_path)["encryption"]["key_id"] == ARCHIVE_KEY_ID
    with time_machine.travel(timezone.now() + datetime.timedelta(days=400), tick=False):
        seal_pending()
        later = archive_past_retention()
    assert json.loads(later.files[0].manifest_path.read_text())["encryption"]["key_id"] == "archive-2027"
    verify_archive(later.files[0].manifest_path)


# --- Bad archives: a clear ArchiveError, never a crash -------------------------------------------------
def test_a_wrong_key_with_the_same_id_is_refused(archived, settings):
    settings.ENCRYPTION_AUDIT_ARCHIVE_KEYS = make_key(ARCHIVE_KEY_ID)
    for attempt in (lambda: verify_archive(archived.manifest_path), lambda: list(read_archive(archived.path))):
        with pytest.raises(ArchiveError, match="failed authentication at chunk 0") as caught:
            attempt()
        assert f"audit_archive key '{ARCHIVE_KEY_ID}'" in str(caught.value)


def test_a_missing_key_names_the_key_id(archived, settings):
    settings.ENCRYPTION_AUDIT_ARCHIVE_KEYS = make_key("archive-2027")
    with pytest.raises(ArchiveError, match=f"audit_archive key '{ARCHIVE_KEY_ID}', which is not in the audit_archive"):
        list(read_archive(archived.path))
    with pytest.raises(ArchiveError, match="ENCRYPTION_AUDIT_ARCHIVE_KEYS"):
        verify_archive(archived.manifest_path)


def test_a_flipped_byte_is_refused(archived):
    data = bytearray(archived.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    archived.path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="failed authentication at chunk"):
        list(read_archive(archived.path))
    with pytest.raises(ArchiveError, match="SHA-256 differs"):
        verify_archive(archived.manifest_path)


@pytest.mark.parametrize("keep", [-1, -20, 60, 30, 5])
def test_a_truncated_archive_is_refused_wherever_it_is_cut(archived, keep):
    data = archived.path.read_bytes()
    archived.path.write_bytes(data[:keep])
    with pytest.raises(ArchiveError, match="truncated|not an audit archive"):
        list(read_archive(archived.path))
    with pytest.raises(ArchiveError):
        verify_archive(archived.manifest_path)


def test_data_appended_to_an_archive_is_refused(archived):
    with open(archived.path, "ab") as handle:
        handle.write(b"\x00" * 8)
    with pytest.raises(ArchiveError, match="unexpected data after its final chunk"):
        list(read_archive(archived.path))


def test_a_file_that_is_not_an_archive(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an archive at all")
    with pytest.raises(ArchiveError, match="not an audit archive"):
        list(read_archive(path))
    with pytest.raises(ArchiveError, match="does not exist"):
        list(read_archive(tmp_path / "nowhere.jsonl.gz.nvarc"))


def test_an_encrypted_archive_whose_manifest_says_plain_is_refused(archived):
    manifest = json.loads(archived.manifest_path.read_text())
    manifest["encryption"] = None
    manifest["mac"] = manifest_mac(manifest)  # even re-MAC'd (with the chain key, which an attacker lacks)
    archived.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArchiveError, match="disagree on whether it is encrypted"):
        verify_archive(archived.manifest_path)


def test_archives_swapped_between_manifests_are_refused(archived, tmp_path):
    """The encrypted file's own manifest names it: a copy under another manifest does not verify."""
    manifest = json.loads(archived.manifest_path.read_text())
    copy = archived.path.with_name("audit-copy.jsonl.gz.nvarc")
    copy.write_bytes(archived.path.read_bytes())
    manifest["file"] = copy.name
    manifest["mac"] = manifest_mac(manifest)
    other = archived.manifest_path.with_name(copy.name + ".manifest.json")
    other.write_text(json.dumps(manifest))
    with pytest.raises(ArchiveError, match="own manifest differs"):
        verify_archive(other)


@pytest.mark.parametrize("damage", ["wrong-key", "truncate"])
def test_nothing_is_purged_when_the_encrypted_archive_does_not_read_back(history, monkeypatch, settings, damage):
    from audit.retention import services as archive_run

    real_write = archive_run.write_archive

    def write_then_damage(rows, **kwargs):
        written = real_write(rows, **kwargs)
        if damage == "wrong-key":  # the key changed under the same id between writing and reading back
            settings.ENCRYPTION_AUDIT_ARCHIVE_KEYS = make_key(ARCHIVE_KEY_ID)
        else:
            written.path.write_bytes(written.path.read_bytes()[:-40])
        return written

    monkeypatch.setattr(archive_run, "write_archive", write_then_damage)
    with pytest.raises(ArchiveError):
        archive_past_retention()
    assert AuditEvent.objects.count() == 8
    assert ChainHead.objects.get().anchor_sequence == 0
    assert not AuditEvent.objects.filter(action__startswith="system.audit_").exists()
    assert verify_chain().ok


def test_a_failed_write_leaves_no_partial_archive(history, monkeypatch, audit_dir):
    from audit.retention import archive

    def explode(row):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive, "_jsonable", explode)
    with pytest.raises(OSError, match="No space left"):
        archive_past_retention()
    assert list((audit_dir / "archive").iterdir()) == []
    assert AuditEvent.objects.count() == 8


def test_no_archive_key_is_a_clear_error_and_purges_nothing(history, settings):
    settings.ENCRYPTION_AUDIT_ARCHIVE_KEYS = ""
    with pytest.raises(ArchiveError, match="No audit_archive key"):
        archive_past_retention()
    assert AuditEvent.objects.count() == 8


# --- Streaming --------------------------------------------------------------------------------------
def test_writing_and_reading_an_archive_holds_a_few_chunks_at_most(tmp_path):
    """Tens of MB of events, written and read back with a small, constant memory peak."""
    path = tmp_path / "big.jsonl.gz.nvarc"
    line = {"sequence": 0, "context": {"payload": ""}}
    count = 2500
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        writer = ArchiveWriter(path)
        for number in range(count):
            line["sequence"] = number
            line["context"]["payload"] = os.urandom(4096).hex()  # incompressible: 8 kB per line
            writer.write(json.dumps(line).encode() + b"\n")
        writer.finish({"file": path.name, "count": count})
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = sum(1 for _ in read_archive(path))
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read == count
    assert path.stat().st_size > 10 * 1024 * 1024
    assert write_peak < 4 * 1024 * 1024, write_peak
    assert read_peak < 4 * 1024 * 1024, read_peak


# --- Archives from before encryption ------------------------------------------------------------------
def _write_plain_archive(directory: Path, rows: list[dict], *, name: str) -> Path:
    """An archive as the version before encryption wrote it: plain gzip, manifest v1, legacy MACs."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    lines = []
    for row in rows:
        document = {key: value for key, value in row.items() if key not in ("content_key_id", "chain_key_id")}
        document["uuid"] = str(document["uuid"])
        document["timestamp"] = document["timestamp"].astimezone(datetime.UTC).isoformat(timespec="microseconds")
        lines.append(json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    path.write_bytes(gzip.compress(b"".join(lines)))
    manifest = {
        "format": "audit-archive/v1",
        "file": name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "count": len(rows),
        "first_sequence": rows[0]["sequence"],
        "last_sequence": rows[-1]["sequence"],
        "first_previous_hash": rows[0]["previous_hash"],
        "first_hash": rows[0]["hash"],
        "last_hash": rows[-1]["hash"],
        "sequence_ranges": [[rows[0]["sequence"], rows[-1]["sequence"]]],
        "created_at": timezone.now().isoformat(),
        "retention_days": 365,
        "retention_overrides": {},
        "encryption": None,
    }
    manifest["mac"] = manifest_mac(manifest, key=legacy_key())
    manifest_path = directory / (name + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest_path


@pytest.fixture
def plain_archive(audit_dir) -> Path:
    from audit.retention.archive import ARCHIVE_FIELDS

    record_legacy(4)
    rows = list(AuditEvent.objects.order_by("sequence").values(*ARCHIVE_FIELDS))
    return _write_plain_archive(audit_dir / "archive", rows, name="audit-000000000001-000000000004-old.jsonl.gz")


def test_an_archive_from_before_encryption_still_reads_and_verifies(plain_archive):
    manifest = verify_archive(plain_archive)
    assert manifest["encryption"] is None and manifest["count"] == 4
    events = list(read_archive(plain_archive.with_name(manifest["file"])))
    assert [event["sequence"] for event in events] == [1, 2, 3, 4]


def test_old_archives_are_told_apart_by_their_bytes_not_their_names(plain_archive, archived):
    plain = plain_archive.with_name(json.loads(plain_archive.read_text())["file"])
    renamed_plain = plain.with_name("evidence-a.bin")
    renamed_plain.write_bytes(plain.read_bytes())
    renamed_encrypted = archived.path.with_name("evidence-b.jsonl.gz")
    renamed_encrypted.write_bytes(archived.path.read_bytes())
    assert len(list(read_archive(renamed_plain))) == 4
    assert len(list(read_archive(renamed_encrypted))) == 5


def test_a_damaged_old_archive_is_a_clear_error(plain_archive):
    plain = plain_archive.with_name(json.loads(plain_archive.read_text())["file"])
    plain.write_bytes(plain.read_bytes()[:-12])
    with pytest.raises(ArchiveError, match="not a complete gzip stream"):
        list(read_archive(plain))
    with pytest.raises(ArchiveError, match="SHA-256"):
        verify_archive(plain_archive)


def test_legacy_events_past_retention_are_archived_encrypted_and_verify(settings):
    with time_machine.travel(timezone.now() - datetime.timedelta(days=400), tick=False):
        record_legacy(3)
    result = archive_past_retention()
    assert result.archived == 3
    lines = list(read_archive(result.files[0].path))
    assert {(line["content_key_id"], line["chain_key_id"]) for line in lines} == {(None, None)}
    verify_archive(result.files[0].manifest_path)
    seal_pending()
    assert verify_chain().ok


# --- The investigator's command ------------------------------------------------------------------------
def test_audit_archive_read_prints_json_lines(archived):
    out, err = StringIO(), StringIO()
    call_command("audit_archive", "--read", str(archived.path), stdout=out, stderr=err)
    printed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert printed == list(read_archive(archived.path))
    assert [event["context"]["n"] for event in printed] == [0, 1, 2, 3, 4]
    assert f"5 event(s) read from {archived.path.name}" in err.getvalue()


def test_audit_archive_read_reads_old_plain_archives(plain_archive):
    out = StringIO()
    name = json.loads(plain_archive.read_text())["file"]
    call_command("audit_archive", "--read", str(plain_archive.with_name(name)), stdout=out, stderr=StringIO())
    assert len(out.getvalue().splitlines()) == 4


def test_audit_archive_read_fails_clearly_and_changes_nothing(archived, settings):
    before = _digest(archived.path)
    settings.ENCRYPTION_AUDIT_ARCHIVE_KEYS = make_key("archive-2027")
    with pytest.raises(CommandError, match="Cannot read the archive after 0 event"):
        call_command("audit_archive", "--read", str(archived.path), stdout=StringIO(), stderr=StringIO())
    assert _digest(archived.path) == before


def test_audit_archive_verify(archived):
    out = StringIO()
    call_command("audit_archive", "--verify", str(archived.path), stdout=out)
    assert "Archive OK: 5 events #1..#5, encrypted with audit_archive key 'dev-audit-archive'" in out.getvalue()
    call_command("audit_archive", "--verify", str(archived.manifest_path), stdout=io.StringIO())
    archived.path.write_bytes(archived.path.read_bytes()[:-1])
    with pytest.raises(CommandError, match="Archive verification FAILED: .*SHA-256"):
        call_command("audit_archive", "--verify", str(archived.path), stdout=io.StringIO())


@pytest.mark.parametrize("key_id", [["a", "list"], {"a": "dict"}, 7])
def test_a_manifest_naming_a_key_id_that_is_not_text_is_a_clear_error(archived, key_id):
    manifest = json.loads(archived.manifest_path.read_text())
    manifest["key_id"] = key_id
    archived.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArchiveError, match="a key id must be text"):
        verify_archive(archived.manifest_path)
