"""Key rotation: every encrypted column moves to the primary key, resumably and idempotently."""

from __future__ import annotations

import datetime
import os
import random
import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.actions import Action, Outcome
from encryption.crypto import token_key_id
from encryption.fields import blind_index_filter
from encryption.services import _apply, encryption_keys_rotate
from encryption.tasks import encryption_keys_rotate_task
from tests.encryption.helpers import legacy_token, make_key, raw_value, ring, set_raw_value
from tests.support import servers
from tests.support.servers import PROJECT_DIR
from tests.testapp.models import EncryptedMemory, SecretRecord

ENCRYPTED = ("note", "title", "email", "metadata", "birthday", "seen_at", "score")


def _snapshot() -> dict:
    return {
        record.pk: {name: getattr(record, name) for name in (*ENCRYPTED, "label")}
        for record in SecretRecord.objects.order_by("pk")
    }


def _seed(count: int, *, legacy_every: int = 0) -> None:
    generator = random.Random(count)
    records = [
        SecretRecord(
            label=f"row {index}",
            note="".join(generator.choice("abcdefgh ") for _ in range(generator.randint(0, 300))),
            title=f"title {index}",
            email=f"person{index}@example.org" if index % 3 else None,
            metadata={"index": index, "tags": ["a", "b"][: index % 3]},
            birthday=datetime.date(1970, 1, 1) + datetime.timedelta(days=index),
            seen_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(minutes=index),
            score=index - count // 2,
        )
        for index in range(count)
    ]
    SecretRecord.objects.bulk_create(records)
    if legacy_every:
        for record in SecretRecord.objects.order_by("pk")[::legacy_every]:
            set_raw_value(SecretRecord, record.pk, "note", legacy_token("EncryptedTextField", record.note))
            set_raw_value(SecretRecord, record.pk, "birthday", legacy_token("EncryptedDateField", record.birthday))


def _key_ids(column: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote(column)} FROM testapp_secretrecord WHERE {quote(column)} IS NOT NULL")  # noqa: S608
        for (value,) in cursor.fetchall():
            key_id = token_key_id(value) if column != "email_index" else value.partition(":")[0]
            counts[key_id] = counts.get(key_id, 0) + 1
    return counts


@pytest.fixture
def new_rings(settings):
    """Put a new primary key in front of the field and blind-index rings (the old ones stay)."""
    field_ring = ring(make_key("field-2"), settings.ENCRYPTION_FIELD_KEYS)
    index_ring = ring(make_key("bi-2"), settings.ENCRYPTION_BLIND_INDEX_KEYS)

    def apply():
        settings.ENCRYPTION_FIELD_KEYS = field_ring
        settings.ENCRYPTION_BLIND_INDEX_KEYS = index_ring
        return {"ENCRYPTION_FIELD_KEYS": field_ring, "ENCRYPTION_BLIND_INDEX_KEYS": index_ring}

    return apply


@pytest.mark.django_db
def test_rotation_reencrypts_every_column_converts_legacy_and_rekeys_blind_indexes(
    new_rings, legacy_key, recorded_events
):
    _seed(30, legacy_every=7)
    EncryptedMemory.objects.create(title="m", content="memory content", metadata={"k": 1})
    before = _snapshot()
    assert _key_ids("note")["legacy-fernet"] == 5
    new_rings()
    seen = []

    result = encryption_keys_rotate(batch_size=8, progress=lambda label, rows: seen.append((label, rows)))

    assert _snapshot() == before, "every value reads back exactly as before"
    for column in ENCRYPTED:
        assert set(_key_ids(column)) == {"field-2"}, column
    assert set(_key_ids("email_index")) == {"bi-2"}
    assert token_key_id(raw_value(EncryptedMemory, EncryptedMemory.objects.get().pk, "content")) == "field-2"
    assert list(SecretRecord.objects.filter(blind_index_filter(SecretRecord, "email", "PERSON4@example.org"))) == [
        SecretRecord.objects.get(label="row 4")
    ]
    by_label = {item.label: item for item in result.models}
    secret = by_label["testapp.SecretRecord"]
    assert (secret.rows_scanned, secret.rows_updated, secret.legacy_values_converted) == (30, 30, 10)
    assert secret.indexes_recomputed == 20
    assert by_label["testapp.EncryptedMemory"].rows_updated == 1
    assert sum(rows for label, rows in seen if label == "testapp.SecretRecord") == 30
    assert [event["action"] for event in recorded_events] == [Action.KEY_ROTATION_STARTED, Action.KEY_ROTATION_FINISHED]
    assert recorded_events[1]["outcome"] == "success"
    assert recorded_events[1]["context"]["rows_updated"] == 31
    assert "memory content" not in str(recorded_events)


