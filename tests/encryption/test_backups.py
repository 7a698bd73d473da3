"""Encrypted backups: create, verify by restoring, and every way a backup file can be bad.

These tests run on both databases: on SQLite the backup is the online backup API's copy, on
PostgreSQL a ``pg_dump`` custom-format dump restored with ``pg_restore`` into a scratch database.
They use committed data (``transaction=True``): a backup sees what another process would see.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import sqlite3
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from encryption.backups import (
    BackupError,
    BackupReader,
    BackupWriter,
    backup_create,
    backup_create_and_verify,
    backup_prune,
    backup_verify,
    file_format,
    postgresql,
    sqlite,
)
from encryption.backups.file_format import MAGIC
from encryption.tasks import backup_and_verify
from tests.encryption.helpers import make_key, raw_value, ring
from tests.support import servers
from tests.testapp.models import EncryptedMemory, SecretRecord

pytestmark = pytest.mark.django_db(transaction=True)

NOTE_MARKER = "plaintext-marker-that-must-never-be-in-a-backup"


@pytest.fixture(autouse=True)
def _backup_settings(settings, tmp_path):
    settings.AUDIT_DIR = str(tmp_path / "audit")
    settings.ENCRYPTION_BACKUP_DIR = str(tmp_path / "scheduled")


@pytest.fixture
def seeded():
    """Committed rows with encrypted columns in two models."""
    records = SecretRecord.objects.bulk_create(
        SecretRecord(
            label=f"row {index}",
            note=f"{NOTE_MARKER} {index}",
            title=f"title {index}",
            email=f"person{index}@example.org",
            metadata={"index": index},
            birthday=datetime.date(1980, 1, 1) + datetime.timedelta(days=index),
            score=index,
        )
        for index in range(40)
    )
    EncryptedMemory.objects.bulk_create(
        EncryptedMemory(title=f"memory {index}", content=f"{NOTE_MARKER} memory {index}" * 20) for index in range(15)
    )
    return records


def _events(action: Action) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def _frames(path: Path) -> tuple[bytes, list[bytes]]:
    """Split a backup file into its preamble+header and its frames (each with its length prefix)."""
    data = path.read_bytes()
    _magic, _version, header_length = struct.unpack(">8sHI", data[:14])
    offset = 14 + header_length
    head, frames = data[:offset], []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        frames.append(data[offset : offset + 4 + length])
        offset += 4 + length
    return head, frames


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scratch_databases() -> list[str]:
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE 'nv_verify_%%'")
        return [row[0] for row in cursor.fetchall()]


def _assert_fails(path: Path, *, message: str, stage: str | None = None) -> BackupError:
    """Verification of ``path`` fails with ``message``, records BACKUP_FAILED and changes nothing."""
    before = _digest(path)
    failures = len(_events(Action.BACKUP_FAILED))
    with pytest.raises(BackupError) as caught:
        backup_verify(path=path)
    assert message in str(caught.value)
    if stage:
        assert caught.value.stage == stage
    assert _digest(path) == before
    events = _events(Action.BACKUP_FAILED)
    assert len(events) == failures + 1
    assert events[-1].outcome == Outcome.FAILURE
    assert events[-1].context["operation"] == "verify"
    assert events[-1].context["file"] == path.name
    assert message in events[-1].context["reason"]
    assert _scratch_databases() == []
    return caught.value


# --- The round trip ------------------------------------------------------------------------
def test_backup_and_verify_round_trip(seeded, tmp_path):
    path = tmp_path / "nightly.nvbak"
    created = backup_create(output=path)

    assert path.read_bytes().startswith(MAGIC)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert not list(tmp_path.glob(".*.partial"))
    manifest = created.manifest
    assert manifest["database"]["vendor"] == connection.vendor
    assert manifest["key_id"] == "dev-backup"
    assert manifest["tables"]["testapp_secretrecord"] == 40
    assert manifest["tables"]["testapp_encryptedmemory"] == 15
    assert manifest["dump_bytes"] > 0 and len(manifest["dump_sha256"]) == 64
    assert manifest["chunks"] >= 1 and manifest["format"] == "ninaivalaigal-backup" and manifest["version"] == 1
    assert manifest["encrypted_columns"]["testapp.SecretRecord"]["table"] == "testapp_secretrecord"
    assert "note" in manifest["encrypted_columns"]["testapp.SecretRecord"]["columns"]
    assert manifest["migrations"]["testapp"] == "0001_initial"

    [event] = _events(Action.BACKUP_CREATED)
    assert event.outcome == Outcome.SUCCESS
    assert event.target_type == "encryption.backup" and event.target_id == "nightly.nvbak"
    assert event.context["dump_sha256"] == manifest["dump_sha256"]
    assert event.context["key_id"] == "dev-backup"
    assert event.context["tables"] == len(manifest["tables"])
    assert str(tmp_path) not in json.dumps(event.context)

    verified = backup_verify(path=path)
    assert verified.values_decrypted["testapp.SecretRecord"] > 0
    assert verified.values_decrypted["testapp.EncryptedMemory"] > 0
    assert verified.tables_checked == len(manifest["tables"])
    assert verified.rows_checked == sum(manifest["tables"].values())
    [event] = _events(Action.BACKUP_VERIFIED)
    assert event.outcome == Outcome.SUCCESS
    assert event.context["values_decrypted"] == sum(verified.values_decrypted.values())
    assert event.context["dump_sha256"] == manifest["dump_sha256"]
    assert _events(Action.BACKUP_FAILED) == []
    assert _scratch_databases() == []


def test_the_file_holds_no_plaintext_and_the_dump_holds_only_ciphertext(seeded, tmp_path):
    """The backup file is encrypted; inside it, encrypted columns are still tokens (not plaintext)."""
    path = tmp_path / "b.nvbak"
    backup_create(output=path)
    assert NOTE_MARKER.encode() not in path.read_bytes()
    assert b"person1@example.org" not in path.read_bytes()

    with open(path, "rb") as stream:
        reader = BackupReader(stream)
        dump = b"".join(reader.chunks())
    assert hashlib.sha256(dump).hexdigest() == reader.manifest["dump_sha256"]
    if connection.vendor == "sqlite":
        copy = tmp_path / "dump.sqlite3"
        copy.write_bytes(dump)
        with sqlite3.connect(copy) as database:
            stored = dict(database.execute("SELECT label, note FROM testapp_secretrecord").fetchall())
        assert stored["row 3"] == raw_value(SecretRecord, seeded[3].pk, "note")
        assert stored["row 3"].startswith("nv1:dev-field:")
    # pg_dump compresses its data; the marker is absent from the dump either way.
    assert NOTE_MARKER.encode() not in dump


def test_backup_key_material_never_reaches_an_event(seeded, tmp_path, settings):
    backup_create(output=tmp_path / "b.nvbak")
    backup_verify(path=tmp_path / "b.nvbak")
    material = settings.ENCRYPTION_BACKUP_KEYS.split(":", 1)[1]
    for event in AuditEvent.objects.all():
        assert material not in json.dumps(event.context)


def test_progress_reports_every_byte_of_the_file(seeded, tmp_path):
    calls = []
    path = tmp_path / "b.nvbak"
    backup_create(output=path, progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert {stage for stage, _, _ in calls} <= {"encrypt", "dump"}
    assert sum(done for _, done, _ in calls) > 0
    calls.clear()
    backup_verify(path=path, progress=lambda stage, done, total: calls.append((stage, done, total)))
    decrypted = [(done, total) for stage, done, total in calls if stage == "decrypt"]
    assert sum(done for done, _ in decrypted) == path.stat().st_size
    assert {total for _, total in decrypted} == {path.stat().st_size}
    assert "check" in {stage for stage, _, _ in calls}


def test_memory_use_does_not_grow_with_the_dump(tmp_path, monkeypatch, settings):
    """Backup and verify hold a few chunks at most, however large the dump."""
    monkeypatch.setattr(file_format, "CHUNK_SIZE", 64 * 1024)
    settings.ENCRYPTION_BACKUP_VERIFY_SAMPLE_SIZE = 3  # the sample's rows are not the stream under test
    payload = os.urandom(48 * 1024).hex()  # 96 kB of text per row, incompressible
    EncryptedMemory.objects.bulk_create(EncryptedMemory(title=str(i), content=payload) for i in range(120))
    path = tmp_path / "big.nvbak"
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        created = backup_create(output=path)
        _, backup_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        backup_verify(path=path)
        _, verify_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert created.dump_bytes > 8 * 1024 * 1024
    assert created.manifest["chunks"] > 100
    assert backup_peak < 2 * 1024 * 1024, backup_peak
    assert verify_peak < 2 * 1024 * 1024, verify_peak


# --- Bad files -----------------------------------------------------------------------------
@pytest.fixture
def backup_file(seeded, tmp_path, monkeypatch) -> Path:
    """A good backup in small chunks (several frames to reorder and swap)."""
    monkeypatch.setattr(file_format, "CHUNK_SIZE", 16 * 1024)
    path = tmp_path / "good.nvbak"
    backup_create(output=path)
    assert len(_frames(path)[1]) >= 4
    return path


def test_a_flipped_byte_fails_authentication(backup_file):
    data = bytearray(backup_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    backup_file.write_bytes(bytes(data))
    _assert_fails(backup_file, message="failed authentication at chunk", stage="decrypt")


def test_a_changed_manifest_fails_authentication(backup_file):
    data = bytearray(backup_file.read_bytes())
    data[-1] ^= 0x80  # the manifest frame's tag
    backup_file.write_bytes(bytes(data))
    error = _assert_fails(backup_file, message="failed authentication at chunk")
    assert f"chunk {len(_frames(backup_file)[1]) - 1}" in str(error)


def test_a_changed_header_fails_every_chunk(backup_file):
    data = backup_file.read_bytes()
    created_at = json.loads(data[14 : 14 + struct.unpack(">I", data[10:14])[0]])["created_at"]
    changed = created_at.replace(created_at[:4], str(int(created_at[:4]) - 1), 1)
    backup_file.write_bytes(data.replace(created_at.encode(), changed.encode(), 1))
    _assert_fails(backup_file, message="failed authentication at chunk 0")


def test_a_truncated_file_is_detected_wherever_it_is_cut(backup_file):
    head, frames = _frames(backup_file)
    original = backup_file.read_bytes()
    for cut in (len(original) - 1, len(original) - len(frames[-1]), len(head) + 3, 20, 5):
        backup_file.write_bytes(original[:cut])
        _assert_fails(backup_file, message="truncated")


def test_dropping_the_final_chunk_is_truncation(backup_file):
    head, frames = _frames(backup_file)
    backup_file.write_bytes(head + b"".join(frames[:-1]))
    _assert_fails(backup_file, message="without its final (manifest) chunk", stage="decrypt")


def test_data_appended_after_the_final_chunk_is_refused(backup_file):
    with open(backup_file, "ab") as handle:
        handle.write(b"\x00" * 10)
    _assert_fails(backup_file, message="unexpected data after its final chunk")


def test_reordered_chunks_fail(backup_file):
    head, frames = _frames(backup_file)
    frames[1], frames[2] = frames[2], frames[1]
    backup_file.write_bytes(head + b"".join(frames))
    _assert_fails(backup_file, message="failed authentication at chunk 1")


def test_a_dropped_middle_chunk_fails(backup_file):
    head, frames = _frames(backup_file)
    backup_file.write_bytes(head + b"".join(frames[:1] + frames[2:]))
    _assert_fails(backup_file, message="failed authentication at chunk 1")


def test_a_chunk_from_another_backup_fails(backup_file, tmp_path):
    other = tmp_path / "other.nvbak"
    backup_create(output=other)
    head, frames = _frames(backup_file)
    frames[1] = _frames(other)[1][1]
    backup_file.write_bytes(head + b"".join(frames))
    _assert_fails(backup_file, message="failed authentication at chunk 1")


def test_a_wrong_key_with_the_same_id_fails(backup_file, settings):
    settings.ENCRYPTION_BACKUP_KEYS = make_key("dev-backup")
    _assert_fails(backup_file, message="not encrypted with the backup key 'dev-backup'")


def test_an_unknown_key_id_says_which_key_is_missing(backup_file, settings):
    settings.ENCRYPTION_BACKUP_KEYS = make_key("backup-2027")
    _assert_fails(backup_file, message="backup key 'dev-backup', which is not in the backup key ring", stage="key")


def test_a_retired_key_still_in_the_ring_verifies(backup_file, settings):
    settings.ENCRYPTION_BACKUP_KEYS = ring(make_key("backup-2027"), settings.ENCRYPTION_BACKUP_KEYS)
    assert backup_verify(path=backup_file).manifest["key_id"] == "dev-backup"


def test_a_file_that_is_not_a_backup(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some text, not a backup at all")
    _assert_fails(path, message="is not a Ninaivalaigal backup", stage="header")


def test_a_newer_format_version_is_refused(backup_file):
    data = bytearray(backup_file.read_bytes())
    data[8:10] = struct.pack(">H", 2)
    backup_file.write_bytes(bytes(data))
    _assert_fails(backup_file, message="format version 2")


def test_a_missing_file(tmp_path):
    with pytest.raises(BackupError, match="does not exist"):
        backup_verify(path=tmp_path / "nowhere.nvbak")
    assert _events(Action.BACKUP_FAILED)[-1].context["stage"] == "open"


def test_row_counts_that_differ_from_the_manifest_fail(seeded, tmp_path, monkeypatch):
    """A dump that lost rows (here: a manifest that counted one more) is caught by the restore."""
    backend = postgresql if connection.vendor == "postgresql" else sqlite
    real = backend.table_row_counts

    def overcount(database):
        counts = real(database)
        counts["testapp_secretrecord"] += 1
        return counts

    monkeypatch.setattr(backend, "table_row_counts", overcount)
    path = tmp_path / "short.nvbak"
    backup_create(output=path)
    monkeypatch.setattr(backend, "table_row_counts", real)
    _assert_fails(path, message="testapp_secretrecord 40 rows, manifest 41", stage="row-counts")


def test_encrypted_values_that_the_field_keys_cannot_read_fail(seeded, tmp_path, settings):
    path = tmp_path / "old-keys.nvbak"
    backup_create(output=path)
    settings.ENCRYPTION_FIELD_KEYS = make_key("field-2027")  # the old field key was removed too early
    error = _assert_fails(path, message="cannot be decrypted with the field key ring", stage="encrypted-fields")
    assert "dev-field" in str(error)
    assert NOTE_MARKER not in str(error)


# --- Creating: what is refused, and that nothing is left half-written ----------------------
def test_an_existing_output_is_not_overwritten(seeded, tmp_path):
    path = tmp_path / "keep.nvbak"
    path.write_bytes(b"an older backup")
    with pytest.raises(BackupError, match="already exists"):
        backup_create(output=path)
    assert path.read_bytes() == b"an older backup"
    [event] = _events(Action.BACKUP_FAILED)
    assert event.context["operation"] == "create" and event.context["stage"] == "output"
    backup_create(output=path, overwrite=True)
    assert path.read_bytes().startswith(MAGIC)


def test_a_failed_backup_leaves_no_file(seeded, tmp_path, settings):
    settings.ENCRYPTION_BACKUP_KEYS = ""
    path = tmp_path / "nokey.nvbak"
    with pytest.raises(BackupError, match="No backup key"):
        backup_create(output=path)
    assert not path.exists() and not list(tmp_path.glob(".*partial"))
    assert _events(Action.BACKUP_FAILED)[-1].context["stage"] == "key"


def test_a_backup_that_fails_midway_leaves_no_partial_file(seeded, tmp_path, monkeypatch):
    def explode(self, manifest):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BackupWriter, "finish", explode)
    with pytest.raises(BackupError, match="No space left on device"):
        backup_create(output=tmp_path / "full.nvbak")
    assert not (tmp_path / "full.nvbak").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_a_missing_output_folder_is_a_clear_error(seeded, tmp_path):
    with pytest.raises(BackupError, match="folder for x.nvbak does not exist"):
        backup_create(output=tmp_path / "missing" / "x.nvbak")


@pytest.mark.postgresql
def test_pg_dump_missing_is_a_clear_error(seeded, tmp_path, settings):
    settings.ENCRYPTION_BACKUP_PG_BINDIR = str(tmp_path)
    with pytest.raises(BackupError, match="pg_dump is not in ENCRYPTION_BACKUP_PG_BINDIR"):
        backup_create(output=tmp_path / "x.nvbak")
    assert not (tmp_path / "x.nvbak").exists()


@pytest.mark.postgresql
def test_pg_dump_failure_is_reported_with_its_message(seeded, tmp_path, settings):
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "pg_dump"
    script.write_text("#!/bin/sh\necho 'pg_dump: error: server version mismatch' >&2\nexit 1\n")
    script.chmod(0o700)
    settings.ENCRYPTION_BACKUP_PG_BINDIR = str(fake)
    with pytest.raises(BackupError, match="pg_dump failed \\(exit status 1\\): pg_dump: error: server version"):
        backup_create(output=tmp_path / "x.nvbak")
    assert not (tmp_path / "x.nvbak").exists()


@pytest.mark.postgresql
def test_no_password_on_the_command_line(seeded, tmp_path, settings):
    """pg_dump gets the password from a private .pgpass, never from its arguments."""
    fake = tmp_path / "bin"
    fake.mkdir()
    seen = tmp_path / "seen.json"
    script = fake / "pg_dump"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, stat, sys\n"
        "passfile = os.environ.get('PGPASSFILE', '')\n"
        f"json.dump({{'argv': sys.argv, 'pgpassword': os.environ.get('PGPASSWORD'), 'passfile_path': passfile, "
        "'passfile_mode': oct(stat.S_IMODE(os.stat(passfile).st_mode)) if passfile else None, "
        f"'passfile': open(passfile).read() if passfile else ''}}, open({str(seen)!r}, 'w'))\n"
        "sys.stdout.buffer.write(b'PGDMP fake dump')\n"
    )
    script.chmod(0o700)
    settings.ENCRYPTION_BACKUP_PG_BINDIR = str(fake)
    backup_create(output=tmp_path / "x.nvbak")
    observed = json.loads(seen.read_text())
    password = connection.settings_dict["PASSWORD"]
    assert password
    assert not any(password in argument for argument in observed["argv"])
    assert observed["pgpassword"] is None
    assert observed["passfile_mode"] == "0o600"
    assert password in observed["passfile"]
    assert not Path(observed["passfile_path"]).exists()  # removed with its private folder


# --- Commands ------------------------------------------------------------------------------
@pytest.mark.audit_coverage("system.backup_created", "system.backup_verified")
def test_commands_back_up_and_verify(seeded, tmp_path):
    out = io.StringIO()
    path = tmp_path / "cli.nvbak"
    call_command("backup_database", "--output", str(path), "--no-progress", stdout=out)
    assert "Backup written" in out.getvalue() and "key id dev-backup" in out.getvalue()
    out = io.StringIO()
    call_command("verify_backup", str(path), "--no-progress", stdout=out)
    assert "Backup verified" in out.getvalue()
    assert "testapp.SecretRecord:" in out.getvalue()


@pytest.mark.audit_coverage("system.backup_failed")
def test_verify_command_fails_with_a_clear_message(backup_file):
    backup_file.write_bytes(backup_file.read_bytes()[:-7])
    with pytest.raises(CommandError, match="Backup verification failed: good.nvbak is truncated"):
        call_command("verify_backup", str(backup_file), "--no-progress")


def test_verify_command_prints_no_traceback(backup_file):
    """From the shell: exit status 1, one line naming the problem, no Python traceback."""
    data = bytearray(backup_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup_file.write_bytes(bytes(data))
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": servers.test_database_url(),
        "DATABASE_POOL": "false",
        "TEST_VAR_DIR": str(backup_file.parent),
    }
    completed = subprocess.run(
        [sys.executable, "manage.py", "verify_backup", str(backup_file), "--no-progress"],
        cwd=servers.PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1
    assert "CommandError: Backup verification failed: good.nvbak failed authentication at chunk" in completed.stderr
    assert "Traceback" not in completed.stderr


# --- The daily job -------------------------------------------------------------------------
def test_daily_job_creates_verifies_and_keeps_the_newest(seeded, settings, tmp_path):
    directory = Path(settings.ENCRYPTION_BACKUP_DIR)
    settings.ENCRYPTION_BACKUP_KEEP = 2
    # apply(), not delay().get(): the eager result must not depend on Celery's process-wide
    # "inside a task" flag, which a test elsewhere may leave set.
    results = [backup_and_verify.apply().get(disable_sync_subtasks=False) for _ in range(3)]
    kept = sorted(path.name for path in directory.iterdir())
    assert len(kept) == 2
    assert kept == sorted(result["file"] for result in results[1:])
    assert results[2]["pruned"] == [results[0]["file"]]
    assert (directory.stat().st_mode & 0o777) == 0o700
    assert all(name.startswith("backup-") and name.endswith(f"-{connection.vendor}.nvbak") for name in kept)
    assert len(_events(Action.BACKUP_CREATED)) == 3
    assert len(_events(Action.BACKUP_VERIFIED)) == 3


def test_daily_job_keeps_a_failed_backup_aside_and_prunes_nothing(seeded, settings, monkeypatch):
    directory = Path(settings.ENCRYPTION_BACKUP_DIR)
    settings.ENCRYPTION_BACKUP_KEEP = 1
    backup_create_and_verify()
    [good] = list(directory.iterdir())

    backend = postgresql if connection.vendor == "postgresql" else sqlite
    real = backend.table_row_counts
    calls = []

    def overcount_when_dumping(database):
        counts = real(database)
        calls.append(1)
        if len(calls) == 1:
            counts["testapp_secretrecord"] += 1
        return counts

    monkeypatch.setattr(backend, "table_row_counts", overcount_when_dumping)
    with pytest.raises(BackupError, match="Row counts differ"):
        backup_and_verify.apply()
    names = sorted(path.name for path in directory.iterdir())
    assert good.name in names
    [failed] = [n for n in names if n.endswith(".failed")]
    assert failed.endswith(".nvbak.failed")
    assert _events(Action.BACKUP_FAILED)[-1].context["stage"] == "row-counts"


def test_prune_touches_only_backups(tmp_path):
    directory = tmp_path / "backups"
    directory.mkdir()
    for name in ("backup-1.nvbak", "backup-2.nvbak", "backup-3.nvbak", "backup-0.nvbak.failed", "notes.txt"):
        (directory / name).write_text("x")
    removed = backup_prune(directory=directory, keep=2)
    assert [path.name for path in removed] == ["backup-1.nvbak"]
    assert sorted(path.name for path in directory.iterdir()) == [
        "backup-0.nvbak.failed",
        "backup-2.nvbak",
        "backup-3.nvbak",
        "notes.txt",
    ]
    with pytest.raises(ValueError, match="at least 1"):
        backup_prune(directory=directory, keep=0)


def test_the_daily_job_is_on_the_beat_schedule():
    from config.celery import app
    from monitoring.schedule import BEAT_SCHEDULE

    [entry] = [entry for entry in BEAT_SCHEDULE.values() if entry["task"] == "encryption.backup_and_verify"]
    assert "daily" in entry["description"]
    assert "encryption.backup_and_verify" in app.tasks


@pytest.mark.postgresql
def test_pg_dump_compression_is_a_setting(seeded, tmp_path, settings):
    settings.ENCRYPTION_BACKUP_PG_COMPRESSION = 6
    compressed = backup_create(output=tmp_path / "z6.nvbak")
    settings.ENCRYPTION_BACKUP_PG_COMPRESSION = 0
    plain = backup_create(output=tmp_path / "z0.nvbak")
    assert compressed.dump_bytes < plain.dump_bytes
    assert backup_verify(path=tmp_path / "z6.nvbak").rows_checked == sum(compressed.manifest["tables"].values())
    settings.ENCRYPTION_BACKUP_PG_COMPRESSION = 12
    with pytest.raises(BackupError, match="gzip level from 0 to 9"):
        backup_create(output=tmp_path / "z12.nvbak")
