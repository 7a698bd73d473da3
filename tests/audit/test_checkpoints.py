"""The Merkle tree grown by the sealer, signed checkpoints, and their publication to a file and a witness."""

from __future__ import annotations

import base64
import datetime
import json
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError

import audit
from audit import checkpoints
from audit import offline_verifier as tlog
from audit.chain import CONTENT_FIELDS
from audit.models import AuditCheckpoint, AuditEvent, ChainHead
from audit.sealing import seal_pending
from tests.audit.support import public_key, tamper
from tests.encryption.helpers import make_key

pytestmark = pytest.mark.django_db


def record(count: int, user=None, start: int = 0) -> None:
    for number in range(start, start + count):
        audit.record(action=audit.Action.MEMORY_READ, actor=user, target=("memories.memory", number))
    seal_pending()


def tree_of_the_events() -> tuple[int, bytes]:
    """The tree recomputed from the event rows, leaf by leaf, with the offline verifier's functions only."""
    rows = AuditEvent.objects.filter(sequence__isnull=False).order_by("sequence").values("sequence", *CONTENT_FIELDS)
    leaves = [tlog.event_leaf_hash(row["sequence"], row) for row in rows]
    return len(leaves), tlog.root_of(leaves)


def publish(*args) -> str:
    out = StringIO()
    call_command("audit_checkpoint", *args, stdout=out)
    return out.getvalue()


def file_lines(audit_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (audit_dir / "checkpoints.log").read_text().splitlines()]


def test_the_sealer_grows_the_tree_with_each_event_and_keeps_only_the_frontier(user):
    for batch, count in enumerate((1, 6, 5)):
        record(count, user, start=batch * 10)
        head = ChainHead.objects.get(pk=1)
        size, root = tree_of_the_events()
        assert head.tree_size == head.sequence == size
        assert tlog.frontier_root([bytes.fromhex(value) for value in head.tree_frontier.split()]) == root
        assert len(head.tree_frontier.split()) == bin(size).count("1")


def test_a_checkpoint_is_signed_by_the_ring_key_and_written_to_the_checkpoints_log(user, audit_dir):
    record(7, user)
    output = publish()
    assert "Signed checkpoint at tree size 7" in output
    stored = AuditCheckpoint.objects.get()
    assert stored.key_id == "dev-audit-checkpoint"  # the primary of the audit_checkpoint ring (test settings)
    verifier = tlog.parse_verifier_key(public_key())
    (line,) = file_lines(audit_dir)
    checkpoint = tlog.open_checkpoint(line["note"], verifier)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (checkpoints.origin(), 7, tree_of_the_events()[1])
    assert checkpoint.time.endswith("Z")
    assert (audit_dir / "checkpoints.log").stat().st_mode & 0o777 == 0o600

    assert "Nothing new" in publish()
    assert len(file_lines(audit_dir)) == 1, "an unchanged tree is not checkpointed twice"
    record(2, user, start=100)
    publish()
    assert [line["tree_size"] for line in file_lines(audit_dir)] == [7, 9]


def test_after_a_rotation_the_new_key_signs_and_both_public_keys_are_printed(user, settings):
    previous = settings.ENCRYPTION_AUDIT_CHECKPOINT_KEYS
    settings.ENCRYPTION_AUDIT_CHECKPOINT_KEYS = f"{make_key('checkpoint-2027')},{previous}"
    record(3, user)
    publish()
    assert AuditCheckpoint.objects.get().key_id == "checkpoint-2027"
    out = StringIO()
    call_command("audit_checkpoint", "--public-key", stdout=out)
    keys = out.getvalue().split()
    assert len(keys) == 2
    note = AuditCheckpoint.objects.get().note
    tlog.open_checkpoint(note, tlog.parse_verifier_key(keys[0]))
    with pytest.raises(tlog.VerificationError):
        tlog.open_checkpoint(note, tlog.parse_verifier_key(keys[1]))


def test_a_missing_signing_key_is_one_clear_line(settings):
    settings.ENCRYPTION_AUDIT_CHECKPOINT_KEYS = ""
    with pytest.raises(CommandError, match="audit_checkpoint signing key is not available"):
        call_command("audit_checkpoint", "--public-key", stdout=StringIO())


def test_the_sealer_publishes_at_the_interval(user, audit_dir, settings, monkeypatch):
    """AUDIT_CHECKPOINT_INTERVAL: the first sealing run after the interval signs a checkpoint; none before."""
    settings.AUDIT_CHECKPOINT_INTERVAL = 60
    checkpoints._next_due.update(at=0.0, interval=None)
    record(2, user)
    assert AuditCheckpoint.objects.count() == 1
    record(3, user, start=10)
    assert AuditCheckpoint.objects.count() == 1, "within the interval, no new checkpoint"
    later = checkpoints.timezone.now() + datetime.timedelta(seconds=61)
    monkeypatch.setattr(checkpoints.timezone, "now", lambda: later)
    checkpoints._next_due.update(at=0.0)
    record(1, user, start=20)
    assert list(AuditCheckpoint.objects.order_by("tree_size").values_list("tree_size", flat=True)) == [2, 6]
    assert [line["tree_size"] for line in file_lines(audit_dir)] == [2, 6]


def test_a_failing_sink_never_stops_sealing(user, settings):
    settings.AUDIT_CHECKPOINT_INTERVAL = 60
    settings.AUDIT_CHECKPOINT_SINKS = ["file", "witness"]
    settings.AUDIT_WITNESS_URL = "http://127.0.0.1:9"  # nothing listens there
    checkpoints._next_due.update(at=0.0, interval=None)
    record(3, user)
    assert ChainHead.objects.get(pk=1).sequence == 3
    assert AuditCheckpoint.objects.count() == 1
    with pytest.raises(CommandError, match="not published to: witness"):
        publish()


