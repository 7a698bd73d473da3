"""Retention: archive past-retention events to verified, encrypted gzip JSON Lines, purge them, keep the chain whole.

The encryption of the archive file itself (wrong key, truncation, flipped bytes, old plain
archives, the investigator's reader) is tested in ``test_archive_encryption.py``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

import audit
from audit import tasks
from audit.chain import manifest_mac, signing_key
from audit.models import AuditEvent, AuditTombstone, ChainHead
from audit.retention.archive import read_archive, verify_archive
from audit.retention.archive_file import ArchiveError, ArchiveReader, ArchiveWriter
from audit.retention.services import archive_past_retention
from audit.sealing import seal_pending
from audit.verification import verify_chain

pytestmark = pytest.mark.django_db


def record_at(moment: datetime.datetime, action=audit.Action.MEMORY_READ, **kwargs):
    with time_machine.travel(moment, tick=False):
        return audit.record(action=action, **kwargs)


@pytest.fixture
def history(undeclared_context_keys):
    """Five events 400 days old (#1-#5), then three from today (#6-#8), numbered under ``n``."""
    now = timezone.now()
    for number in range(5):
        record_at(now - datetime.timedelta(days=400, minutes=-number), context={"n": number})
    for number in range(3):
        record_at(now - datetime.timedelta(minutes=3 - number), context={"n": 5 + number})
    seal_pending()


def test_archive_writes_verifies_and_purges_events_past_retention(history, audit_dir):
    result = archive_past_retention()
    assert (result.eligible, result.archived, result.purged) == (5, 5, 5)
    assert sorted(AuditEvent.objects.filter(action="memory.read").values_list("sequence", flat=True)) == [6, 7, 8]
    archive = result.files[0]
    assert archive.path.parent == audit_dir / "archive"
    assert archive.path.name.startswith("audit-000000000001-000000000005-")
    assert archive.path.name.endswith(".jsonl.gz.nvarc")
    assert archive.path.stat().st_mode & 0o777 == 0o600
    manifest = json.loads(archive.manifest_path.read_text())
    assert manifest["format"] == "audit-archive/v2"
    assert manifest["count"] == 5 and manifest["sequence_ranges"] == [[1, 5]]
    assert (manifest["first_sequence"], manifest["last_sequence"]) == (1, 5)
    assert manifest["sha256"] == hashlib.sha256(archive.path.read_bytes()).hexdigest()
    assert manifest["key_id"] == "dev-audit-chain"
    assert manifest["encryption"] == {
        "format": "ninaivalaigal-audit-archive",
        "cipher": "AES-256-GCM",
        "purpose": "audit_archive",
        "key_id": "dev-audit-archive",
    }
    assert archive.path.read_bytes().startswith(b"NVAUDARC")
    assert b"memory.read" not in archive.path.read_bytes()
    lines = list(read_archive(archive.path))
    assert [line["context"]["n"] for line in lines] == [0, 1, 2, 3, 4]
    assert lines[-1]["hash"] == manifest["last_hash"]
    assert {(line["content_key_id"], line["chain_key_id"]) for line in lines} == {("dev-audit-chain",) * 2}
    # The chain now starts after the authenticated anchor and still verifies.
    head = ChainHead.objects.get()
    assert (head.anchor_sequence, head.anchor_hash) == (5, manifest["last_hash"])
    assert AuditTombstone.objects.count() == 0
    seal_pending()
    report = verify_chain()
    assert report.ok, report.problems
    assert report.from_sequence == 6
    recorded = list(AuditEvent.objects.filter(action__startswith="system.audit").values_list("action", flat=True))
    assert sorted(recorded) == ["system.audit_archived", "system.audit_purged"]


def test_archiving_twice_does_nothing_the_second_time(history):
    archive_past_retention()
    seal_pending()
    again = archive_past_retention()
    assert (again.eligible, again.archived, again.files) == (0, 0, [])


def test_per_action_retention_leaves_authenticated_tombstones_and_the_chain_verifies(settings):
    settings.AUDIT_RETENTION_OVERRIDES = {"auth.login_failed": 30}
    now = timezone.now()
    for number in range(6):
        action = audit.Action.LOGIN_FAILED if number % 2 else audit.Action.MEMORY_READ
        record_at(now - datetime.timedelta(days=60, minutes=-number), action=action, subject=f"user{number}")
    seal_pending()
    result = archive_past_retention()
    assert result.archived == 3
    kept = AuditEvent.objects.filter(action="memory.read").order_by("sequence")
    assert list(kept.values_list("sequence", flat=True)) == [1, 3, 5]
    assert list(AuditTombstone.objects.values_list("sequence", flat=True)) == [2, 4, 6]
    seal_pending()
    assert verify_chain().ok
    # A year later everything is past retention: the tombstones fold into the anchor.
    with time_machine.travel(now + datetime.timedelta(days=400), tick=False):
        later = archive_past_retention()
    assert later.archived == 5  # #1, #3, #5 and the two system events of the first run
    assert AuditTombstone.objects.count() == 0
    seal_pending()
    report = verify_chain()
    assert report.ok, report.problems
    assert ChainHead.objects.get().anchor_sequence == 8


def test_a_forged_tombstone_hides_nothing(settings):
    settings.AUDIT_RETENTION_OVERRIDES = {"auth.login_failed": 30}
    now = timezone.now()
    for number in range(3):
        action = audit.Action.LOGIN_FAILED if number == 1 else audit.Action.MEMORY_READ
        record_at(now - datetime.timedelta(days=60, minutes=-number), action=action)
    seal_pending()
    archive_past_retention()
    AuditTombstone.objects.filter(sequence=2).update(hash="ab" * 32)
    seal_pending()
    report = verify_chain()
    assert not report.ok and report.first_bad_sequence == 2


def test_a_moved_anchor_is_reported(history):
    archive_past_retention()
    ChainHead.objects.filter(pk=1).update(anchor_sequence=6)
    seal_pending()
    assert verify_chain().first_bad_sequence == 6


def test_nothing_is_purged_when_the_archive_does_not_read_back(history, monkeypatch):
    def corrupt(manifest_path, *, expected=None):
        raise ArchiveError("simulated corruption")

    monkeypatch.setattr("audit.retention.services.verify_archive", corrupt)
    with pytest.raises(ArchiveError):
        archive_past_retention()
    assert AuditEvent.objects.count() == 8
    assert ChainHead.objects.get().anchor_sequence == 0


def test_verify_archive_detects_a_changed_line(history):
    """Someone with the archive key who re-encrypts a changed line is caught: SHA-256, manifest MAC, event MAC."""
    archive = archive_past_retention().files[0]
    with ArchiveReader(archive.path) as reader:
        lines = [json.loads(line) for line in reader.lines()]
        stream_manifest = reader.stream_manifest
    lines[2]["outcome"] = "failure"
    archive.path.unlink()
    writer = ArchiveWriter(archive.path)
    for line in lines:
        writer.write(json.dumps(line).encode() + b"\n")
    writer.finish({name: stream_manifest[name] for name in ("file", "count", "first_sequence", "last_sequence")})
    with pytest.raises(ArchiveError, match="SHA-256"):
        verify_archive(archive.manifest_path)
    manifest = json.loads(archive.manifest_path.read_text())
    manifest["sha256"] = hashlib.sha256(archive.path.read_bytes()).hexdigest()
    archive.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArchiveError, match="manifest is not authentic"):
        verify_archive(archive.manifest_path)
    # With the chain key too (which an attacker lacks) the manifest passes; the event's own MAC does not.
    manifest["mac"] = manifest_mac(manifest, key=signing_key())
    archive.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArchiveError, match="event #3 does not match its content MAC"):
        verify_archive(archive.manifest_path)


