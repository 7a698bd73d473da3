"""``restore_backup``: back up, destroy (a new, empty database), restore, compare everything.

The README promised a restore step that did not exist (issue #14): an encrypted backup could
only be restored by writing code against ``BackupReader``.
"""

from __future__ import annotations

import datetime
import io
import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from encryption.backups import BackupError, backup_create, backup_restore
from memories.models import Context, Memory
from tests.encryption.helpers import make_key
from tests.support import servers
from tests.testapp.models import EncryptedMemory, SecretRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _folders(settings, tmp_path):
    settings.AUDIT_DIR = str(tmp_path / "audit")
    settings.ENCRYPTION_SCRATCH_DIR = str(tmp_path / "scratch")


@pytest.fixture
def seeded(django_user_model):
    owner = django_user_model.objects.create_user(username="olga", email="olga@example.test", password="x" * 20)
    context = Context.objects.create(name="Scratchpad", scope="personal", owner_user=owner, created_by=owner)
    for index in range(12):
        Memory.objects.create(
            context=context,
            author=owner,
            content=f"memory {index}: remember the café ☕ " * (index + 1),
            metadata={"index": index, "tags": ["a", "b"][: index % 3]},
        )
    SecretRecord.objects.bulk_create(
        SecretRecord(
            label=f"row {index}",
            note=f"note {index}",
            email=f"p{index}@example.org",
            metadata={"i": index},
            birthday=datetime.date(1980, 1, 1) + datetime.timedelta(days=index),
            score=index,
        )
        for index in range(30)
    )
    EncryptedMemory.objects.bulk_create(EncryptedMemory(title=f"m{i}", content=f"content {i}") for i in range(5))


