"""Rotation with odd legacy values: one bad value never blocks the rest, and failure alerts.

Found by the data-integrity check of issue #14: a legacy Fernet value whose plaintext is JSON
``null`` in a NOT NULL column rolled the whole batch back on every run, and legacy metadata stored
as Python ``str(dict)`` could not be read or rotated.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from encryption.crypto import token_key_id
from monitoring.models import Alert
from monitoring.services.detection import detection_run_for_event
from tests.encryption.helpers import legacy_module, make_key, raw_value, ring, set_raw_value
from tests.testapp.models import EncryptedMemory, SecretRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def new_primary(settings):
    settings.ENCRYPTION_FIELD_KEYS = ring(make_key("field-2"), settings.ENCRYPTION_FIELD_KEYS)
    settings.ENCRYPTION_BLIND_INDEX_KEYS = ring(make_key("bi-2"), settings.ENCRYPTION_BLIND_INDEX_KEYS)


def _legacy(plaintext: str) -> str:
    """What django-encrypted-model-fields stored for ``plaintext`` (it encrypted ``str(value)``)."""
    return legacy_module().encrypt_str(plaintext).decode("utf-8")


def _memories(count: int) -> list[EncryptedMemory]:
    return EncryptedMemory.objects.bulk_create(
        EncryptedMemory(title=f"m{index}", content=f"content {index}", metadata={"i": index}) for index in range(count)
    )


def test_a_legacy_json_null_in_a_not_null_column_is_reported_and_the_rest_converts(legacy_key, new_primary):
    memories = _memories(5)
    victim = memories[2]
    legacy_null = _legacy("null")
    set_raw_value(EncryptedMemory, victim.pk, "metadata", legacy_null)
    set_raw_value(EncryptedMemory, memories[3].pk, "metadata", _legacy('{"legacy": true}'))

    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("rotate_encryption_keys", "--no-progress", "--batch-size", "10", stdout=out, stderr=StringIO())

    assert str(caught.value) == (
        "Rotation finished with 1 values left as they were (listed above); resolve them as described, then run "
        "rotate_encryption_keys again."
    )
    assert raw_value(EncryptedMemory, victim.pk, "metadata") == legacy_null, "left as it was"
    for memory in memories:
        assert token_key_id(raw_value(EncryptedMemory, memory.pk, "content")) == "field-2"
        if memory.pk != victim.pk:
            assert token_key_id(raw_value(EncryptedMemory, memory.pk, "metadata")) == "field-2"
    assert EncryptedMemory.objects.get(pk=memories[3].pk).metadata == {"legacy": True}
    text = out.getvalue()
    assert (
        f"testapp.EncryptedMemory row {victim.pk}, column metadata: the legacy value decrypts to null but the "
        "column is NOT NULL" in text
    )
    assert "How to resolve what is left" in text
    assert "Model.objects.filter(pk=ROW).update(COLUMN=...)" in text

    # Resolving it as the command says, the next run finishes.
    EncryptedMemory.objects.filter(pk=victim.pk).update(metadata={})
    out = StringIO()
    call_command("rotate_encryption_keys", "--no-progress", stdout=out, stderr=StringIO())
    assert "Rotation finished" in out.getvalue()


def test_legacy_metadata_stored_as_a_python_dict_reads_and_rotates(legacy_key, new_primary):
    [record, other] = SecretRecord.objects.bulk_create([SecretRecord(label="a"), SecretRecord(label="b")])
    set_raw_value(SecretRecord, record.pk, "metadata", _legacy(str({"tags": ["x", "y"], "pinned": True, "n": None})))
    set_raw_value(SecretRecord, other.pk, "metadata", _legacy(str([1, 2.5, "three"])))

    assert SecretRecord.objects.get(pk=record.pk).metadata == {"tags": ["x", "y"], "pinned": True, "n": None}

    from encryption.services import encryption_keys_rotate

    result = encryption_keys_rotate()
    assert result.complete
    assert token_key_id(raw_value(SecretRecord, record.pk, "metadata")) == "field-2"
    assert SecretRecord.objects.get(pk=record.pk).metadata == {"tags": ["x", "y"], "pinned": True, "n": None}
    assert SecretRecord.objects.get(pk=other.pk).metadata == [1, 2.5, "three"]


def test_a_legacy_value_that_is_neither_json_nor_a_literal_is_reported_not_run(legacy_key, new_primary):
    """``str(dict)`` holding an object (a call) is refused: literal_eval never runs code."""
    records = SecretRecord.objects.bulk_create([SecretRecord(label=str(index)) for index in range(3)])
    odd = _legacy("{'when': __import__('os').getcwd()}")
    set_raw_value(SecretRecord, records[1].pk, "metadata", odd)

    from encryption.services import encryption_keys_rotate

    result = encryption_keys_rotate(batch_size=1)
    assert result.values_failed == 1
    [problem] = result.problems
    assert (problem.model, problem.pk, problem.column) == ("testapp.SecretRecord", str(records[1].pk), "metadata")
    assert "not a valid EncryptedJSONField value" in problem.reason
    assert raw_value(SecretRecord, records[1].pk, "metadata") == odd
    assert result.rows_scanned >= 3, "the rows after the bad one were read too"


def test_values_left_record_key_rotation_failed_and_raise_the_alert(legacy_key, new_primary):
    [memory] = _memories(1)
    set_raw_value(EncryptedMemory, memory.pk, "metadata", _legacy("null"))

    from encryption.services import encryption_keys_rotate

    encryption_keys_rotate()

    [event] = AuditEvent.objects.filter(action=Action.KEY_ROTATION_FAILED)
    assert event.outcome == Outcome.FAILURE
    assert event.context["field_key_id"] == "field-2" and event.context["blind_index_key_id"] == "bi-2"
    assert event.context["values_failed"] == 1
    assert event.context["problems"] == [
        {
            "model": "testapp.EncryptedMemory",
            "pk": str(memory.pk),
            "column": "metadata",
            "reason": "the legacy value decrypts to null but the column is NOT NULL",
        }
    ]
    assert "content" not in str(event.context)
    detection_run_for_event(event_id=event.pk)
    alert = Alert.objects.get(detector="key_rotation_failure")
    assert event.pk in alert.evidence["event_ids"]


def test_a_rotation_stopped_by_an_error_records_key_rotation_failed(settings, new_primary):
    """The key ring of blind indexes cannot be loaded: the run stops, and the alert still fires."""
    _memories(1)
    settings.ENCRYPTION_BLIND_INDEX_KEYS = "not a key ring"

    from encryption.errors import KeyConfigurationError
    from encryption.services import encryption_keys_rotate

    with pytest.raises(KeyConfigurationError):
        encryption_keys_rotate()
    [event] = AuditEvent.objects.filter(action=Action.KEY_ROTATION_FAILED)
    assert event.outcome == Outcome.FAILURE
    assert event.context["reason"].startswith("KeyConfigurationError: Entry 1 of the blind_index key ring")
    detection_run_for_event(event_id=event.pk)
    assert Alert.objects.filter(detector="key_rotation_failure").count() == 1
