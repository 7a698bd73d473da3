"""``audit_verify`` against what was published: checkpoints, the witness and the heads file.

Each test plays an attacker with the database (and sometimes the chain's HMAC key) and asserts
which check fired, not only that verification failed.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError

import audit
from audit import offline_verifier as tlog
from audit.chain import CONTENT_FIELDS, content_mac, link_hash, signing_key
from audit.checkpoints import checkpoint_publish
from audit.heads import heads_path
from audit.models import AuditCheckpoint, AuditEvent, ChainHead
from audit.sealing import seal_pending
from audit.verification import verify_chain
from tests.audit.support import tamper

pytestmark = pytest.mark.django_db


def record(count: int, user, start: int = 0) -> None:
    for number in range(start, start + count):
        audit.record(action=audit.Action.MEMORY_READ, actor=user, target=("memories.memory", number))
    seal_pending()


def kinds(report) -> set[str]:
    return {problem.kind for problem in report.problems}


def frontier_of(sequence: int) -> str:
    """The tree's frontier over the events #1..``sequence`` as they now are, as the attacker recomputes it."""
    frontier: list[bytes] = []
    rows = AuditEvent.objects.filter(sequence__lte=sequence).order_by("sequence").values("sequence", *CONTENT_FIELDS)
    for size, row in enumerate(rows):
        tlog.frontier_append(frontier, size, tlog.event_leaf_hash(row["sequence"], row))
    return " ".join(value.hex() for value in frontier)


def rewind_to(sequence: int) -> None:
    """Delete the events after ``sequence`` and rewrite the head and the tree to match, as a database owner can."""
    kept = AuditEvent.objects.get(sequence=sequence)
    frontier = frontier_of(sequence)
    tamper("DELETE FROM {table} WHERE sequence > %s", [sequence])
    ChainHead.objects.filter(pk=1).update(sequence=sequence, hash=kept.hash, tree_size=sequence, tree_frontier=frontier)


@pytest.fixture
def published(user, audit_dir):
    """Eight events with checkpoints published at 4 and 8 (file sink)."""
    record(4, user)
    checkpoint_publish()
    record(4, user, start=10)
    checkpoint_publish()
    assert [line["tree_size"] for line in lines(audit_dir)] == [4, 8]
    return audit_dir


def lines(audit_dir) -> list[dict]:
    return [json.loads(line) for line in (audit_dir / "checkpoints.log").read_text().splitlines()]


def test_a_clean_chain_matches_every_published_checkpoint(published):
    report = verify_chain()
    assert report.ok, report.problems
    assert (report.tree_size, report.checkpoints_compared) == (8, 2)
    out = StringIO()
    call_command("audit_verify", "--no-progress", "--no-publish", stdout=out, stderr=StringIO())
    assert "Merkle tree of 8 events recomputed; 2 published checkpoint(s) compared with it." in out.getvalue()


def test_tail_truncation_with_a_rewritten_head_is_caught_by_the_checkpoints(published):
    """The head, the tree and the HMAC chain all agree after the cut: only the published checkpoint knows."""
    rewind_to(6)
    report = verify_chain()
    assert kinds(report) == {"checkpoint_truncated"}
    assert report.first_bad_sequence == 7, "named by the first missing event"
    assert "covers #8 but the chain ends at #6" in str(report.problems[0])
    assert "events after #4 are covered by no matching checkpoint" in str(report.problems[0])


def test_the_first_missing_sequence_stays_the_same_when_new_events_follow_a_truncation(published, user):
    """Sequence numbers are never given twice: after a cut tail the sealer goes on after the published #8."""
    rewind_to(6)
    first = verify_chain().first_bad_sequence
    record(1, user, start=50)
    assert AuditEvent.objects.get(target_id="50").sequence == 9, "not #7 again: #7 and #8 were published"
    report = verify_chain()
    assert (kinds(report), report.first_bad_sequence) == ({"truncated"}, 7)
    assert first == 7
    record(3, user, start=60)  # the chain grows past the checkpoint of 8, and still names #7
    report = verify_chain()
    assert (kinds(report), report.first_bad_sequence) == ({"truncated"}, 7)
    assert "events #7..#8 are missing: #8 was published" in str(report.problems[0])
    jumped = AuditEvent.objects.filter(action=audit.Action.AUDIT_SEQUENCE_JUMPED).get()
    assert (jumped.outcome, jumped.context["chain_head"], jumped.context["published_sequence"]) == ("failure", 6, 8)


def test_a_history_rewritten_with_the_chain_key_is_caught_by_the_signed_checkpoint(published):
    """Whoever holds the HMAC key can re-MAC and re-chain a changed event; the Ed25519 checkpoint still says no."""
    key = signing_key()
    rows = list(AuditEvent.objects.order_by("sequence").values("id", "sequence", *CONTENT_FIELDS))
    previous = AuditEvent.objects.get(sequence=5).previous_hash
    for row in rows[4:]:
        if row["sequence"] == 6:
            row["context"] = {"count": 999}
        mac = content_mac(row, key=key)
        hash_value = link_hash(sequence=row["sequence"], previous_hash=previous, content_mac_value=mac, key=key)
        tamper(
            "UPDATE {table} SET context = %s, content_mac = %s, previous_hash = %s, hash = %s WHERE id = %s",
            [json.dumps(row["context"]), mac, previous, hash_value, row["id"]],
        )
        previous = hash_value
    ChainHead.objects.filter(pk=1).update(hash=previous, tree_frontier=frontier_of(8))
    report = verify_chain(check_published=False)
    assert report.ok, "the HMAC chain alone cannot tell"
    report = verify_chain()
    assert kinds(report) == {"checkpoint_root"}
    assert report.first_bad_sequence == 5, "named after the last checkpoint that still matched (4)"


