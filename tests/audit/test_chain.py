"""The keyed chain: sealing order, and audit_verify naming the first bad event for each kind of tampering."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import audit
from audit.chain import GENESIS_HASH, content_mac, link_hash
from audit.heads import heads_path, last_published_head
from audit.models import AuditEvent, ChainHead
from audit.sealing import seal_pending
from audit.services import build_event
from audit.verification import verify_chain
from tests.audit.support import tamper
from tests.encryption.helpers import make_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(user):
    """Ten sealed events, #1..#10."""
    for number in range(10):
        audit.record(action=audit.Action.MEMORY_READ, actor=user, target=("memories.memory", number))
    seal_pending()
    return list(AuditEvent.objects.order_by("sequence"))


def verify_command(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("audit_verify", *args, "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


def first_bad(*args) -> str:
    with pytest.raises(CommandError) as failure:
        verify_command(*args)
    return str(failure.value)


def test_sealing_gives_gapless_sequences_linked_by_keyed_hashes(chain):
    assert [event.sequence for event in chain] == list(range(1, 11))
    previous = GENESIS_HASH
    for event in chain:
        assert event.previous_hash == previous
        expected = link_hash(sequence=event.sequence, previous_hash=previous, content_mac_value=event.content_mac)
        assert event.hash == expected
        previous = event.hash
    head = ChainHead.objects.get()
    assert (head.sequence, head.hash) == (10, chain[-1].hash)


def test_sealing_twice_changes_nothing(chain):
    assert seal_pending().sealed == 0
    assert list(AuditEvent.objects.order_by("sequence").values_list("hash", flat=True)) == [e.hash for e in chain]


def test_a_clean_chain_verifies_and_the_head_is_published(chain):
    output = verify_command()
    assert "Audit chain OK." in output and "Published head #10." in output
    published = last_published_head()
    assert (published.sequence, published.hash, published.mac_valid) == (10, chain[-1].hash, True)
    recorded = AuditEvent.objects.filter(action=audit.Action.AUDIT_VERIFIED).get()
    assert recorded.outcome == "success" and recorded.context["checked"] == 10


def test_modified_event_is_named(chain):
    tamper("UPDATE {table} SET actor_username = %s WHERE sequence = 4", ["someone-else"])
    assert "first bad sequence 4" in first_bad()


def test_modified_context_is_named(chain):
    tamper("UPDATE {table} SET context = %s WHERE sequence = 7", [json.dumps({"count": 0})])
    assert "first bad sequence 7" in first_bad()


def test_modified_timestamp_is_named(chain):
    tamper("UPDATE {table} SET timestamp = %s WHERE sequence = 2", ["2001-01-01 00:00:00+00:00"])
    assert "first bad sequence 2" in first_bad()


def test_deleted_event_is_named(chain):
    tamper("DELETE FROM {table} WHERE sequence = 5")
    assert "first bad sequence 5" in first_bad()


def test_deleted_and_renumbered_events_are_named(chain):
    tamper("DELETE FROM {table} WHERE sequence = 5")
    tamper("UPDATE {table} SET sequence = -sequence WHERE sequence > 5")
    tamper("UPDATE {table} SET sequence = -sequence - 1 WHERE sequence < 0")
    tamper("UPDATE audit_chainhead SET sequence = 9")
    assert "first bad sequence 5" in first_bad()


def test_inserted_event_is_named(chain):
    # Make room at #6 and insert a plausible event there, re-using real hashes: without the key
    # neither its content MAC nor its chain hash can be right.
    tamper("UPDATE {table} SET sequence = -sequence WHERE sequence >= 6")
    tamper("UPDATE {table} SET sequence = -sequence + 1 WHERE sequence < 0")
    forged = build_event(action=audit.Action.MEMORY_READ, target=("memories.memory", 99))
    forged.sequence, forged.previous_hash, forged.hash = 6, chain[4].hash, chain[5].hash
    forged.content_mac = chain[5].content_mac
    AuditEvent.objects.bulk_create([forged])
    tamper("UPDATE audit_chainhead SET sequence = 11")
    message = first_bad()
    assert "first bad sequence 6" in message


def test_reordered_events_are_named(chain):
    tamper("UPDATE {table} SET sequence = 1000 WHERE sequence = 3")
    tamper("UPDATE {table} SET sequence = 3 WHERE sequence = 4")
    tamper("UPDATE {table} SET sequence = 4 WHERE sequence = 1000")
    assert "first bad sequence 3" in first_bad()


def test_truncated_tail_is_named_through_the_database_head(chain):
    tamper("DELETE FROM {table} WHERE sequence >= 9")
    assert "first bad sequence 9" in first_bad()


def test_truncated_tail_is_named_through_the_published_head_even_if_the_database_head_is_moved(chain):
    verify_command()  # publishes #10
    seal_pending()  # the AUDIT_VERIFIED event becomes #11
    tamper("DELETE FROM {table} WHERE sequence >= 8")
    last = AuditEvent.objects.get(sequence=7)
    ChainHead.objects.filter(pk=1).update(sequence=7, hash=last.hash)
    message = first_bad()
    assert "first bad sequence 8" in message


def test_a_rewritten_tail_differs_from_the_published_head(chain):
    verify_command()
    tamper("UPDATE {table} SET hash = %s WHERE sequence = 10", ["ab" * 32])
    assert "first bad sequence 10" in first_bad()


def test_an_edited_heads_file_is_reported(chain):
    verify_command()
    path = heads_path()
    line = json.loads(path.read_text().splitlines()[-1])
    line["sequence"] = 3
    path.write_text(json.dumps(line) + "\n")
    assert "published-heads file is not authentic" in first_bad()


def test_an_unsealed_event_forged_in_the_database_is_refused_and_reported(chain):
    forged = build_event(action=audit.Action.STAFF_GRANTED, subject="mallory")
    forged.context = {"granted_by": "nobody"}  # changed after the MAC was computed
    AuditEvent.objects.bulk_create([forged])
    result = seal_pending()
    assert result.refused_ids == [forged.pk]
    assert AuditEvent.objects.get(pk=forged.pk).sequence is None
    message = first_bad()
    assert f"unsealed event id {forged.pk}" in message


def test_a_copied_unsealed_row_cannot_be_inserted_twice(chain):
    event = build_event(action=audit.Action.STAFF_GRANTED, subject="alice")
    AuditEvent.objects.bulk_create([event])
    copy = build_event(action=audit.Action.STAFF_GRANTED, subject="alice")
    copy.uuid, copy.timestamp, copy.content_mac = event.uuid, event.timestamp, event.content_mac
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.bulk_create([copy])


def test_range_verification(chain):
    output = verify_command("--from", "3", "--to", "6")
    assert "Checked 4 events (#3..#6)" in output
    assert "Published head" not in output  # only a full verification publishes
    tamper("UPDATE {table} SET outcome = 'failure' WHERE sequence = 8")
    verify_command("--from", "3", "--to", "6")
    assert "first bad sequence 8" in first_bad("--from", "7")


def test_unsealed_events_are_reported(chain):
    audit.record(action=audit.Action.LOGOUT)
    output = verify_command()
    assert "1 event(s) not sealed yet" in output


def test_verify_with_a_wrong_key_fails_at_the_first_event(chain, settings):
    """Another key under the same id (the ring was replaced, not rotated): nothing verifies."""
    key_id = chain[0].content_key_id
    settings.ENCRYPTION_AUDIT_CHAIN_KEYS = make_key(key_id)
    assert "first bad sequence 1" in first_bad()


def test_every_mac_is_stored_with_the_id_of_the_key_that_made_it(chain, settings):
    primary = settings.ENCRYPTION_AUDIT_CHAIN_KEYS.split(":", 1)[0]
    assert {(event.content_key_id, event.chain_key_id) for event in chain} == {(primary, primary)}


def test_report_counts_and_resynchronises_after_a_problem(chain):
    tamper("UPDATE {table} SET outcome = 'failure' WHERE sequence IN (2, 8)")
    report = verify_chain()
    assert report.first_bad_sequence == 2
    assert sorted({problem.sequence for problem in report.problems}) == [2, 8]
    assert report.checked == 10


def test_content_mac_is_stable_across_the_database_round_trip(chain):
    for event in AuditEvent.objects.all():
        assert content_mac({name: getattr(event, name) for name in (
            "uuid", "timestamp", "action", "outcome", "actor_id", "actor_username", "actor_is_staff", "subject_id",
            "subject_username", "subject_is_staff", "target_type", "target_id", "target_repr", "request_id",
            "client_ip", "user_agent", "api_key_id", "context",
        )}) == event.content_mac


def test_floats_and_big_numbers_in_context_survive_the_round_trip(user, undeclared_context_keys):
    context = {"count": 3, "ratio": 0.1, "big": 1e20, "one": 1.0, "tiny": 1e-7, "negative": -2.5e-300}
    audit.record(action=audit.Action.MEMORY_LIST, context=context)
    seal_pending()
    assert verify_chain().ok


def test_events_sealed_during_a_verification_are_left_for_the_next_one(chain):
    def record_more(count):
        audit.record(action=audit.Action.LOGOUT)
        seal_pending()

    report = verify_chain(chunk_size=3, progress=record_more)
    assert report.ok, report.problems
    assert report.last_sequence == 10
    assert verify_chain().last_sequence > 10


def test_a_forged_sealed_event_beyond_the_head_is_reported(chain):
    forged = build_event(action=audit.Action.STAFF_GRANTED, subject="mallory")
    forged.sequence, forged.previous_hash, forged.hash = 11, chain[-1].hash, "cd" * 32
    AuditEvent.objects.bulk_create([forged])
    assert "first bad sequence 11" in first_bad()
