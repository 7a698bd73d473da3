"""Retiring a key never silently breaks earlier backups and archives (issue #14).

``encryption_keys status`` said "0 rows: may be removed" while the kept backups still needed the
key. It now lists every backup and audit archive that depends on each key id, and ``retire``
refuses a key still needed unless ``--force`` (recorded as forced).
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.actions import Action
from audit.models import AuditEvent
from encryption.backups import backup_create
from encryption.services import encryption_keys_rotate
from tests.encryption.helpers import make_key, ring
from tests.testapp.models import SecretRecord

pytestmark = pytest.mark.django_db(transaction=True)

PURPOSE_SETTINGS = {
    "field": "ENCRYPTION_FIELD_KEYS",
    "blind_index": "ENCRYPTION_BLIND_INDEX_KEYS",
    "audit_chain": "ENCRYPTION_AUDIT_CHAIN_KEYS",
    "backup": "ENCRYPTION_BACKUP_KEYS",
    "audit_archive": "ENCRYPTION_AUDIT_ARCHIVE_KEYS",
    "audit_checkpoint": "ENCRYPTION_AUDIT_CHECKPOINT_KEYS",
}


@pytest.fixture(autouse=True)
def _folders(settings, tmp_path):
    settings.AUDIT_DIR = str(tmp_path / "audit")
    settings.ENCRYPTION_BACKUP_DIR = str(tmp_path / "backups")
    settings.ENCRYPTION_SCRATCH_DIR = str(tmp_path / "scratch")
    (tmp_path / "backups").mkdir()


def _status(*purposes: str) -> dict:
    out = StringIO()
    arguments = ["status", "--json"]
    for purpose in purposes:
        arguments += ["--purpose", purpose]
    call_command("encryption_keys", *arguments, stdout=out)
    return json.loads(out.getvalue())["purposes"]


def _backup(settings, name: str = "nightly.nvbak") -> Path:
    path = Path(settings.ENCRYPTION_BACKUP_DIR) / name
    backup_create(output=path)
    return path


def test_status_lists_the_backups_that_need_a_field_key_with_no_rows_left(settings):
    SecretRecord.objects.create(label="a", note="n")
    backup = _backup(settings)
    settings.ENCRYPTION_FIELD_KEYS = ring(make_key("field-2"), settings.ENCRYPTION_FIELD_KEYS)
    assert encryption_keys_rotate().complete

    field = _status("field")["field"]
    assert field["rows"].get("dev-field", 0) == 0, "no row is under the old key any more"
    assert field["needed_by"]["dev-field"]["backups"] == [backup.name]
    assert "dev-field" not in field["retirable"], "a backup still needs it"

    out = StringIO()
    call_command("encryption_keys", "status", "--purpose", "field", stdout=out)
    text = out.getvalue()
    assert "may be removed" not in text
    assert f"needed by 1 backups ({backup.name})" in text and "still needed: keep it" in text


def test_status_lists_the_backups_of_a_backup_key_and_the_archives_of_an_archive_key(settings, tmp_path):
    backup = _backup(settings)
    settings.ENCRYPTION_BACKUP_KEYS = ring(make_key("backup-2"), settings.ENCRYPTION_BACKUP_KEYS)
    archive_dir = tmp_path / "audit" / "archive"
    archive_dir.mkdir(parents=True)
    manifest = {
        "format": "audit-archive/v2",
        "encryption": {"key_id": "dev-audit-archive"},
        "key_id": "dev-audit-chain",
    }
    (archive_dir / "audit-1-9-x.jsonl.gz.nvarc.manifest.json").write_text(json.dumps(manifest))

    report = _status("backup", "audit_archive", "audit_chain")
    assert report["backup"]["needed_by"]["dev-backup"]["backups"] == [backup.name]
    assert report["audit_archive"]["needed_by"]["dev-audit-archive"]["archives"] == ["audit-1-9-x.jsonl.gz.nvarc"]
    assert report["audit_chain"]["needed_by"]["dev-audit-chain"]["archives"] == ["audit-1-9-x.jsonl.gz.nvarc"]
    assert report["audit_chain"]["needed_by"]["dev-audit-chain"]["audit_events"] > 0, "the chain's own MACs"


def test_retiring_a_key_a_backup_needs_is_refused_unless_forced_and_forcing_is_audited(settings):
    backup = _backup(settings)
    settings.ENCRYPTION_BACKUP_KEYS = ring(make_key("backup-2"), settings.ENCRYPTION_BACKUP_KEYS)

    with pytest.raises(CommandError) as caught:
        call_command("encryption_keys", "retire", "backup", "dev-backup", stdout=StringIO())
    assert str(caught.value) == (
        f"The backup key 'dev-backup' is still needed by 1 backups ({backup.name}); retiring it would make them "
        "unreadable. Rotate (rows), let the backups and archives age out, or pass --force."
    )
    assert not AuditEvent.objects.filter(action=Action.KEY_RETIRED).exists()

    err = StringIO()
    call_command("encryption_keys", "retire", "backup", "dev-backup", "--force", stdout=StringIO(), stderr=err)
    assert "Forced" in err.getvalue()
    [event] = AuditEvent.objects.filter(action=Action.KEY_RETIRED)
    assert event.context["forced"] is True and event.context["backups"] == [backup.name]
    assert event.context["purpose"] == "backup" and event.context["key_id"] == "dev-backup"


def test_the_primary_key_is_never_retired():
    with pytest.raises(CommandError, match="is the primary field key"):
        call_command("encryption_keys", "retire", "field", "dev-field", "--force")


@pytest.mark.audit_coverage("system.key_retired")
def test_a_key_nothing_needs_is_retired_and_removed_from_its_file(settings, tmp_path):
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    for purpose, setting in PURPOSE_SETTINGS.items():
        (keys_dir / purpose).write_text(getattr(settings, setting).replace(",", "\n") + "\n")
    new_key = make_key("field-2")
    (keys_dir / "field").write_text(f"# primary first\n{new_key}\n{settings.ENCRYPTION_FIELD_KEYS}\n")
    settings.ENCRYPTION_KEY_PROVIDER = "file"
    settings.ENCRYPTION_KEYS_DIR = str(keys_dir)

    out = StringIO()
    call_command("encryption_keys", "retire", "field", "dev-field", stdout=out)

    assert "removed from its key-ring file" in out.getvalue()
    assert (keys_dir / "field").read_text() == f"# primary first\n{new_key}\n"
    assert ((keys_dir / "field").stat().st_mode & 0o777) == 0o600
    [event] = AuditEvent.objects.filter(action=Action.KEY_RETIRED)
    assert event.context["forced"] is False and event.context["rows"] == 0
    assert new_key.partition(":")[2] not in json.dumps(event.context)


def test_an_unknown_key_is_one_clear_error():
    with pytest.raises(CommandError, match="The field key ring has no key 'nope'."):
        call_command("encryption_keys", "retire", "field", "nope")
