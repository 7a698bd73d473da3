"""The context schema of audit events: declared for every action, enforced by record(), documented."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest
from django.core.management import call_command

import audit
from audit import schema
from audit.actions import Action
from audit.models import AuditEvent
from audit.schema import CONTEXT_SCHEMAS, UndeclaredContextKey, declared_key, markdown_table
from audit.services import write_held_events

PROJECT_DIR = Path(__file__).resolve().parents[2]
DETECTORS_DIR = PROJECT_DIR / "monitoring" / "detectors"


def test_every_action_declares_its_context_keys_with_a_type_and_a_meaning():
    assert set(CONTEXT_SCHEMAS) == set(Action)
    for action, keys in CONTEXT_SCHEMAS.items():
        for key, (kind, meaning) in keys.items():
            assert re.fullmatch(r"[a-z][a-z0-9_]*", key), (action, key)
            assert kind and meaning, (action, key)


@pytest.mark.django_db
def test_a_declared_key_is_recorded():
    event = audit.record(action=Action.CONTEXT_EXPORTED, context={"count": 3})
    write_held_events()
    assert AuditEvent.objects.get(pk=event.pk).context == {"count": 3}


@pytest.mark.django_db
def test_under_the_strict_setting_an_undeclared_key_raises_naming_the_action_and_the_key():
    with pytest.raises(UndeclaredContextKey, match=r"context\.exported .*'rows'"):
        audit.record(action=Action.CONTEXT_EXPORTED, context={"count": 3, "rows": 3})
    with pytest.raises(UndeclaredContextKey, match=r"auth\.logout .*'reason'"):
        audit.record_many([{"action": Action.LOGIN_FAILED}, {"action": Action.LOGOUT, "context": {"reason": "x"}}])
    write_held_events()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_otherwise_an_undeclared_key_is_kept_and_logged_once_without_its_value(settings, caplog, monkeypatch):
    settings.AUDIT_STRICT_CONTEXT = False
    monkeypatch.setattr(schema, "_reported", set())
    with caplog.at_level(logging.WARNING, logger="audit.schema"):
        first = audit.record(action=Action.CONTEXT_EXPORTED, context={"count": 3, "destination": "tape-42-offsite"})
        second = audit.record(action=Action.CONTEXT_EXPORTED, context={"destination": "tape-43-offsite"})
    write_held_events()
    assert AuditEvent.objects.get(pk=first.pk).context == {"count": 3, "destination": "tape-42-offsite"}
    assert AuditEvent.objects.get(pk=second.pk).context == {"destination": "tape-43-offsite"}
    [warning] = [record for record in caplog.records if record.name == "audit.schema"]
    assert warning.levelno == logging.WARNING
    assert "context.exported" in warning.getMessage() and "'destination'" in warning.getMessage()
    assert "tape-4" not in caplog.text


def test_readers_name_keys_through_the_schema():
    assert declared_key("first_bad_sequence", Action.AUDIT_VERIFIED, Action.AUDIT_HEAD_PUBLISHED) == (
        "first_bad_sequence"
    )
    with pytest.raises(LookupError, match=r"authz\.group_membership_changed declares no context key 'groups_added'"):
        declared_key("groups_added", Action.GROUP_MEMBERSHIP_CHANGED)


def test_detectors_read_no_context_key_by_a_literal_name():
    """Detectors name keys with declared_key (checked at import), never a string of their own."""
    literal = re.compile(r"context(\.get\(|\[)\s*[\"']")
    for path in DETECTORS_DIR.glob("*.py"):
        assert not literal.search(path.read_text()), path.name


def test_the_committed_audit_events_document_is_up_to_date():
    """Regenerate with ``python manage.py audit_schema > docs/audit-events.md``."""
    output = io.StringIO()
    call_command("audit_schema", stdout=output)
    assert output.getvalue() == markdown_table()
    assert (PROJECT_DIR / "docs" / "audit-events.md").read_text() == markdown_table()
