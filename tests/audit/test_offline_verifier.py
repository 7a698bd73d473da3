"""``audit_proof`` and the standalone verifier, run as a subprocess outside Django with the public key only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import audit
from audit.checkpoints import checkpoint_publish
from audit.exports import ExportPlan, export_stream
from audit.models import AuditCheckpoint, AuditEvent
from audit.sealing import seal_pending
from tests.audit.support import public_key, tamper

pytestmark = pytest.mark.django_db

VERIFIER = Path(__file__).resolve().parents[2] / "audit" / "offline_verifier.py"


@pytest.fixture(autouse=True)
def _synthetic_contexts(undeclared_context_keys):
    """The events carry a number and a float in their context, to show both survive the round trip."""


@pytest.fixture
def standalone(tmp_path):
    """The verifier copied out of the project and run with Django made unimportable: it needs neither."""
    folder = tmp_path / "auditor"
    folder.mkdir()
    copy = folder / "offline_verifier.py"
    shutil.copy(VERIFIER, copy)
    key = public_key()

    def run(*arguments: str) -> subprocess.CompletedProcess:
        program = (
            "import runpy, sys; sys.modules['django'] = None; "
            f"sys.argv = {['offline_verifier.py', '--key', key, *arguments]!r}; "
            f"runpy.run_path({str(copy)!r}, run_name='__main__')"
        )
        return subprocess.run(
            [sys.executable, "-c", program], cwd=folder, capture_output=True, text=True, timeout=60, check=False
        )

    return run


def record(count: int, user, start: int = 0) -> None:
    for number in range(start, start + count):
        audit.record(
            action=audit.Action.MEMORY_READ,
            actor=user,
            target=("memories.memory", number),
            context={"count": number, "ratio": 0.5},
        )
    seal_pending()


def proof(*arguments) -> dict:
    out = StringIO()
    call_command("audit_proof", *[str(argument) for argument in arguments], stdout=out)
    return json.loads(out.getvalue())


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def test_an_event_and_its_inclusion_proof_verify_offline(user, tmp_path, standalone):
    record(11, user)
    checkpoint_publish()
    for sequence in (1, 6, 11):
        document = proof(sequence)
        assert (document["sequence"], document["leaf_index"], document["tree_size"]) == (sequence, sequence - 1, 11)
        result = standalone("inclusion", write(tmp_path, f"proof-{sequence}.json", json.dumps(document)))
        assert result.returncode == 0, result.stderr
        assert f"event #{sequence} is in the log at size 11" in result.stdout


def test_a_changed_event_or_proof_does_not_verify_offline(user, tmp_path, standalone):
    record(5, user)
    checkpoint_publish()
    document = proof(3)
    changed = json.loads(json.dumps(document))
    changed["event"]["context"]["count"] = 99
    result = standalone("inclusion", write(tmp_path, "changed.json", json.dumps(changed)))
    assert result.returncode == 1
    assert result.stderr.startswith("NOT VERIFIED: leaf 2 is not in the tree of size 5")
    moved = dict(document, leaf_index=3)
    assert standalone("inclusion", write(tmp_path, "moved.json", json.dumps(moved))).returncode == 1
    resigned = dict(document, checkpoint=document["checkpoint"].replace("\n5\n", "\n6\n"))
    result = standalone("inclusion", write(tmp_path, "resigned.json", json.dumps(resigned)))
    assert result.returncode == 1 and "signature" in result.stderr


def test_a_consistency_proof_between_two_checkpoints_verifies_offline(user, tmp_path, standalone):
    record(5, user)
    checkpoint_publish()
    record(8, user, start=10)
    checkpoint_publish()
    document = proof("--consistency", 5, 13)
    result = standalone("consistency", write(tmp_path, "consistency.json", json.dumps(document)))
    assert result.returncode == 0, result.stderr
    assert "the log at size 13 extends the log at size 5" in result.stdout
    document["consistency_path"] = document["consistency_path"][:-1]
    result = standalone("consistency", write(tmp_path, "cut.json", json.dumps(document)))
    assert result.returncode == 1 and "NOT VERIFIED" in result.stderr


def test_a_checkpoint_alone_verifies_offline_and_a_stranger_key_is_refused(user, tmp_path, standalone):
    record(2, user)
    checkpoint_publish()
    note = write(tmp_path, "checkpoint.txt", AuditCheckpoint.objects.get().note)
    result = standalone("checkpoint", note)
    assert result.returncode == 0 and "at size 2" in result.stdout


def test_the_consoles_export_verifies_offline_against_a_checkpoint(user, tmp_path, standalone):
    """An auditor holding an export and a checkpoint proves no event was changed, removed or reordered."""
    record(9, user)
    checkpoint_publish()
    sealed = AuditEvent.objects.filter(sequence__isnull=False).order_by("timestamp", "id")
    export = b"".join(export_stream(ExportPlan(format="jsonl", queryset=sealed, rows=sealed.count()))).decode()
    events = write(tmp_path, "export.jsonl", export)
    note = write(tmp_path, "checkpoint.txt", AuditCheckpoint.objects.get().note)
    result = standalone("events", events, "--checkpoint", note)
    assert result.returncode == 0, result.stderr
    assert "the 9 exported events are exactly the log at size 9" in result.stdout

    lines = export.splitlines()
    dropped = write(tmp_path, "dropped.jsonl", "\n".join(lines[:3] + lines[4:]))
    result = standalone("events", dropped, "--checkpoint", note)
    assert result.returncode == 1 and "event #4 is missing" in result.stderr
    edited = json.loads(lines[5])
    edited["target_id"] = "someone-else"
    changed = write(tmp_path, "changed.jsonl", "\n".join([*lines[:5], json.dumps(edited), *lines[6:]]))
    result = standalone("events", changed, "--checkpoint", note)
    assert result.returncode == 1 and "do not hash to the checkpoint's root" in result.stderr


def test_bad_input_to_the_verifier_is_one_line_and_a_status(tmp_path, standalone):
    result = standalone("inclusion", write(tmp_path, "nonsense.json", "{not json"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "is not JSON" in result.stderr
    result = standalone("inclusion", str(tmp_path / "absent.json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_audit_proof_refuses_what_it_cannot_prove_with_one_line(user):
    with pytest.raises(CommandError, match="No sealed audit event has sequence 1"):
        proof(1)
    record(3, user)
    with pytest.raises(CommandError, match="No checkpoint yet"):
        proof(1)
    checkpoint_publish()
    record(1, user, start=10)
    with pytest.raises(CommandError, match="is not in the checkpoint of 3 events"):
        proof(4)
    with pytest.raises(CommandError, match="No checkpoint of tree size 9"):
        proof("--consistency", 3, 9)
    tamper("DELETE FROM {table} WHERE sequence = 2")
    with pytest.raises(CommandError, match="no longer in the database: event #2"):
        proof(1)