# --- reading every table of a database, outside Django ---------------------------------------
def _sqlite_tables(path: Path) -> dict[str, list[tuple]]:
    database = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = [
            row[0]
            for row in database.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {name: sorted(database.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr) for name in names}  # noqa: S608
    finally:
        database.close()


def _pg_url(name: str) -> str:
    settings_dict = connection.settings_dict
    user = quote(settings_dict["USER"] or "", safe="")
    password = quote(settings_dict["PASSWORD"] or "", safe="")
    return f"postgres://{user}:{password}@{settings_dict['HOST']}:{settings_dict['PORT']}/{name}"


def _pg_tables(name: str) -> dict[str, list[str]]:
    import psycopg
    from psycopg import sql

    settings_dict = connection.settings_dict
    with psycopg.connect(
        dbname=name,
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"],
        host=settings_dict["HOST"],
        port=settings_dict["PORT"],
    ) as database:
        tables = [
            row[0]
            for row in database.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        return {
            table: [
                row[0]
                for row in database.execute(
                    sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1").format(sql.Identifier(table))
                ).fetchall()
            ]
            for table in tables
        }


def _raw(fetch, table: str, column: str) -> dict[int, str]:
    return dict(fetch(f'SELECT id, "{column}" FROM "{table}"'))  # noqa: S608


def _assert_memories_readable(fetch) -> None:
    """Every memory's content and metadata, decrypted from the restored copy, equals the original."""
    content_field = Memory._meta.get_field("content")
    metadata_field = Memory._meta.get_field("metadata")
    contents = _raw(fetch, "memories_memory", "content")
    metadata = _raw(fetch, "memories_memory", "metadata")
    originals = list(Memory.objects.all())
    assert len(originals) == len(contents) == 12
    for memory in originals:
        assert content_field.decrypt_token(contents[memory.pk]) == memory.content
        assert metadata_field.decrypt_token(metadata[memory.pk]) == memory.metadata
    notes = _raw(fetch, "testapp_secretrecord", "note")
    for record in SecretRecord.objects.all():
        assert SecretRecord._meta.get_field("note").decrypt_token(notes[record.pk]) == record.note


def _source_sqlite() -> Path:
    return Path(connection.settings_dict["NAME"])


# --- the round trip ------------------------------------------------------------------------------
@pytest.mark.audit_coverage("system.backup_restored")
def test_round_trip_on_sqlite(seeded, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite round trip (the PostgreSQL one is below)")
    before = _sqlite_tables(_source_sqlite())
    backup = tmp_path / "b.nvbak"
    backup_create(output=backup)
    target = tmp_path / "new" / "restored.sqlite3"
    target.parent.mkdir()

    out, err = io.StringIO(), io.StringIO()
    call_command("restore_backup", str(backup), "--sqlite-file", str(target), stdout=out, stderr=err)

    assert "Backup restored: " in out.getvalue() and "into sqlite file restored.sqlite3" in out.getvalue()
    assert "restoring" in err.getvalue() and "authenticating" in err.getvalue(), "progress bars on stderr"
    assert _sqlite_tables(target) == before, "every table's rows, exactly"
    database = sqlite3.connect(target)
    try:
        _assert_memories_readable(lambda query: database.execute(query).fetchall())
    finally:
        database.close()
    [event] = AuditEvent.objects.filter(action=Action.BACKUP_RESTORED)
    assert event.outcome == Outcome.SUCCESS and event.context["target"] == "sqlite file restored.sqlite3"
    assert str(tmp_path) not in str(event.context)
    assert list(target.parent.iterdir()) == [target], "no partial file left beside it"


@pytest.mark.postgresql
def test_round_trip_on_postgresql(seeded, tmp_path):
    import psycopg

    before = _pg_tables(connection.settings_dict["NAME"])
    backup = tmp_path / "b.nvbak"
    created = backup_create(output=backup)
    assert created.manifest["table_digests"]["tables"]["memories_memory"].startswith("12:")
    name = f"nv_restore_test_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        out = io.StringIO()
        call_command("restore_backup", str(backup), "--database-url", _pg_url(name), "--no-progress", stdout=out)
        assert f"into database {name} on" in out.getvalue()
        assert "table digests match" in out.getvalue()
        assert _pg_tables(name) == before, "every table's rows, exactly"
        settings_dict = connection.settings_dict
        with psycopg.connect(
            dbname=name,
            user=settings_dict["USER"],
            password=settings_dict["PASSWORD"],
            host=settings_dict["HOST"],
            port=settings_dict["PORT"],
        ) as restored:
            _assert_memories_readable(lambda query: restored.execute(query).fetchall())
        # Not empty any more: a second restore is refused, and changes nothing.
        with pytest.raises(
            CommandError, match=r"Restore failed: The target database nv_restore_test_\w+ on .* is not empty"
        ):
            call_command("restore_backup", str(backup), "--database-url", _pg_url(name), "--no-progress")
        # With --force the backup's tables are replaced, in one transaction.
        call_command(
            "restore_backup", str(backup), "--database-url", _pg_url(name), "--force", "--no-progress", stdout=out
        )
        assert _pg_tables(name) == before
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgresql
@pytest.mark.audit_coverage("system.backup_failed")
def test_an_unreachable_postgresql_target_is_one_clear_error(seeded, tmp_path):
    backup = tmp_path / "b.nvbak"
    backup_create(output=backup)
    port = servers.free_port()
    with pytest.raises(CommandError) as caught:
        call_command(
            "restore_backup",
            str(backup),
            "--database-url",
            f"postgres://u:pw-secret@127.0.0.1:{port}/x",
            "--no-progress",
        )
    message = str(caught.value)
    assert message.startswith(f"Restore failed: Cannot connect to the target database x on 127.0.0.1:{port}")
    assert "pw-secret" not in message
    [event] = AuditEvent.objects.filter(action=Action.BACKUP_FAILED)
    assert event.context["operation"] == "restore" and event.context["stage"] == "target"
    assert "pw-secret" not in str(event.context)


# --- bad input: one clear error, nothing written ----------------------------------------------
@pytest.fixture
def sqlite_backup(seeded, tmp_path) -> Path:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite backups (PostgreSQL's are tested above)")
    backup = tmp_path / "b.nvbak"
    backup_create(output=backup)
    return backup


def _restore_fails(backup: Path, target: Path, *, message: str, stage: str, force: bool = False) -> None:
    before = target.read_bytes() if target.exists() else None
    with pytest.raises(BackupError) as caught:
        backup_restore(path=backup, sqlite_file=target, force=force)
    assert message in str(caught.value)
    assert caught.value.stage == stage
    assert (target.read_bytes() if target.exists() else None) == before, "the target is as it was"
    assert not list(target.parent.glob(".*.restoring"))
    event = AuditEvent.objects.filter(action=Action.BACKUP_FAILED).order_by("-id").first()
    assert event.context["operation"] == "restore" and event.context["stage"] == stage


def test_a_missing_file(tmp_path):
    _restore_fails(tmp_path / "nope.nvbak", tmp_path / "t.sqlite3", message="nope.nvbak does not exist.", stage="open")


def test_a_damaged_file_is_refused_before_the_target_is_touched(sqlite_backup, tmp_path):
    data = bytearray(sqlite_backup.read_bytes())
    data[len(data) // 2] ^= 0x01
    sqlite_backup.write_bytes(bytes(data))
    _restore_fails(sqlite_backup, tmp_path / "t.sqlite3", message="failed authentication at chunk", stage="decrypt")
    assert not (tmp_path / "t.sqlite3").exists()


def test_a_truncated_file(sqlite_backup, tmp_path):
    sqlite_backup.write_bytes(sqlite_backup.read_bytes()[:-40])
    _restore_fails(sqlite_backup, tmp_path / "t.sqlite3", message="is truncated", stage="decrypt")


def test_a_wrong_key(sqlite_backup, tmp_path, settings):
    settings.ENCRYPTION_BACKUP_KEYS = make_key("dev-backup")  # same id, other material
    _restore_fails(sqlite_backup, tmp_path / "t.sqlite3", message="failed authentication at chunk 0", stage="decrypt")
    settings.ENCRYPTION_BACKUP_KEYS = make_key("another")
    _restore_fails(sqlite_backup, tmp_path / "t.sqlite3", message="which is not in the backup key ring", stage="key")


def test_a_non_empty_target_is_refused_unless_forced(sqlite_backup, tmp_path):
    target = tmp_path / "t.sqlite3"
    database = sqlite3.connect(target)
    database.execute("CREATE TABLE precious (id INTEGER PRIMARY KEY)")
    database.commit()
    database.close()
    _restore_fails(sqlite_backup, target, message="The target t.sqlite3 is not empty (1 tables)", stage="target")
    with pytest.raises(CommandError, match="pass --force to replace it"):
        call_command("restore_backup", str(sqlite_backup), "--sqlite-file", str(target), "--no-progress")
    (tmp_path / "t.sqlite3-wal").write_bytes(b"stale wal of the old file")
    call_command(
        "restore_backup",
        str(sqlite_backup),
        "--sqlite-file",
        str(target),
        "--into-non-empty",
        "--no-progress",
        stdout=io.StringIO(),
    )
    assert "precious" not in _sqlite_tables(target)
    assert not (tmp_path / "t.sqlite3-wal").exists(), "the old file's WAL does not outlive it"


def test_a_target_in_a_missing_folder(sqlite_backup, tmp_path):
    _restore_fails(
        sqlite_backup,
        tmp_path / "no" / "t.sqlite3",
        message="The folder for the target t.sqlite3 does not exist",
        stage="target",
    )


def test_a_sqlite_backup_into_a_database_url_is_refused(sqlite_backup):
    with pytest.raises(CommandError, match="is a SQLite backup: it restores into a file"):
        call_command(
            "restore_backup", str(sqlite_backup), "--database-url", "postgres://u@127.0.0.1/x", "--no-progress"
        )


def test_an_empty_database_url_is_refused(sqlite_backup):
    with pytest.raises(CommandError, match="--database-url is empty"):
        call_command("restore_backup", str(sqlite_backup), "--database-url", "", "--no-progress")


def test_the_command_prints_one_line_and_no_traceback(sqlite_backup, tmp_path):
    """From the shell: exit status 1, one line naming the problem, no Python traceback."""
    target = tmp_path / "t.sqlite3"
    sqlite3.connect(target).execute("CREATE TABLE x (id INTEGER)").connection.close()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": servers.test_database_url(),
        "DATABASE_POOL": "false",
        "TEST_VAR_DIR": str(tmp_path),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "restore_backup",
            str(sqlite_backup),
            "--sqlite-file",
            str(target),
            "--no-progress",
        ],
        cwd=servers.PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1
    assert "CommandError: Restore failed: The target t.sqlite3 is not empty (1 tables)" in completed.stderr
    assert "Traceback" not in completed.stderr