def witness_size(url: str) -> int:
    with urllib.request.urlopen(f"{url}/checkpoint", timeout=5) as response:
        return int(response.read().decode().split("\n")[1])


def test_the_witness_accepts_each_checkpoint_that_extends_the_last(user, witness):
    record(5, user)
    assert "witness: ok" in publish()
    record(6, user, start=10)
    assert "witness: ok" in publish()
    assert witness_size(witness) == 11


def test_the_witness_refuses_a_rewritten_tail_and_says_which_check_fired(user, witness, audit_dir):
    """An owner of the database cuts the newest events, rewinds the head and the tree, and seals others."""
    record(6, user)
    publish()
    head = ChainHead.objects.get(pk=1)
    kept = AuditEvent.objects.get(sequence=4)
    frontier: list[bytes] = []
    rows = AuditEvent.objects.filter(sequence__lte=4).order_by("sequence").values("sequence", *CONTENT_FIELDS)
    for size, row in enumerate(rows):
        tlog.frontier_append(frontier, size, tlog.event_leaf_hash(row["sequence"], row))
    tamper("DELETE FROM {table} WHERE sequence > 4")
    ChainHead.objects.filter(pk=1).update(
        sequence=4, hash=kept.hash, tree_size=4, tree_frontier=" ".join(value.hex() for value in frontier)
    )
    assert head.tree_size == 6
    # The host's own record of the publication goes too, or the sealer would not number #5 again.
    (audit_dir / "checkpoints.log").unlink()
    record(4, user, start=50)  # the forged history now grows past the published size: 8 events
    with pytest.raises(CommandError, match="witness"):
        publish()
    assert witness_size(witness) == 6, "the witness kept the honest checkpoint"
    result = checkpoints.checkpoint_publish(create=False)
    assert result.sinks["witness"].startswith("witness answered 422: not consistent with the checkpoint held at 6")


def test_the_witness_answers_bad_requests_clearly(witness):
    def post(body: bytes) -> tuple[int, str]:
        request = urllib.request.Request(f"{witness}/add-checkpoint", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    assert post(b"no blank line")[0] == 400
    assert post(b"old x\n\nnote")[0] == 400
    assert post(b"old 0\n!!!\n\nnote")[0] == 400
    other = tlog.Checkpoint(origin="ninaivalaigal.local/audit", size=1, root=b"\x00" * 32)
    forged = tlog.sign_checkpoint(other, private_key=Ed25519PrivateKey.generate())
    status, text = post(f"old 0\n\n{forged}".encode())
    assert status == 403 and "no signature" in text


def test_the_witness_body_is_the_tlog_witness_request():
    proof = [b"\x01" * 32, b"\x02" * 32]
    body = checkpoints.witness_body(old_size=4, proof=proof, note="origin\n8\nroot\n\n\u2014 sig\n")
    encoded = [base64.b64encode(value).decode() for value in proof]
    assert body.split("\n")[:4] == ["old 4", *encoded, ""]


@pytest.mark.parametrize(
    ("setting", "value", "check_id"),
    [
        ("AUDIT_CHECKPOINT_ORIGIN", "has a space", "audit.E008"),
        ("AUDIT_CHECKPOINT_ORIGIN", "a+b", "audit.E008"),
        ("AUDIT_CHECKPOINT_SINKS", ["file", "carrier-pigeon"], "audit.E009"),
        ("AUDIT_CHECKPOINT_SINKS", ["witness"], "audit.E010"),
        ("AUDIT_CHECKPOINT_INTERVAL", -1, "audit.E011"),
    ],
)
def test_bad_checkpoint_settings_are_refused_by_the_system_checks(settings, setting, value, check_id):
    from audit.checks import check_audit_settings

    setattr(settings, setting, value)
    assert check_id in [message.id for message in check_audit_settings()]


def test_the_email_sink_mails_each_new_checkpoint_once_through_a_real_smtp_server(user, settings):
    """Each new checkpoint's signed note goes to AUDIT_CHECKPOINT_EMAIL_TO; the mail verifies offline."""
    import email as email_parser

    from tests.monitoring.receivers import SMTPServer
    from tests.support.servers import free_port

    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.AUDIT_CHECKPOINT_SINKS = ["file", "email"]
    settings.AUDIT_CHECKPOINT_EMAIL_TO = ["audit-checkpoints@example.org"]
    with SMTPServer(port=port) as smtp:
        record(3, user)
        result = checkpoints.checkpoint_publish()
        assert result.sinks == {"file": "ok", "email": "ok"}
        assert checkpoints.checkpoint_publish().sinks["email"] == "ok", "nothing new: not mailed again"
    [envelope] = smtp.messages
    assert envelope.rcpt_tos == ["audit-checkpoints@example.org"]
    message = email_parser.message_from_bytes(envelope.content)
    assert message["Subject"] == "Audit checkpoint ninaivalaigal.local/audit: 3 events"
    note = message.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert checkpoints.open_checkpoint(note).size == 3


def test_the_email_sink_without_recipients_is_refused_by_a_system_check(settings):
    from audit.checks import check_audit_settings

    settings.AUDIT_CHECKPOINT_SINKS = ["file", "email"]
    settings.AUDIT_CHECKPOINT_EMAIL_TO = []
    assert "audit.E012" in {message.id for message in check_audit_settings()}
