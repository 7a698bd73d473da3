"""Rotation writes a batch in one statement per shape of change, and a refused row stays alone."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from encryption.crypto import token_key_id
from encryption.services import ModelRotation, _apply, encryption_keys_rotate
from tests.encryption.helpers import make_key, raw_value, ring
from tests.testapp.models import EncryptedMemory, SecretRecord


@pytest.fixture
def new_field_key(settings):
    settings.ENCRYPTION_FIELD_KEYS = ring(make_key("field-2"), settings.ENCRYPTION_FIELD_KEYS)


def _memory_updates(queries) -> list[str]:
    return [
        query["sql"]
        for query in queries
        if query["sql"].lstrip().upper().startswith('UPDATE "TESTAPP_ENCRYPTEDMEMORY"')
    ]


@pytest.mark.django_db
def test_a_batch_of_rows_with_the_same_columns_is_written_in_one_update(settings):
    EncryptedMemory.objects.bulk_create(
        EncryptedMemory(title=f"m{index}", content=f"content {index}", metadata={"n": index}) for index in range(120)
    )
    before = {memory.pk: (memory.content, memory.metadata) for memory in EncryptedMemory.objects.all()}
    settings.ENCRYPTION_FIELD_KEYS = ring(make_key("field-2"), settings.ENCRYPTION_FIELD_KEYS)

    with CaptureQueriesContext(connection) as queries:
        result = encryption_keys_rotate(batch_size=50)

    assert len(_memory_updates(queries.captured_queries)) == 3, "120 rows in batches of 50: three statements"
    memories = next(item for item in result.models if item.label == "testapp.EncryptedMemory")
    assert (memories.rows_scanned, memories.rows_updated, memories.rows_changed_concurrently) == (120, 120, 0)
    assert {token_key_id(raw_value(EncryptedMemory, pk, "content")) for pk in before} == {"field-2"}
    assert {memory.pk: (memory.content, memory.metadata) for memory in EncryptedMemory.objects.all()} == before


@pytest.mark.django_db
def test_rows_with_different_columns_to_change_each_keep_their_own_values(new_field_key):
    """Two shapes in one batch (a NULL column in one row): each row gets exactly its own values."""
    with_email = SecretRecord.objects.create(label="a", note="first", email="a@example.org")
    without = SecretRecord.objects.create(label="b", note="second", email=None)
    result = encryption_keys_rotate(batch_size=10)

    assert result.complete
    assert SecretRecord.objects.get(pk=with_email.pk).note == "first"
    assert SecretRecord.objects.get(pk=with_email.pk).email == "a@example.org"
    assert SecretRecord.objects.get(pk=without.pk).note == "second"
    assert SecretRecord.objects.get(pk=without.pk).email is None
    assert token_key_id(raw_value(SecretRecord, without.pk, "note")) == "field-2"


@pytest.mark.django_db
def test_rows_changed_meanwhile_are_counted_and_keep_their_new_value(new_field_key):
    records = [SecretRecord.objects.create(label=str(index), note=f"note {index}") for index in range(3)]
    stored = {record.pk: raw_value(SecretRecord, record.pk, "note") for record in records}
    records[1].note = "written by the application meanwhile"
    records[1].save()

    stats = ModelRotation(label="testapp.SecretRecord")
    _apply(
        SecretRecord,
        [(pk, {"note": (token, f"nv1:field-2:new-{pk}")}) for pk, token in stored.items()],
        stats=stats,
        using="default",
    )

    assert (stats.rows_updated, stats.rows_changed_concurrently) == (2, 1)
    assert SecretRecord.objects.get(pk=records[1].pk).note == "written by the application meanwhile"
    assert raw_value(SecretRecord, records[0].pk, "note") == f"nv1:field-2:new-{records[0].pk}"
    assert raw_value(SecretRecord, records[2].pk, "note") == f"nv1:field-2:new-{records[2].pk}"


@pytest.fixture
def refuse_updates_of():
    """A trigger that makes the database refuse any UPDATE of one row (a constraint stand-in)."""
    created = []

    def install(pk: int) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "CREATE FUNCTION rotation_refuse() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.id = {int(pk)} THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
                cursor.execute(
                    "CREATE TRIGGER rotation_refuse BEFORE UPDATE ON testapp_encryptedmemory "
                    "FOR EACH ROW EXECUTE FUNCTION rotation_refuse()"
                )
            else:
                cursor.execute(
                    "CREATE TRIGGER rotation_refuse BEFORE UPDATE ON testapp_encryptedmemory "
                    f"WHEN NEW.id = {int(pk)} BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
        created.append(pk)

    yield install
    if created:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER rotation_refuse"
                + (" ON testapp_encryptedmemory" if connection.vendor == "postgresql" else "")
            )
            if connection.vendor == "postgresql":
                cursor.execute("DROP FUNCTION rotation_refuse()")


@pytest.mark.django_db
def test_a_row_the_database_refuses_is_reported_alone_and_the_rest_of_its_batch_rotates(settings, refuse_updates_of):
    memories = EncryptedMemory.objects.bulk_create(
        EncryptedMemory(title=f"m{index}", content=f"content {index}", metadata={}) for index in range(5)
    )
    pks = sorted(memory.pk for memory in EncryptedMemory.objects.all())
    refused = pks[2]
    refused_token = raw_value(EncryptedMemory, refused, "content")
    refuse_updates_of(refused)
    settings.ENCRYPTION_FIELD_KEYS = ring(make_key("field-2"), settings.ENCRYPTION_FIELD_KEYS)

    result = encryption_keys_rotate(batch_size=10)

    assert len(memories) == 5
    assert not result.complete
    assert len(result.problems) == 1
    assert result.problems[0].pk == str(refused)
    assert result.problems[0].reason.startswith("the database refused the new value")
    assert raw_value(EncryptedMemory, refused, "content") == refused_token, "the refused row is as it was"
    for pk in pks:
        if pk != refused:
            assert token_key_id(raw_value(EncryptedMemory, pk, "content")) == "field-2"
    rotated = next(item for item in result.models if item.label == "testapp.EncryptedMemory")
    assert rotated.rows_updated == 4