def test_a_deleted_checkpoints_log_is_reported(published):
    (published / "checkpoints.log").unlink()
    report = verify_chain()
    assert kinds(report) == {"checkpoints_missing"}
    assert "checkpoints.log is missing" in str(report.problems[0])


def test_a_cut_checkpoints_log_is_reported(published):
    path = published / "checkpoints.log"
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    report = verify_chain()
    assert kinds(report) == {"checkpoints_shortened"}


def test_truncation_after_deleting_the_checkpoints_log_and_rows_is_reported_as_overdue(published, settings):
    """Everything on the host erased: with a publication interval, sealed events without a checkpoint are a failure."""
    settings.AUDIT_CHECKPOINT_INTERVAL = 60
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    rewind_to(6)
    (published / "checkpoints.log").unlink()
    AuditCheckpoint.objects.all().delete()
    ChainHead.objects.filter(pk=1).update(tree_size=6)
    tamper("UPDATE {table} SET timestamp = %s WHERE sequence = 1", ["2026-01-01T00:00:00+00:00"])
    report = verify_chain()
    assert "checkpoints_missing" in kinds(report)
    assert "no checkpoint was published" in " ".join(str(problem) for problem in report.problems)


def test_a_forged_checkpoint_line_is_reported_as_not_signed(published):
    forged = tlog.sign_checkpoint(
        tlog.Checkpoint(origin="ninaivalaigal.local/audit", size=8, root=b"\x07" * 32),
        private_key=Ed25519PrivateKey.generate(),
    )
    with open(published / "checkpoints.log", "a") as handle:
        handle.write(json.dumps({"tree_size": 8, "note": forged}) + "\n")
    report = verify_chain()
    assert kinds(report) == {"checkpoint_signature"}


def test_a_shrinking_checkpoints_log_is_inconsistent(published):
    path = published / "checkpoints.log"
    first, second = path.read_text().splitlines(keepends=True)
    path.write_text(first + second + first)
    assert "checkpoints_inconsistent" in kinds(verify_chain())


def test_truncation_is_caught_by_the_witness_when_the_host_erased_its_own_records(user, witness, audit_dir):
    record(6, user)
    assert checkpoint_publish().ok
    rewind_to(4)
    (audit_dir / "checkpoints.log").unlink()
    AuditCheckpoint.objects.all().delete()
    report = verify_chain()
    assert kinds(report) == {"checkpoint_truncated"}
    assert "the witness" in str(report.problems[0])
    assert report.first_bad_sequence == 5, "the first missing event"
    assert "events after #0 are covered by no matching checkpoint" in str(report.problems[0])


def test_an_unreachable_witness_is_a_failure_not_silence(user, settings):
    settings.AUDIT_CHECKPOINT_SINKS = ["file", "witness"]
    settings.AUDIT_WITNESS_URL = "http://127.0.0.1:9"
    record(2, user)
    report = verify_chain()
    assert kinds(report) == {"witness"}
    assert "cannot be reached" in str(report.problems[0])


def test_a_deleted_heads_file_is_reported(user):
    record(3, user)
    call_command("audit_verify", "--no-progress", stdout=StringIO(), stderr=StringIO())  # publishes head #3
    heads_path().unlink()
    report = verify_chain()
    assert kinds(report) == {"heads_missing"}
    with pytest.raises(CommandError, match="FAILED"):
        call_command("audit_verify", "--no-progress", stdout=StringIO(), stderr=StringIO())


def test_a_cut_heads_file_is_reported(user):
    record(3, user)
    call_command("audit_verify", "--no-progress", stdout=StringIO(), stderr=StringIO())
    first_line = heads_path().read_text()
    record(2, user, start=10)
    call_command("audit_verify", "--no-progress", stdout=StringIO(), stderr=StringIO())
    heads_path().write_text(first_line)
    assert kinds(verify_chain()) == {"heads_shortened"}


def test_a_tree_left_behind_or_an_edited_frontier_is_reported(user):
    record(3, user)
    head = ChainHead.objects.get(pk=1)
    ChainHead.objects.filter(pk=1).update(tree_frontier=head.tree_frontier.replace(head.tree_frontier[:2], "00", 1))
    assert kinds(verify_chain()) == {"tree_state"}
    ChainHead.objects.filter(pk=1).update(tree_size=2, tree_frontier=head.tree_frontier)
    report = verify_chain()
    assert kinds(report) == {"tree_state"} and report.first_bad_sequence == 3


def test_a_malformed_frontier_never_stops_sealing(user):
    """The tree stops growing (and audit_verify says so); the chain goes on."""
    record(3, user)
    ChainHead.objects.filter(pk=1).update(tree_frontier="")
    record(2, user, start=10)
    head = ChainHead.objects.get(pk=1)
    assert (head.sequence, head.tree_size) == (5, 3)
    assert "tree_state" in kinds(verify_chain())
