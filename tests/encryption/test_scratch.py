"""Decrypted scratch data lives only in a private folder, and a killed run's leftovers are removed.

``kill -9`` of ``verify_backup`` used to leave a decrypted copy of the database in the system's
temporary folder (SQLite), or a scratch database and a password file (PostgreSQL).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import pytest
from django.db import connection

from encryption.backups import backup_create, backup_verify
from encryption.backups.private_files import (
    OWNER_LOCK,
    SCRATCH_DATABASE_FILE,
    private_directory,
    scratch_root,
)
from tests.testapp.models import SecretRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _folders(settings, tmp_path):
    settings.AUDIT_DIR = str(tmp_path / "audit")
    settings.ENCRYPTION_SCRATCH_DIR = str(tmp_path / "var" / "scratch")


def _dead_run(name: str, files: dict[str, bytes]) -> Path:
    """The folder a run killed with SIGKILL leaves: its files and a lock nobody holds."""
    folder = scratch_root() / name
    folder.mkdir(parents=True, mode=0o700)
    (folder / OWNER_LOCK).write_text("12345\n")
    for file_name, content in files.items():
        (folder / file_name).write_bytes(content)
    return folder


def test_scratch_folders_are_private_and_not_in_the_shared_temporary_folder(settings):
    with private_directory("ninaivalaigal-verify-") as private:
        assert private.parent == Path(settings.ENCRYPTION_SCRATCH_DIR)
        assert (private.stat().st_mode & 0o777) == 0o700
        assert (private.parent.stat().st_mode & 0o777) == 0o700
        assert private.parent != Path(tempfile.gettempdir())
    assert not private.exists()


def test_the_default_scratch_root_is_under_var_dir(settings):
    settings.ENCRYPTION_SCRATCH_DIR = ""
    assert scratch_root() == Path(settings.VAR_DIR) / "scratch"


def test_a_loose_scratch_root_is_made_private_again(settings):
    root = Path(settings.ENCRYPTION_SCRATCH_DIR)
    root.mkdir(parents=True)
    os.chmod(root, 0o755)  # noqa: S103 - the loose mode under test
    with private_directory("x-"):
        assert (root.stat().st_mode & 0o777) == 0o700


def test_a_dead_runs_decrypted_copy_is_removed_at_the_next_backup_command(tmp_path):
    SecretRecord.objects.create(label="a", note="secret note")
    dead = _dead_run("ninaivalaigal-verify-dead1", {"restore.sqlite3": b"SQLite format 3\x00 decrypted rows"})
    with private_directory("ninaivalaigal-verify-") as alive:
        backup_create(output=tmp_path / "b.nvbak")
        assert not dead.exists(), "the dead run's decrypted copy is gone"
        assert alive.exists(), "a live run's folder (its lock is held) is left alone"
    dead = _dead_run("ninaivalaigal-verify-dead2", {"pgpass": b"*:*:*:*:pw\n"})
    backup_verify(path=tmp_path / "b.nvbak")
    assert not dead.exists()
    assert list(scratch_root().iterdir()) == []


def test_a_folder_without_a_lock_is_kept_while_its_run_may_be_starting():
    folder = scratch_root() / "ninaivalaigal-verify-starting"
    folder.mkdir(parents=True)
    from encryption.backups.services import scratch_cleanup

    assert scratch_cleanup() == []
    assert folder.exists()
    old = 1_000_000_000
    os.utime(folder, (old, old))
    assert scratch_cleanup() == ["ninaivalaigal-verify-starting"]
    assert not folder.exists()


@pytest.mark.postgresql
def test_a_dead_runs_scratch_database_is_dropped(tmp_path):
    from psycopg import sql

    name = f"nv_verify_20260101000000_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string(cursor.connection))
    dead = _dead_run("ninaivalaigal-verify-deadpg", {SCRATCH_DATABASE_FILE: name.encode(), "pgpass": b"x"})
    from encryption.backups.services import scratch_cleanup

    assert scratch_cleanup() == ["ninaivalaigal-verify-deadpg"]
    assert not dead.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name])
        assert cursor.fetchone()[0] == 0


def test_a_leftover_naming_another_database_drops_nothing():
    dead = _dead_run("ninaivalaigal-verify-forged", {SCRATCH_DATABASE_FILE: b"ninaivalaigal", "restore.sqlite3": b"x"})
    from encryption.backups.services import scratch_cleanup

    assert scratch_cleanup() == []
    assert sorted(child.name for child in dead.iterdir()) == [OWNER_LOCK, SCRATCH_DATABASE_FILE]
