"""Sealing that tampering cannot stop: a forged row on the next number, and a cut tail.

Before this, one INSERT of a row with ``sequence = head + 1`` made every sealing run die on the
unique sequence (an IntegrityError traceback) while events piled up unsealed, and after the newest
events were deleted new events took their numbers, so each verification named another event.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import audit
from audit import offline_verifier as tlog
from audit.checkpoints import checkpoint_publish
from audit.models import AuditEvent, AuditSkippedSequence, ChainHead
from audit.sealing import seal_pending
from audit.services import build_event
from audit.verification import verify_chain
from monitoring.models import Alert
from monitoring.services.detection import detection_run_for_event
from tests.audit.support import tamper

pytestmark = pytest.mark.django_db


def events(count: int, user, start: int = 0) -> None:
    for number in range(start, start + count):
        audit.record(action=audit.Action.MEMORY_READ, actor=user, target=("memories.memory", number))


def kinds(report) -> set[str]:
    return {problem.kind for problem in report.problems}


def forge_next_row(*, offset: int = 1) -> AuditEvent:
    """A row inserted straight into the table holding the number after the head, as one INSERT can."""
    head = ChainHead.objects.get(pk=1)
    forged = build_event(action=audit.Action.STAFF_GRANTED, subject="mallory")
    forged.sequence, forged.previous_hash, forged.hash = head.sequence + offset, head.hash, "f" * 64
    forged.chain_key_id = forged.content_key_id
    AuditEvent.objects.bulk_create([forged])
    return forged


@pytest.mark.audit_coverage("system.audit_forged_row_skipped")
def test_a_forged_row_on_the_next_number_is_stepped_over_reported_and_sealing_goes_on(user, settings):
    settings.AUDIT_SEAL_MODE = "periodic"
    events(3, user)
    seal_pending()
    forged = forge_next_row()  # holds #4
    events(2, user, start=10)

    out = StringIO()
    with pytest.raises(CommandError, match="Skipped 1 sequence number"):
        call_command("audit_seal", stdout=out)  # before: IntegrityError on the unique sequence, every run

    assert "Sealed 2 event(s)." in out.getvalue()
    sealed = list(
        AuditEvent.objects.filter(target_id__in=["10", "11"]).order_by("id").values_list("sequence", flat=True)
    )
    assert sealed == [5, 6], "the real events get the numbers after the forged one"
    skip = AuditSkippedSequence.objects.get()
    assert (skip.sequence, skip.forged_event_id) == (4, forged.pk)
    assert AuditEvent.objects.get(sequence=5).previous_hash == skip.hash, "the chain steps over #4 under the key"
    reported = AuditEvent.objects.get(action=audit.Action.AUDIT_FORGED_ROW_SKIPPED)
    assert reported.outcome == "failure"
    assert reported.context == {"count": 1, "sequences": [4], "forged_event_ids": [forged.pk]}
    seal_pending()
    assert not AuditEvent.objects.unsealed().exists(), "the report itself is chained (after the skip)"

    detection_run_for_event(event_id=reported.pk)
    alert = Alert.objects.get(detector="audit_chain_failure")
    assert "skipped 1 number(s) held by forged rows (first #4)" in alert.summary

    report = verify_chain()
    assert kinds(report) == {"forged_skipped"}, report.problems
    assert report.first_bad_sequence == 4 and report.problems[0].event_id == forged.pk


def test_the_chain_and_the_tree_verify_once_the_forged_row_is_removed(user, audit_dir):
    events(3, user)
    seal_pending()
    forge_next_row()
    events(2, user, start=10)
    seal_pending()
    assert checkpoint_publish().ok
    assert kinds(verify_chain()) == {"forged_skipped"}, "the forged row stays a finding while it is there"

    tamper("DELETE FROM {table} WHERE hash = %s", ["f" * 64])  # the owner removes it
    report = verify_chain()
    assert report.ok, report.problems
    assert report.skipped == 1 and report.checkpoints_compared == 1, "the skipped leaf is in the signed tree"

    # The number's leaf names only the number, so an auditor's export checks offline with a marker line.
    exported = [
        {"sequence": 4, "skipped": True} if sequence == 4 else row
        for sequence, row in (
            (number, AuditEvent.objects.filter(sequence=number).values(*tlog_fields()).first())
            for number in range(1, 8)
        )
    ]
    checkpoint = tlog.parse_checkpoint_text(checkpoint_publish().checkpoint.note.rpartition("\n\n")[0] + "\n")
    assert tlog.verify_event_set(exported, checkpoint) == checkpoint.size


def tlog_fields():
    from audit.chain import CONTENT_FIELDS

    return ("sequence", *CONTENT_FIELDS)


def test_forged_rows_on_several_numbers_are_each_stepped_over(user):
    events(1, user)
    seal_pending()
    first = forge_next_row(offset=1)  # #2
    second = forge_next_row(offset=2)  # #3
    far = forge_next_row(offset=9)  # #10: reached later
    events(3, user, start=10)
    result = seal_pending()
    assert result.skipped[:2] == [(2, first.pk), (3, second.pk)]
    assert list(
        AuditEvent.objects.filter(target_id__in=["10", "11", "12"]).order_by("id").values_list("sequence", flat=True)
    ) == [
        4,
        5,
        6,
    ]
    events(6, user, start=20)
    seal_pending()
    assert AuditSkippedSequence.objects.filter(sequence=10, forged_event_id=far.pk).exists()
    report = verify_chain()
    assert kinds(report) == {"forged_skipped"}
    assert sorted(problem.sequence for problem in report.problems) == [2, 3, 10]


def test_audit_seal_says_in_one_line_what_it_stepped_over_and_exits_non_zero(user, settings):
    settings.AUDIT_SEAL_MODE = "periodic"
    events(1, user)
    seal_pending()
    forged = forge_next_row()
    events(1, user, start=10)
    out = StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("audit_seal", stdout=out)
    assert "Sealed 1 event(s)." in out.getvalue()
    assert str(failure.value) == (
        f"Skipped 1 sequence number(s) held by rows the sealer did not allocate (forged, outside audit.record): "
        f"#2 (row ids {[forged.pk]}); sealing went on after them; recorded as system.audit_forged_row_skipped."
    )


def test_a_truncated_tail_never_gives_its_published_numbers_again(user, audit_dir):
    """Deleting the newest events and rewinding the head: new events go on after the published number."""
    events(6, user)
    seal_pending()
    call_command("audit_verify", "--no-progress", stdout=StringIO(), stderr=StringIO())  # publishes the head
    published = AuditEvent.objects.get(action=audit.Action.AUDIT_VERIFIED).sequence or 6
    kept = AuditEvent.objects.get(sequence=4)
    tamper("DELETE FROM {table} WHERE sequence > 4")
    ChainHead.objects.filter(pk=1).update(sequence=4, hash=kept.hash, tree_size=4)
    names = []
    for batch in range(3):
        names.append(verify_chain().first_bad_sequence)
        events(2, user, start=100 + 10 * batch)
        seal_pending()
    assert names == [5, 5, 5], "named by the first missing sequence on every run"
    assert min(AuditEvent.objects.filter(target_id="100").values_list("sequence", flat=True)) > published
    assert "truncated" in kinds(verify_chain())
