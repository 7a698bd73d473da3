"""``encryption_keys generate|status``."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from encryption.keyring import parse_key_ring
from tests.encryption.helpers import legacy_token, make_key, ring, set_raw_value
from tests.testapp.models import EncryptedMemory, SecretRecord


def _call(*args) -> str:
    out = StringIO()
    call_command("encryption_keys", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_generate_prints_one_new_valid_key_each_time(caplog):
    first = _call("generate").strip()
    second = _call("generate", "--id", "2026-rotation").strip()
    parsed = parse_key_ring(first, purpose="field", source="generate")
    assert len(parsed.primary.material) == 32
    assert second.startswith("2026-rotation:")
    assert first.split(":")[1] != second.split(":")[1]
    assert first.split(":")[1] not in caplog.text, "the key is printed, never logged"


def test_generate_refuses_a_bad_id():
    with pytest.raises(CommandError):
        _call("generate", "--id", "bad id")


@pytest.mark.django_db
def test_status_counts_rows_per_key_without_decrypting(settings, legacy_key):
    SecretRecord.objects.create(note="a", email="a@example.org")
    SecretRecord.objects.create(note="b")
    settings.ENCRYPTION_FIELD_KEYS = ring(make_key("new"), settings.ENCRYPTION_FIELD_KEYS)
    EncryptedMemory.objects.create(title="t", content="c", metadata={})
    legacy_row = SecretRecord.objects.create(label="legacy")
    set_raw_value(SecretRecord, legacy_row.pk, "note", legacy_token("EncryptedTextField", "old"))

    report = json.loads(_call("status", "--json"))
    field = report["purposes"]["field"]
    assert field["keys"] == ["new", "dev-field"]
    assert field["rows"] == {"dev-field": 3, "new": 2, "legacy-fernet": 1}
    assert field["columns"]["testapp.SecretRecord.note"] == {"dev-field": 2, "legacy-fernet": 1}
    assert field["columns"]["testapp.EncryptedMemory.content"] == {"new": 1}
    assert field["retirable"] == []
    assert report["purposes"]["blind_index"]["rows"] == {"dev-blind-index": 1}
    assert "rows" not in report["purposes"]["backup"]

    text = _call("status")
    assert "legacy Fernet" in text
    assert "primary" in text and "older (reads only)" in text


@pytest.mark.django_db
def test_status_shows_a_retired_key_that_still_has_rows_as_unreadable(settings):
    SecretRecord.objects.create(note="a")
    settings.ENCRYPTION_FIELD_KEYS = make_key("replacement")
    report = json.loads(_call("status", "--json", "--purpose", "field"))
    assert report["purposes"]["field"]["unreadable"] == {"dev-field": 1}
    assert "NOT IN THE RING" in _call("status", "--purpose", "field")


@pytest.mark.django_db
def test_status_marks_keys_with_zero_rows_as_retirable(settings):
    settings.ENCRYPTION_FIELD_KEYS = ring(make_key("new"), settings.ENCRYPTION_FIELD_KEYS)
    SecretRecord.objects.create(note="a")
    report = json.loads(_call("status", "--json", "--purpose", "field"))
    assert report["purposes"]["field"]["retirable"] == ["dev-field"]
    assert "may be removed" in _call("status", "--purpose", "field")


@pytest.mark.django_db
def test_status_reports_a_broken_ring_and_fails(settings):
    settings.ENCRYPTION_BACKUP_KEYS = ""
    with pytest.raises(CommandError):
        _call("status", "--purpose", "backup")
