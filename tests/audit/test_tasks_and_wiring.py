"""The scheduled jobs, the lazy package interface, the system checks and the heads file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.management import call_command

import audit
from audit import tasks
from audit.checks import check_audit_settings
from audit.heads import heads_path, last_published_head
from audit.models import AuditEvent
from audit.sealing import seal_pending
from tests.audit.support import tamper

pytestmark = pytest.mark.django_db


def test_seal_task_seals_what_is_pending():
    audit.record(action=audit.Action.LOGOUT)
    audit.record(action=audit.Action.LOGOUT)
    tasks.audit_seal.apply()
    assert AuditEvent.objects.unsealed().count() == 0
    assert list(AuditEvent.objects.values_list("sequence", flat=True).order_by("sequence")) == [1, 2]


def test_publish_head_task_verifies_incrementally_and_publishes(audit_dir):
    for _ in range(3):
        audit.record(action=audit.Action.MEMORY_READ)
    first = tasks.audit_publish_head.apply().get()
    assert first == {"ok": True, "last_sequence": 3, "first_bad_sequence": None}
    assert last_published_head().sequence == 3
    audit.record(action=audit.Action.MEMORY_READ)
    second = tasks.audit_publish_head.apply().get()
    # #4 is the first run's AUDIT_HEAD_PUBLISHED event, #5 the new read.
    assert second["ok"] and second["last_sequence"] == 5
    lines = [json.loads(line) for line in heads_path().read_text().splitlines()]
    assert [line["sequence"] for line in lines] == [3, 5]
    assert {line["source"] for line in lines} == {"schedule"}
    recorded = AuditEvent.objects.filter(action=audit.Action.AUDIT_HEAD_PUBLISHED)
    assert recorded.count() == 2


def test_publish_head_refuses_to_publish_over_a_truncated_tail():
    for _ in range(3):
        audit.record(action=audit.Action.MEMORY_READ)
    tasks.audit_publish_head.apply()
    tamper("DELETE FROM {table} WHERE sequence >= 3")
    from audit.models import ChainHead

    ChainHead.objects.filter(pk=1).update(sequence=2, hash=AuditEvent.objects.get(sequence=2).hash)
    result = tasks.audit_publish_head.apply().get()
    assert result["ok"] is False and result["first_bad_sequence"] == 3
    assert last_published_head().sequence == 3  # nothing new published
    failed = AuditEvent.objects.filter(action=audit.Action.AUDIT_HEAD_PUBLISHED, outcome="failure")
    assert failed.count() == 1


def test_audit_seal_command():
    audit.record(action=audit.Action.LOGOUT)
    call_command("audit_seal")
    assert AuditEvent.objects.unsealed().count() == 0


def test_the_package_imports_no_model_at_import_time():
    code = (
        "import sys, audit; "
        "assert 'audit.models' not in sys.modules and 'django.contrib.auth.models' not in sys.modules; "
        "assert callable(audit.record)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_package_exposes_the_interface():
    assert audit.Action.LOGIN_FAILED == "auth.login_failed"
    assert audit.Outcome.DENIED == "denied"
    assert audit.AuditEvent is AuditEvent
    with pytest.raises(AttributeError):
        audit.nothing_here  # noqa: B018


def test_every_action_value_is_unique_and_fits_the_column():
    values = audit.Action.values
    assert len(values) == len(set(values))
    assert all(len(value) <= 64 and "." in value for value in values)


def test_system_checks_refuse_unsafe_settings(settings):
    assert check_audit_settings() == []
    settings.AUDIT_CHAIN_KEY = "short"
    settings.AUDIT_SEAL_MODE = "whenever"
    settings.AUDIT_TRUSTED_PROXY_COUNT = -1
    settings.AUDIT_RETENTION_OVERRIDES = {"auth.made_up": 3, "auth.login_failed": 0}
    ids = sorted(message.id for message in check_audit_settings())
    assert ids == ["audit.E001", "audit.E002", "audit.E003", "audit.E005", "audit.E005"]


def test_the_heads_file_is_private(audit_dir):
    audit.record(action=audit.Action.MEMORY_READ)
    seal_pending()
    call_command("audit_verify", "--no-progress", stdout=__import__("io").StringIO())
    assert heads_path().stat().st_mode & 0o777 == 0o600


@pytest.mark.django_db(transaction=True)
def test_background_mode_seals_soon_after_commit(settings):
    import time

    from django.db import transaction

    from audit.sealing import background_sealer

    settings.AUDIT_SEAL_MODE = "background"
    try:
        with transaction.atomic():
            audit.record(action=audit.Action.LOGOUT)
            audit.record(action=audit.Action.LOGOUT)
        deadline = time.monotonic() + 10
        while AuditEvent.objects.unsealed().exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(AuditEvent.objects.values_list("sequence", flat=True).order_by("sequence")) == [1, 2]
    finally:
        background_sealer.stop()
