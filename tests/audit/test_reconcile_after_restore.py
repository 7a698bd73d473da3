"""After a restore, the audit trail verifies again once ``audit_reconcile --after-restore`` ran.

A restored database ends its chain where the backup was taken; the published head outside the
database is later, so verification reported truncation forever and publication stopped
(issue #14). The reconcile re-anchors the published head and records the lost sequences.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.actions import Action
from audit.heads import last_published_head
from audit.models import AuditEvent
from audit.services import audit_chain_verify, audit_head_publish, record
from encryption.backups import backup_create, backup_restore

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _scratch(settings, tmp_path):
    settings.ENCRYPTION_SCRATCH_DIR = str(tmp_path / "scratch")


def _events(count: int) -> None:
    for index in range(count):
        record(action=Action.MIGRATION_APPLIED, context={"app": "x", "migration": str(index)})


@pytest.mark.audit_coverage("system.audit_reconciled")
def test_a_restore_then_reconcile_makes_verification_and_publication_work_again(tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("restores over the configured database: done on SQLite (a file swap)")
    _events(3)
    assert audit_chain_verify().ok
    backup = tmp_path / "b.nvbak"
    backup_create(output=backup)
    _events(4)
    assert audit_chain_verify().ok
    published = last_published_head().sequence

    backup_restore(path=backup, force=True)  # the configured database, as an operator restores it

    report = audit_chain_verify(publish=False)
    assert not report.ok and report.problems[0].kind == "truncated", "the defect: truncation reported"
    restored_event = AuditEvent.objects.get(action=Action.BACKUP_RESTORED)

    out = StringIO()
    call_command("audit_reconcile", "--after-restore", stdout=out)

    assert (
        f"Audit chain reconciled: restored at #{restored_event.sequence - 1}; sequences "
        f"{restored_event.sequence} to {published} (published up to #{published}" in out.getvalue()
    )
    [event] = AuditEvent.objects.filter(action=Action.AUDIT_RECONCILED)
    assert (event.context["lost_from"], event.context["lost_to"]) == (restored_event.sequence, published)
    assert event.context["published_sequence"] == published
    assert audit_chain_verify().ok, "verification passes again"
    assert audit_head_publish().ok, "and the head is published again"
    out = StringIO()
    call_command("audit_reconcile", "--after-restore", stdout=out)
    assert out.getvalue().startswith("Nothing to reconcile")


def test_reconcile_needs_to_be_told_why():
    with pytest.raises(CommandError, match="audit_reconcile runs only --after-restore"):
        call_command("audit_reconcile")


def test_nothing_to_reconcile_on_an_intact_chain():
    _events(2)
    assert audit_chain_verify().ok
    out = StringIO()
    call_command("audit_reconcile", "--after-restore", stdout=out)
    assert out.getvalue().startswith("Nothing to reconcile")
    assert not AuditEvent.objects.filter(action=Action.AUDIT_RECONCILED).exists()


def test_a_forged_heads_line_is_refused(settings, tmp_path):
    _events(2)
    assert audit_chain_verify().ok
    from audit.heads import heads_path

    path = heads_path()
    path.write_text(path.read_text().replace('"sequence": ', '"sequence": 9'))
    with pytest.raises(CommandError, match="Reconcile refused: The last line of the published-heads file is not"):
        call_command("audit_reconcile", "--after-restore")
