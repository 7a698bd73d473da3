"""Events held by a transaction and written with its commit (audit.pending, audit.backends).

These run with real commits (``transaction=True``): what is under test is what the database holds
after a transaction commits, rolls back or fails to commit.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction

import audit
from audit import pending
from audit.models import AuditEvent
from audit.signals import event_recorded

pytestmark = pytest.mark.django_db(transaction=True)


def _actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_the_engine_is_the_audit_backend():
    assert type(connection._connections[connection._alias]).__module__.startswith("audit.backends.")


def test_events_of_a_transaction_are_written_by_its_commit_in_the_order_recorded():
    with transaction.atomic():
        Group.objects.create(name="held")
        first = audit.record(action=audit.Action.ADMIN_ADDED, target=("auth.group", 1))
        second = audit.record(action=audit.Action.MEMORY_READ)
        third, fourth = audit.record_many(
            [{"action": audit.Action.MEMORY_UPDATED}, {"action": audit.Action.MEMORY_DELETED}]
        )
        assert first.pk is None  # held until the commit...
        assert getattr(connection, pending.UNWRITTEN) == 4
    assert getattr(connection, pending.UNWRITTEN) == 0
    stored_ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    assert [first.pk, second.pk, third.pk, fourth.pk] == stored_ids
    assert _actions() == ["admin.added", "memory.read", "memory.updated", "memory.deleted"]
    # ...and sealed after it (the test settings seal inline).
    assert list(AuditEvent.objects.order_by("id").values_list("sequence", flat=True)) == [1, 2, 3, 4]


def test_a_rolled_back_transaction_leaves_no_event_and_announces_none():
    announced = []

    def receiver(event, **_kwargs):
        announced.append(event.action)

    event_recorded.connect(receiver)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            Group.objects.create(name="rolled-back")
            audit.record(action=audit.Action.ADMIN_ADDED)
            raise RuntimeError("the change fails")
        audit.record(action=audit.Action.PERMISSION_DENIED, outcome=audit.Outcome.DENIED)  # after, in autocommit
    finally:
        event_recorded.disconnect(receiver)
    assert _actions() == ["authz.permission_denied"]
    assert announced == ["authz.permission_denied"]
    assert not Group.objects.filter(name="rolled-back").exists()


def test_a_rolled_back_savepoint_drops_only_its_own_events():
    with transaction.atomic():
        audit.record(action=audit.Action.MEMORY_READ)
        try:
            with transaction.atomic():
                audit.record(action=audit.Action.MEMORY_DELETED)
                raise ValueError("inner work fails")
        except ValueError:
            pass
        audit.record(action=audit.Action.MEMORY_LIST)
    assert _actions() == ["memory.read", "memory.list"]


def test_a_transaction_reads_its_own_events_through_the_orm_and_raw_sql():
    with transaction.atomic():
        event = audit.record(action=audit.Action.CONTEXT_EXPORTED, context={"count": 3})
        assert AuditEvent.objects.filter(action="context.exported").count() == 1
        assert event.pk is not None  # the read wrote it first
        with connection.cursor() as cursor:
            cursor.execute("SELECT action FROM audit_auditevent WHERE id = %s", [event.pk])
            assert cursor.fetchone() == ("context.exported",)
        later = audit.record(action=audit.Action.MEMORY_READ)
    assert later.pk > event.pk
    assert _actions() == ["context.exported", "memory.read"]


def test_an_event_that_cannot_be_written_fails_the_commit_and_rolls_back_the_change():
    with pytest.raises(DatabaseError), transaction.atomic():
        Group.objects.create(name="must-not-commit")
        event = audit.record(action=audit.Action.ADMIN_ADDED)
        event.content_mac = None  # NOT NULL: the INSERT at commit fails
    assert getattr(connection, pending.UNWRITTEN) == 0  # nothing is left held...
    assert not Group.objects.filter(name="must-not-commit").exists()
    assert AuditEvent.objects.count() == 0
    # ...and the connection is usable afterwards.
    with transaction.atomic():
        Group.objects.create(name="next")
        audit.record(action=audit.Action.ADMIN_ADDED)
    assert _actions() == ["admin.added"]


def test_outside_a_transaction_an_event_is_written_at_once():
    event = audit.record(action=audit.Action.LOGIN_FAILED, outcome=audit.Outcome.FAILURE, subject="nobody")
    assert event.pk is not None
    assert AuditEvent.objects.get(pk=event.pk).subject_username == "nobody"


def test_a_thousand_events_in_one_transaction_are_all_written(undeclared_context_keys):
    with transaction.atomic():
        events = audit.record_many(
            {"action": audit.Action.MEMORY_UPDATED, "target": ("memories.memory", number), "context": {"n": number}}
            for number in range(1000)
        )
        audit.record(action=audit.Action.MEMORY_READ, context={"text": "100% done; DROP TABLE x; --'"})
    assert AuditEvent.objects.count() == 1001
    assert sorted(event.pk for event in events) == [event.pk for event in events]
    assert AuditEvent.objects.get(action="memory.read").context == {"text": "100% done; DROP TABLE x; --'"}


def test_the_table_the_cursors_watch_is_the_audit_events_table():
    assert AuditEvent._meta.db_table == pending.AUDIT_TABLE


def test_events_written_early_inside_a_savepoint_that_rolls_back_are_written_again_at_commit():
    with transaction.atomic():
        Group.objects.create(name="kept")
        kept = audit.record(action=audit.Action.ADMIN_ADDED)
        with pytest.raises(ValueError), transaction.atomic():
            assert AuditEvent.objects.exists()  # this read writes the held event, inside the savepoint
            raise ValueError("the savepoint rolls back, and the INSERT with it")
        assert kept.pk is None  # held again
        audit.record(action=audit.Action.MEMORY_READ)
    assert Group.objects.filter(name="kept").exists()
    assert _actions() == ["admin.added", "memory.read"]
    assert AuditEvent.objects.get(action="admin.added").pk == kept.pk


class _Interrupted(BaseException):
    """Stands for a timeout signal or KeyboardInterrupt arriving while the commit writes."""


def test_an_interruption_while_the_commit_writes_rolls_the_change_back(monkeypatch):
    def interrupted(*_args, **_kwargs):
        raise _Interrupted

    monkeypatch.setattr(pending, "insert_sql", interrupted)  # SQLite builds its INSERT here
    monkeypatch.setattr(pending, "insert_literal_sql", interrupted)  # PostgreSQL here
    with pytest.raises(_Interrupted), transaction.atomic():
        Group.objects.create(name="interrupted")
        audit.record(action=audit.Action.ADMIN_ADDED)
    monkeypatch.undo()
    assert not Group.objects.filter(name="interrupted").exists()
    assert AuditEvent.objects.count() == 0
    # Nothing is left held to be written later outside its transaction; the connection works.
    assert getattr(connection, pending.UNWRITTEN) == 0
    assert connection.get_autocommit()
    with transaction.atomic():
        Group.objects.create(name="after")
        audit.record(action=audit.Action.ADMIN_ADDED)
    assert _actions() == ["admin.added"]


@pytest.mark.postgresql
def test_on_postgresql_an_audited_transaction_makes_no_more_round_trips_than_a_plain_one(settings, monkeypatch):
    import psycopg
    from auditlog.context import disable_auditlog

    settings.AUDIT_SEAL_MODE = "periodic"  # count the transaction alone, not the sealer after it
    exchanges = []
    real_wait = psycopg.Connection.wait

    def counting_wait(self, generator, *args, **kwargs):
        name = getattr(generator, "__qualname__", "")
        idle = self.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # A statement (BEGIN rides with the first) or a COMMIT that still has a transaction to end;
        # switching autocommit and committing an already-ended transaction send nothing.
        if name.endswith("_execute_gen") or (name.endswith("_commit_gen") and not idle):
            exchanges.append(name)
        return real_wait(self, generator, *args, **kwargs)

    def round_trips(work) -> int:
        connection.ensure_connection()
        exchanges.clear()
        monkeypatch.setattr(psycopg.Connection, "wait", counting_wait)
        with disable_auditlog(), transaction.atomic():
            work()
        monkeypatch.setattr(psycopg.Connection, "wait", real_wait)
        return len(exchanges)

    plain = round_trips(lambda: Group.objects.create(name="plain"))
    audited = round_trips(
        lambda: audit.record(action=audit.Action.ADMIN_ADDED, target=Group.objects.create(name="audited"))
    )
    assert plain == 2  # BEGIN + INSERT, then COMMIT
    assert audited == plain  # BEGIN + INSERT, then the events' INSERT with the COMMIT
    audited_group = Group.objects.get(name="audited")
    assert AuditEvent.objects.filter(action="admin.added", target_id=str(audited_group.pk)).exists()
