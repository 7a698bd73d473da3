"""Schema changes are audit events: every migration migrate applies or unapplies, who ran it, when."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from audit.receivers import record_applied_migrations
from audit.services import audit_chain_verify
from tests.support.servers import PROJECT_DIR


def _migration_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=Action.MIGRATION_APPLIED).order_by("id"))


def _database_user() -> str:
    if connection.vendor == "sqlite":
        return ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


def _plan(*keys: tuple[str, str], backwards: bool = False) -> list:
    graph = MigrationLoader(connection, ignore_no_migrations=True).graph
    return [(graph.nodes[key], backwards) for key in keys]


@pytest.mark.django_db(transaction=True)
@pytest.mark.audit_coverage("system.migration_applied")
def test_migrate_records_each_migration_it_applies_and_unapplies(settings):
    settings.AUDIT_RECORD_MIGRATIONS = True
    try:
        call_command("migrate", "testapp", "zero", verbosity=0)
        call_command("migrate", "testapp", verbosity=0)
    finally:
        call_command("migrate", "testapp", verbosity=0)  # leave the schema as the suite expects it

    events = _migration_events()
    assert [(e.context["app"], e.context["migration"], e.context["direction"]) for e in events] == [
        ("testapp", "0001_initial", "backwards"),
        ("testapp", "0001_initial", "forwards"),
    ]
    for event in events:
        assert event.outcome == Outcome.SUCCESS
        assert event.actor_id == "" and event.actor_username == ""  # run by the system, named in the context
        assert event.target_type == "migrations.migration"
        assert event.target_id == "testapp.0001_initial"
        assert event.context["os_user"] == getpass.getuser()
        assert event.context["db_user"] == _database_user()
        assert event.context["database"] == connection.vendor
        assert event.is_sealed
    from django.db.migrations.recorder import MigrationRecorder

    applied = MigrationRecorder(connection).migration_qs.get(app="testapp", name="0001_initial").applied
    assert events[1].context["applied_at"] == applied.isoformat()
    assert audit_chain_verify(publish=False).ok


@pytest.mark.django_db(transaction=True)
def test_nothing_to_migrate_records_nothing(settings):
    settings.AUDIT_RECORD_MIGRATIONS = True
    call_command("migrate", verbosity=0)
    assert _migration_events() == []


@pytest.mark.django_db
def test_recording_can_be_switched_off(settings):
    """The test settings switch it off: the suite's own database set-up is no schema change."""
    settings.AUDIT_RECORD_MIGRATIONS = False
    record_applied_migrations(sender=None, plan=_plan(("testapp", "0001_initial")), using="default")
    assert _migration_events() == []


@pytest.mark.django_db
def test_flush_sends_no_plan_and_records_nothing(settings):
    settings.AUDIT_RECORD_MIGRATIONS = True
    record_applied_migrations(sender=None, plan=None, using="default")
    record_applied_migrations(sender=None, plan=[], using="default")
    assert _migration_events() == []


@pytest.mark.django_db
def test_nothing_is_recorded_while_the_audit_table_does_not_exist(settings, monkeypatch):
    """Before audit's first migration (or after `migrate audit zero`) there is nowhere to record."""
    settings.AUDIT_RECORD_MIGRATIONS = True
    real = connection.introspection.table_names
    monkeypatch.setattr(
        connection.introspection, "table_names", lambda *a, **k: [t for t in real(*a, **k) if t != "audit_auditevent"]
    )
    record_applied_migrations(sender=None, plan=_plan(("audit", "0001_initial")), using="default")
    monkeypatch.undo()
    assert _migration_events() == []


@pytest.mark.django_db
def test_other_database_aliases_are_not_recorded_here(settings):
    settings.AUDIT_RECORD_MIGRATIONS = True
    record_applied_migrations(sender=None, plan=_plan(("testapp", "0001_initial")), using="replica")
    assert _migration_events() == []


@pytest.mark.django_db
def test_the_receiver_runs_once_per_migrate():
    """Connected for the audit app only: Django sends post_migrate once per app, with the same plan."""
    from django.db.models.signals import post_migrate

    receivers = [r for r in post_migrate._live_receivers(sender=None)[0] if r is record_applied_migrations]
    assert receivers == []  # not for every sender
    from django.apps import apps

    assert record_applied_migrations in post_migrate._live_receivers(sender=apps.get_app_config("audit"))[0]


def test_a_fresh_database_records_its_whole_schema_and_the_chain_verifies(tmp_path):
    """On a brand-new database migrate creates the audit table in the same run; every migration is
    recorded once, sealed in order, and the chain verifies. (This is what production's first
    migrate does; the test suite's own set-up switches recording off.)"""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "TEST_VAR_DIR": str(tmp_path),
        "AUDIT_RECORD_MIGRATIONS": "true",
    }

    def manage(*arguments: str) -> str:
        completed = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=PROJECT_DIR,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        return completed.stdout

    manage("migrate", "--noinput", "-v0")
    manage("migrate", "--noinput", "-v0")  # nothing to do: nothing more recorded
    script = (
        "import json; from audit.models import AuditEvent; from django.db.migrations.recorder import MigrationRecorder;"
        "events = list(AuditEvent.objects.filter(action='system.migration_applied').order_by('sequence')"
        ".values_list('context', 'sequence'));"
        "print(json.dumps({'events': [c for c, s in events], 'unsealed': sum(s is None for c, s in events),"
        "'applied': MigrationRecorder.Migration.objects.count()}))"
    )
    result = json.loads(manage("shell", "-c", script).strip().splitlines()[-1])
    assert result["unsealed"] == 0
    assert len(result["events"]) == result["applied"]
    names = {(context["app"], context["migration"]) for context in result["events"]}
    assert ("audit", "0001_initial") in names and ("contenttypes", "0001_initial") in names
    assert {context["direction"] for context in result["events"]} == {"forwards"}
    assert "Audit chain OK." in manage("audit_verify")