def test_archived_events_can_be_read_back(history):
    archive = archive_past_retention().files[0]
    events = list(read_archive(archive.path))
    assert [event["sequence"] for event in events] == [1, 2, 3, 4, 5]
    assert verify_archive(archive.manifest_path)["count"] == 5


@pytest.mark.audit_coverage("system.audit_archived", "system.audit_purged")
def test_archive_command_and_dry_run(history, capsys):
    call_command("audit_archive", "--dry-run")
    assert "5 event(s) are past retention" in capsys.readouterr().out
    assert AuditEvent.objects.count() == 8
    call_command("audit_archive", "--batch-size", "2", "--no-progress")
    output = capsys.readouterr().out
    assert "Archived 5 and purged 5 event(s)" in output
    assert output.count("Archived #") == 3  # 2 + 2 + 1
    with pytest.raises(CommandError):
        call_command("audit_archive", "--batch-size", "0")


def test_archive_task_is_idempotent(history):
    first = tasks.audit_archive.apply().get()
    assert first["archived"] == 5
    seal_pending()
    assert tasks.audit_archive.apply().get()["archived"] == 0


@pytest.mark.postgresql
def test_the_purge_passes_the_postgresql_trigger_only_inside_the_purge(history):
    from django.db import DatabaseError, connection, transaction

    archive_past_retention()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table}")  # noqa: S608


def test_a_purge_during_a_verification_is_not_reported_as_deletion(history):
    purged = []

    def purge_once(count):
        if not purged:
            purged.append(archive_past_retention())

    report = verify_chain(chunk_size=2, progress=purge_once)
    assert purged and purged[0].archived == 5
    assert report.ok, report.problems
    assert report.anchor_sequence == 5


def test_an_archive_is_read_from_a_pipe(history):
    """``--read`` from a pipe (no seeking back) gives the same events as from the file."""
    archive = archive_past_retention().files[0]
    with ArchiveReader(archive.path) as reader:
        from_file = list(reader.lines())
    fifo = archive.path.parent / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(archive.path.read_bytes()))
    writer.start()
    with ArchiveReader(fifo) as reader:
        from_pipe = list(reader.lines())
    writer.join()
    assert from_pipe == from_file and len(from_file) > 0


def test_archive_read_command_takes_standard_input(history, audit_dir):
    archive = archive_past_retention().files[0]
    with archive.path.open("rb") as archive_file:
        result = subprocess.run(
            [sys.executable, "manage.py", "audit_archive", "--read", "-"],
            stdin=archive_file, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == list(read_archive(archive.path))