@pytest.mark.django_db
def test_rotation_is_idempotent(new_rings, recorded_events):
    _seed(12)
    new_rings()
    first = encryption_keys_rotate(batch_size=5)
    tokens = {pk: raw_value(SecretRecord, pk, "note") for pk in SecretRecord.objects.values_list("pk", flat=True)}
    second = encryption_keys_rotate(batch_size=5)
    assert first.rows_updated == 12
    assert second.rows_updated == 0
    assert second.rows_scanned == 12
    assert {pk: raw_value(SecretRecord, pk, "note") for pk in tokens} == tokens, "nothing rewritten twice"


@pytest.mark.django_db
def test_undecryptable_values_are_left_as_they_were_and_reported(new_rings, recorded_events):
    _seed(4)
    victim = SecretRecord.objects.order_by("pk")[1]
    note = raw_value(SecretRecord, victim.pk, "note")
    tampered = note[:-6] + ("A" if note[-6] != "A" else "B") + note[-5:]
    set_raw_value(SecretRecord, victim.pk, "note", tampered)
    new_rings()

    result = encryption_keys_rotate(batch_size=2)

    assert result.values_failed == 1
    assert not result.complete
    assert raw_value(SecretRecord, victim.pk, "note") == tampered, "the failing value is not overwritten"
    assert token_key_id(raw_value(SecretRecord, victim.pk, "title")) == "field-2", "its other columns rotate"
    assert recorded_events[-2]["action"] == Action.KEY_ROTATION_FINISHED
    assert recorded_events[-2]["outcome"] == "failure"
    assert recorded_events[-1]["action"] == Action.KEY_ROTATION_FAILED
    assert (recorded_events[1]["action"], recorded_events[1]["outcome"]) == (Action.DECRYPTION_FAILED, Outcome.FAILURE)
    assert recorded_events[1]["context"]["field"] == "testapp.secretrecord.note"
    with pytest.raises(CommandError, match="1 values left as they were"):
        call_command("rotate_encryption_keys", "--no-progress", stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_a_row_changed_during_rotation_keeps_the_new_value(new_rings, recorded_events):
    _seed(1)
    record = SecretRecord.objects.get()
    stored = raw_value(SecretRecord, record.pk, "note")
    new_rings()
    record.note = "written by the application meanwhile"
    record.save()
    from encryption.services import ModelRotation

    stats = ModelRotation(label="testapp.SecretRecord")
    _apply(SecretRecord, [(record.pk, {"note": (stored, "nv1:field-2:stale")})], stats=stats, using="default")
    assert stats.rows_changed_concurrently == 1
    assert SecretRecord.objects.get().note == "written by the application meanwhile"


@pytest.mark.django_db
def test_rotation_command_prints_per_model_counts(new_rings, recorded_events):
    _seed(3)
    new_rings()
    out, err = StringIO(), StringIO()
    call_command("rotate_encryption_keys", "--batch-size", "2", stdout=out, stderr=err)
    assert "testapp.SecretRecord: 3 rows scanned, 3 updated" in out.getvalue()
    assert "Rotation finished" in out.getvalue()
    assert "rows" in err.getvalue(), "the progress bar goes to stderr"


@pytest.mark.django_db
def test_rotation_task_runs_the_service(new_rings, recorded_events):
    _seed(2)
    new_rings()
    summary = encryption_keys_rotate_task.delay(batch_size=10).get()
    assert summary["rows_updated"] == 2
    assert summary["field_key_id"] == "field-2"


@pytest.mark.django_db
def test_retiring_a_key_after_rotation_leaves_everything_readable(new_rings, recorded_events, settings):
    _seed(5)
    before = _snapshot()
    new_rings()
    encryption_keys_rotate()
    settings.ENCRYPTION_FIELD_KEYS = settings.ENCRYPTION_FIELD_KEYS.split(",")[0]
    settings.ENCRYPTION_BLIND_INDEX_KEYS = settings.ENCRYPTION_BLIND_INDEX_KEYS.split(",")[0]
    assert _snapshot() == before


@pytest.mark.django_db
def test_rotation_and_decryption_failures_become_audit_events(new_rings):
    from audit.models import AuditEvent

    _seed(2)
    victim = SecretRecord.objects.order_by("pk").first()
    set_raw_value(SecretRecord, victim.pk, "title", raw_value(SecretRecord, victim.pk, "note"))
    new_rings()
    result = encryption_keys_rotate()
    assert result.values_failed == 1
    events = list(AuditEvent.objects.order_by("id").values_list("action", "outcome", "context"))
    assert [(action, outcome) for action, outcome, _context in events] == [
        (Action.KEY_ROTATION_STARTED, Outcome.SUCCESS),
        (Action.DECRYPTION_FAILED, Outcome.FAILURE),
        (Action.KEY_ROTATION_FINISHED, Outcome.FAILURE),
        (Action.KEY_ROTATION_FAILED, Outcome.FAILURE),
    ]
    assert events[1][2]["field"] == "testapp.secretrecord.title"
    assert events[2][2]["values_failed"] == 1
    [problem] = events[3][2]["problems"]
    assert (problem["model"], problem["pk"], problem["column"]) == ("testapp.SecretRecord", str(victim.pk), "title")
    assert events[3][2]["field_key_id"] == "field-2"


@pytest.mark.django_db
@pytest.mark.audit_coverage("system.decryption_failed", "system.key_rotation_failed")
def test_the_command_records_a_value_that_does_not_decrypt_and_the_failed_rotation(new_rings):
    from audit.models import AuditEvent

    _seed(2)
    victim = SecretRecord.objects.order_by("pk").first()
    set_raw_value(SecretRecord, victim.pk, "title", raw_value(SecretRecord, victim.pk, "note"))
    new_rings()
    with pytest.raises(CommandError, match="1 values left as they were"):
        call_command("rotate_encryption_keys", "--no-progress", stdout=StringIO(), stderr=StringIO())
    assert list(AuditEvent.objects.order_by("id").values_list("action", "outcome")) == [
        (Action.KEY_ROTATION_STARTED, Outcome.SUCCESS),
        (Action.DECRYPTION_FAILED, Outcome.FAILURE),
        (Action.KEY_ROTATION_FINISHED, Outcome.FAILURE),
        (Action.KEY_ROTATION_FAILED, Outcome.FAILURE),
    ]


# ---------------------------------------------------------------------------------------------
# kill -9 in the middle, then run again
# ---------------------------------------------------------------------------------------------
def _start_rotation(env_keys: dict, *, pause: float, batch_size: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": servers.test_database_url(),
        "DATABASE_POOL": "false",
        **env_keys,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rotate_encryption_keys",
            "--batch-size",
            str(batch_size),
            "--pause",
            str(pause),
            "--no-progress",
        ],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when_rotated(process: subprocess.Popen, *, at_least: int, total: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = _key_ids("note").get("field-2", 0)
        if done >= at_least:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return done
        if process.poll() is not None:
            raise AssertionError(f"rotation ended before it could be killed: {process.communicate()}")
        time.sleep(0.01)
    process.kill()
    raise AssertionError("rotation made no progress")


@pytest.mark.django_db(transaction=True)
def test_rotation_killed_with_sigkill_finishes_when_run_again(new_rings, legacy_key, settings):
    total = 240
    _seed(total, legacy_every=9)
    before = _snapshot()
    env_keys = {**new_rings(), "FIELD_ENCRYPTION_KEY": legacy_key}

    # Kill it twice at different points (the second run resumes the first's work), then finish.
    for at_least in (40, 120):
        process = _start_rotation(env_keys, pause=0.05, batch_size=20)
        done = _kill_when_rotated(process, at_least=at_least, total=total)
        assert process.returncode == -signal.SIGKILL
        assert 0 < done < total
        counts = _key_ids("note")
        assert sum(counts.values()) == total, "no row lost"
        assert counts.get("field-2", 0) < total, "killed mid-run"
        assert _snapshot() == before, "every row still decrypts to its value (nothing double-encrypted)"

    finished = subprocess.run(
        [sys.executable, "manage.py", "rotate_encryption_keys", "--batch-size", "50", "--no-progress"],
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": servers.test_database_url(),
            "DATABASE_POOL": "false",
            **env_keys,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert SecretRecord.objects.count() == total
    for column in ENCRYPTED:
        assert set(_key_ids(column)) == {"field-2"}, column
    assert set(_key_ids("email_index")) == {"bi-2"}
    assert _snapshot() == before

    # Idempotent: one more run changes nothing.
    again = subprocess.run(
        [sys.executable, "manage.py", "rotate_encryption_keys", "--no-progress"],
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": servers.test_database_url(),
            "DATABASE_POOL": "false",
            **env_keys,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Rotation finished: 0 rows updated." in again.stdout
