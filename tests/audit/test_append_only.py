"""Audit events are append-only: through the ORM on every database, and in PostgreSQL itself."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

import audit
from audit.models import AuditEvent, AuditEventImmutable
from audit.sealing import seal_pending
from audit.services import write_held_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def sealed_event():
    event = audit.record(action=audit.Action.MEMORY_READ, context={"context_id": 1})
    seal_pending()
    return AuditEvent.objects.get(pk=event.pk)


def test_saving_an_existing_event_is_refused(sealed_event):
    sealed_event.outcome = "failure"
    with pytest.raises(AuditEventImmutable):
        sealed_event.save()
    assert AuditEvent.objects.get(pk=sealed_event.pk).outcome == "success"


def test_deleting_an_event_is_refused(sealed_event):
    with pytest.raises(AuditEventImmutable):
        sealed_event.delete()
    assert AuditEvent.objects.filter(pk=sealed_event.pk).exists()


@pytest.mark.parametrize(
    "operation",
    [
        lambda events: events.update(outcome="failure"),
        lambda events: events.delete(),
        lambda events: events.filter(action="memory.read").update(context={}),
        lambda events: AuditEvent.objects.bulk_update(list(events), ["outcome"]),
        lambda events: AuditEvent.objects.update_or_create(pk=1, defaults={"outcome": "failure"}),
    ],
    ids=["update", "delete", "filtered-update", "bulk_update", "update_or_create"],
)
def test_queryset_changes_are_refused(sealed_event, operation):
    with pytest.raises(AuditEventImmutable):
        operation(AuditEvent.objects.all())
    assert AuditEvent.objects.get(pk=sealed_event.pk).outcome == "success"


def _raw(sql, params=()):
    table = AuditEvent._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.format(table=table), params)


@pytest.mark.postgresql
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE {table} SET outcome = 'failure'",
        "UPDATE {table} SET hash = repeat('a', 64)",
        "UPDATE {table} SET sequence = sequence + 100",
        "DELETE FROM {table}",
    ],
)
def test_postgresql_trigger_refuses_update_and_delete(sealed_event, sql):
    with pytest.raises(DatabaseError, match="append-only"):
        _raw(sql)
    stored = AuditEvent.objects.get(pk=sealed_event.pk)
    assert (stored.outcome, stored.hash, stored.sequence) == ("success", sealed_event.hash, 1)


@pytest.mark.postgresql
def test_postgresql_trigger_refuses_changing_content_while_sealing():
    event = audit.record(action=audit.Action.MEMORY_READ)
    write_held_events()  # the test's transaction never commits: write it now, to know its id
    with pytest.raises(DatabaseError, match="append-only"):
        _raw(
            "UPDATE {table} SET sequence = 1, previous_hash = repeat('0', 64), hash = repeat('a', 64), "
            "outcome = 'failure' WHERE id = %s",
            [event.pk],
        )


@pytest.mark.postgresql
def test_postgresql_trigger_allows_sealing_an_unsealed_row_once():
    event = audit.record(action=audit.Action.MEMORY_READ)
    assert seal_pending().sealed == 1
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("UPDATE {table} SET hash = repeat('b', 64) WHERE id = %s", [event.pk])


@pytest.mark.postgresql
@pytest.mark.parametrize("chain_key_id", [None, "legacy"])
def test_postgresql_trigger_refuses_sealing_without_a_key_ring_id(chain_key_id):
    event = audit.record(action=audit.Action.MEMORY_READ)
    write_held_events()
    with pytest.raises(DatabaseError, match="append-only"):
        _raw(
            "UPDATE {table} SET sequence = 1, previous_hash = repeat('0', 64), hash = repeat('a', 64), "
            "chain_key_id = %s WHERE id = %s",
            [chain_key_id, event.pk],
        )


@pytest.mark.postgresql
def test_postgresql_trigger_allows_delete_only_with_the_purge_switch(sealed_event):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('audit.allow_purge', 'on', true)")
            cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [sealed_event.pk])  # noqa: S608
            cursor.execute("SELECT set_config('audit.allow_purge', 'off', true)")
        assert not AuditEvent.objects.filter(pk=sealed_event.pk).exists()
        transaction.set_rollback(True)
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM {table}")
