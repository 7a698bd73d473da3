"""After a restore, the audit trail verifies again once ``audit_reconcile --after-restore`` ran.

A restored database ends its chain where the backup was taken; the published head outside the
database is later, so verification reported truncation forever and publication stopped
(issue #14). The sealer never gives a published number again, so the lost numbers stay a gap that
verification names; the reconcile records them, starts a new Merkle tree epoch and publishes again.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit import offline_verifier as tlog
from audit.actions import Action
from audit.checkpoints import checkpoint_publish
from audit.heads import last_published_head
from audit.models import AuditEvent, ChainHead
from audit.services import audit_chain_verify, audit_head_publish, record
from encryption.backups import backup_create, backup_restore
from tests.audit.support import public_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _scratch(settings, tmp_path):
    settings.ENCRYPTION_SCRATCH_DIR = str(tmp_path / "scratch")


def _events(count: int) -> None:
    for index in range(count):
        record(action=Action.MIGRATION_APPLIED, context={"app": "x", "migration": str(index)})


def _witness_log(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "witness" / "checkpoints.log").read_text().splitlines()]


@pytest.mark.audit_coverage("system.audit_reconciled", "system.audit_sequence_jumped")
def test_a_restore_then_reconcile_starts_a_new_epoch_and_publication_works_again(tmp_path, witness):
    """Restored: the lost numbers stay lost, verification names them, the witness refuses the shorter tree;
    the reconcile names what was lost (sequences and the checkpoint), starts tree epoch 2, and the witness
    accepts it with the abandoned checkpoint on its record."""
    if connection.vendor != "sqlite":
        pytest.skip("restores over the configured database: done on SQLite (a file swap)")
    _events(3)
    assert audit_chain_verify().ok
    assert checkpoint_publish().ok
    backup = tmp_path / "b.nvbak"
    backup_create(output=backup)
    _events(4)
    assert audit_chain_verify().ok
    assert checkpoint_publish().ok
    published = last_published_head().sequence
    [held] = [line for line in _witness_log(tmp_path)[-1:]]
    held_size = held["tree_size"]
    lost_to = max(published, held_size)  # the tree began with the chain (base 0)

    backup_restore(path=backup, force=True)  # the configured database, as an operator restores it

    restored_event = AuditEvent.objects.get(action=Action.BACKUP_RESTORED)
    assert restored_event.sequence == lost_to + 1, "the numbers published before the restore are not given again"
    restore_point = AuditEvent.objects.filter(sequence__lt=restored_event.sequence).order_by("-sequence")[0].sequence
    reports = [audit_chain_verify(publish=False) for _ in range(2)]
    for report in reports:
        assert not report.ok and "truncated" in {problem.kind for problem in report.problems}
        assert report.first_bad_sequence == restore_point + 1, "named by the first missing sequence, every run"
    assert not checkpoint_publish().ok, "the witness holds a larger tree than the restored one"

    out = StringIO()
    call_command("audit_reconcile", "--after-restore", stdout=out)

    assert (
        f"Audit chain reconciled: restored at #{restore_point}; sequences {restore_point + 1} to {lost_to} "
        f"(published up to #{published}" in out.getvalue()
    )
    assert f"Merkle tree epoch 2 begins after #{lost_to}" in out.getvalue()
    assert f"the checkpoint of {held_size} events (epoch 1" in out.getvalue()
    [event] = AuditEvent.objects.filter(action=Action.AUDIT_RECONCILED)
    assert (event.context["lost_from"], event.context["lost_to"]) == (restore_point + 1, lost_to)
    assert (event.context["epoch"], event.context["tree_base"], event.context["previous_epoch"]) == (2, lost_to, 1)
    assert event.context["unmatched_checkpoint_size"] == held_size
    assert event.context["unmatched_checkpoint_source"] == "the witness"
    assert ChainHead.objects.get().tree_epoch == 2

    report = audit_chain_verify()
    assert report.ok, report.problems
    assert report.reconciled_lost == lost_to - restore_point
    _events(2)
    result = checkpoint_publish()
    assert result.ok, result.sinks
    entries = _witness_log(tmp_path)
    [start_entry] = [entry for entry in entries if entry.get("epoch") == 2 and entry["tree_size"] == 0]
    start = tlog.parse_checkpoint_text(start_entry["note"].rpartition("\n\n")[0] + "\n")
    assert (start.epoch, start.size, start.previous_checkpoint()[:2]) == (2, 0, (1, held_size))
    latest = tlog.parse_checkpoint_text(entries[-1]["note"].rpartition("\n\n")[0] + "\n")
    assert latest.epoch == 2 and latest.size == ChainHead.objects.get().tree_size
    assert audit_chain_verify().ok, "the old epoch's checkpoints and the new one's both verify"
    # An event of the new epoch is proven against its checkpoint, offline, with the public key alone.
    proof = StringIO()
    call_command("audit_proof", str(event.sequence), stdout=proof)
    document = json.loads(proof.getvalue())
    assert document["tree_base"] == lost_to
    verifier = tlog.parse_verifier_key(public_key())
    assert tlog.verify_inclusion_document(document, verifier).epoch == 2
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
