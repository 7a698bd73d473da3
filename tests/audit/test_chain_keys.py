"""The chain's keys come from the key ring: rotation, retired keys, the legacy key, forged key ids."""

from __future__ import annotations

import datetime
import json
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

import audit
from audit.chain import LEGACY_KEY_ID, ChainKeyError, signing_key, verification_key
from audit.checks import check_audit_settings
from audit.heads import last_published_head
from audit.models import AuditEvent, AuditTombstone, ChainHead
from audit.retention.archive import verify_archive
from audit.retention.archive_file import ArchiveError
from audit.retention.services import archive_past_retention
from audit.sealing import seal_pending
from audit.services import write_held_events
from audit.verification import verify_chain
from encryption.errors import KeyConfigurationError
from tests.audit.support import record_legacy, tamper
from tests.encryption.helpers import make_key, ring

pytestmark = pytest.mark.django_db

OLD_ID = "dev-audit-chain"  # the primary of the test settings' audit_chain ring
NEW_ID = "chain-2027"
NEW_KEY = make_key(NEW_ID)


@pytest.fixture
def old_ring(settings) -> str:
    assert settings.ENCRYPTION_AUDIT_CHAIN_KEYS.startswith(OLD_ID + ":")
    return settings.ENCRYPTION_AUDIT_CHAIN_KEYS


def rotated(old_ring: str):
    """The ring after a rotation: a new primary, the old key kept to verify."""
    return override_settings(ENCRYPTION_AUDIT_CHAIN_KEYS=ring(NEW_KEY, old_ring))


def record(count: int) -> None:
    """Record ``count`` events and seal them (the test's transaction never commits, so seal here)."""
    for number in range(count):
        audit.record(action=audit.Action.MEMORY_READ, target=("memories.memory", number))
    seal_pending()


def key_ids() -> list[tuple[int, str | None, str | None]]:
    return list(
        AuditEvent.objects.sealed().order_by("sequence").values_list("sequence", "content_key_id", "chain_key_id")
    )


def verify_command() -> str:
    out = StringIO()
    call_command("audit_verify", "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


def failure() -> tuple[str, str]:
    """Run audit_verify expecting failure; return (the error, what it printed on stderr)."""
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("audit_verify", "--no-progress", "--no-publish", stdout=StringIO(), stderr=err)
    return str(caught.value), err.getvalue()


# --- Rotation ------------------------------------------------------------------------------------
def test_after_a_rotation_new_events_carry_the_new_id_and_old_ones_still_verify(old_ring):
    record(3)
    with rotated(old_ring):
        record(3)
        assert signing_key().id == NEW_ID
        assert key_ids() == [(1, OLD_ID, OLD_ID), (2, OLD_ID, OLD_ID), (3, OLD_ID, OLD_ID)] + [
            (sequence, NEW_ID, NEW_ID) for sequence in (4, 5, 6)
        ]
        assert "Audit chain OK." in verify_command()
        published = last_published_head()
        assert (published.sequence, published.key_id, published.mac_valid) == (6, NEW_ID, True)
        assert json.loads(Path(published_path()).read_text().splitlines()[-1])["key_id"] == NEW_ID


def published_path() -> Path:
    from audit.heads import heads_path

    return heads_path()


def test_the_sealer_seals_events_recorded_before_a_rotation(old_ring, settings):
    """Recorded under the old key, sealed after a rotation: content checked under the old key, chained under the new."""
    settings.AUDIT_SEAL_MODE = "periodic"
    for number in range(2):
        audit.record(action=audit.Action.MEMORY_READ, target=("memories.memory", number))
    assert AuditEvent.objects.unsealed().count() == 2
    with rotated(old_ring):
        result = seal_pending()
        assert (result.sealed, result.refused_ids) == (2, [])
        assert key_ids() == [(1, OLD_ID, NEW_ID), (2, OLD_ID, NEW_ID)]
        record(1)
        seal_pending()
        report = verify_chain()
        assert report.ok, report.problems
        assert report.checked == 3


def test_a_published_head_made_under_the_old_key_still_compares_after_a_rotation(old_ring):
    record(2)
    verify_command()  # publishes #2 under the old key
    with rotated(old_ring):
        record(1)
        seal_pending()
        report = verify_chain()
        assert report.ok, report.problems
        assert (report.published_head.key_id, report.published_head.mac_valid) == (OLD_ID, True)


def test_removing_the_old_key_fails_naming_the_first_event_under_it(old_ring):
    record_legacy(2)  # #1-#2: before the key ring
    record(3)  # #3-#5: the old key
    with rotated(old_ring):
        record(2)  # #6-#7: the new key
        assert verify_chain().ok
    with override_settings(ENCRYPTION_AUDIT_CHAIN_KEYS=NEW_KEY):  # the old key retired too early
        message, printed = failure()
        assert "first bad sequence 3" in message
        assert f"sequence 3: unknown_key: its content MAC cannot be checked: audit chain key '{OLD_ID}'" in printed
        assert "not in the audit_chain key ring" in printed
        report = verify_chain()
        assert {problem.sequence for problem in report.problems} == {3, 4, 5}
        assert {problem.kind for problem in report.problems} == {"unknown_key"}


def test_a_missing_key_for_the_last_published_head_is_reported(old_ring):
    record(2)
    verify_command()
    with override_settings(ENCRYPTION_AUDIT_CHAIN_KEYS=NEW_KEY):
        published = last_published_head()
        assert not published.mac_valid and OLD_ID in published.key_problem
        report = verify_chain()
        assert any(
            problem.kind == "published_head" and "cannot be checked" in problem.message for problem in report.problems
        )


# --- The legacy key ------------------------------------------------------------------------------
def test_legacy_rows_without_a_key_id_verify_with_the_legacy_key(settings):
    record_legacy(3)
    record(2)
    assert key_ids()[:3] == [(1, None, None), (2, None, None), (3, None, None)]
    assert key_ids()[3:] == [(4, OLD_ID, OLD_ID), (5, OLD_ID, OLD_ID)]
    assert "Audit chain OK." in verify_command()
    # The legacy key is never generated any more, and never makes a new MAC.
    assert not (Path(settings.VAR_DIR) / "secrets" / "audit_chain_key").exists()

    settings.AUDIT_CHAIN_KEY = ""
    message, printed = failure()
    assert "first bad sequence 1" in message
    assert "no legacy key is configured (AUDIT_CHAIN_KEY)" in printed


def test_the_legacy_key_cannot_add_events_after_the_key_ring_took_over():
    """Someone holding AUDIT_CHAIN_KEY and the database can still forge nothing new."""
    record_legacy(2)  # #1-#2: before the key ring: fine
    record(2)  # #3-#4: the key ring
    record_legacy(1)  # #5: appended with the legacy key, link and all
    report = verify_chain()
    # Appended outside the sealer, #5 is not in the Merkle tree either: a second, independent check.
    assert [(problem.sequence, problem.kind) for problem in report.problems] == [(5, "legacy_key"), (5, "tree_state")]
    message, _ = failure()
    assert "first bad sequence 5" in message


def test_an_unsealed_event_made_with_the_legacy_key_is_never_sealed():
    from audit.chain import CONTENT_FIELDS, content_mac, legacy_key
    from audit.services import build_event

    record(1)
    forged = build_event(action=audit.Action.STAFF_GRANTED, subject="mallory")
    forged.content_mac = content_mac({name: getattr(forged, name) for name in CONTENT_FIELDS}, key=legacy_key())
    forged.content_key_id = None
    AuditEvent.objects.bulk_create([forged])
    result = seal_pending()
    assert (result.sealed, len(result.refused_ids)) == (0, 1)
    report = verify_chain()
    assert [problem.kind for problem in report.problems] == ["forged_unsealed"]
    assert "legacy key" in report.problems[0].message


def test_the_legacy_key_file_of_the_embedded_default_still_verifies(settings, tmp_path):
    settings.AUDIT_CHAIN_KEY = ""
    settings.VAR_DIR = tmp_path
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "audit_chain_key").write_text("generated-by-an-earlier-version-" + "x" * 40 + "\n")
    record_legacy(2)
    record(1)
    report = verify_chain()
    assert report.ok, report.problems
    assert verification_key(None).id == LEGACY_KEY_ID


def test_a_legacy_chain_continues_under_the_key_ring_after_the_migration(settings):
    """The sealer links the first key-ring event to the last legacy hash; tombstones and anchor too."""
    settings.AUDIT_RETENTION_OVERRIDES = {"auth.login_failed": 30}
    with time_machine.travel(timezone.now() - datetime.timedelta(days=60), tick=False):
        record_legacy(3)
        audit.record(action=audit.Action.LOGIN_FAILED, subject="mallory")
        seal_pending()
    record(2)
    assert verify_chain().ok
    archived = archive_past_retention()
    assert archived.archived == 1
    assert list(AuditTombstone.objects.values_list("sequence", "key_id")) == [(4, OLD_ID)]
    seal_pending()
    report = verify_chain()
    assert report.ok, report.problems


# --- Forged key ids ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "value", "kind"),
    [
        ("content_key_id", NEW_ID, "modified"),
        ("content_key_id", None, "legacy_key"),
        ("chain_key_id", NEW_ID, "hash"),
        ("chain_key_id", None, "legacy_key"),
    ],
)
def test_changing_a_key_id_to_another_key_we_hold_fails(old_ring, column, value, kind):
    record(4)
    with rotated(old_ring):
        tamper(f"UPDATE {{table}} SET {column} = %s WHERE sequence = 2", [value])  # noqa: S608 - fixed test names
        message, _ = failure()
        assert "first bad sequence 2" in message
        report = verify_chain()
        assert [(problem.sequence, problem.kind) for problem in report.problems] == [(2, kind)]


def test_a_key_id_no_ring_holds_is_a_clear_failure_not_a_crash():
    record(3)
    tamper("UPDATE {table} SET content_key_id = %s, chain_key_id = %s WHERE sequence = 2", ["forged-key", "forged-key"])
    message, printed = failure()
    assert "first bad sequence 2" in message
    assert "audit chain key 'forged-key'" in printed


def test_an_unsealed_event_naming_an_unknown_key_is_refused_by_the_sealer(settings):
    settings.AUDIT_SEAL_MODE = "periodic"
    event = audit.record(action=audit.Action.STAFF_GRANTED, subject="mallory")
    write_held_events()  # the test's transaction never commits: write it now, to know its id
    tamper("UPDATE {table} SET content_key_id = %s WHERE id = %s", ["forged-key", event.pk])
    result = seal_pending()
    assert result.refused_ids == [event.pk]
    message, printed = failure()
    assert f"unsealed event id {event.pk}" in message
    assert "forged-key" in printed


# --- Anchor, tombstones and archives across a rotation --------------------------------------------
def test_an_anchor_made_before_a_rotation_still_verifies(old_ring):
    with time_machine.travel(timezone.now() - datetime.timedelta(days=400), tick=False):
        record(3)
    record(2)
    first = archive_past_retention()
    assert ChainHead.objects.get().anchor_key_id == OLD_ID
    with rotated(old_ring):
        seal_pending()
        report = verify_chain()
        assert report.ok, report.problems
        assert report.anchor_sequence == 3
        verify_archive(first.files[0].manifest_path)
    with override_settings(ENCRYPTION_AUDIT_CHAIN_KEYS=NEW_KEY):
        report = verify_chain()
        assert [(problem.sequence, problem.kind) for problem in report.problems][0] == (3, "unknown_key")
        with pytest.raises(ArchiveError, match=f"the manifest cannot be checked: audit chain key '{OLD_ID}'"):
            verify_archive(first.files[0].manifest_path)


def test_tombstones_and_archives_verify_across_a_rotation_and_fold_under_the_new_key(old_ring, settings):
    settings.AUDIT_RETENTION_OVERRIDES = {"auth.login_failed": 30}
    now = timezone.now()
    for number in range(6):
        action = audit.Action.LOGIN_FAILED if number % 2 else audit.Action.MEMORY_READ
        with time_machine.travel(now - datetime.timedelta(days=60, minutes=-number), tick=False):
            audit.record(action=action, subject=f"user{number}")
    seal_pending()
    first = archive_past_retention()  # #2, #4, #6 under the old key: tombstones between kept events
    assert list(AuditTombstone.objects.values_list("key_id", flat=True)) == [OLD_ID] * 3
    assert json.loads(first.files[0].manifest_path.read_text())["key_id"] == OLD_ID
    with rotated(old_ring):
        seal_pending()
        report = verify_chain()
        assert report.ok, report.problems
        assert report.tombstones == 3
        verify_archive(first.files[0].manifest_path)
        with time_machine.travel(now + datetime.timedelta(days=400), tick=False):
            later = archive_past_retention()  # folds the old tombstones into an anchor made by the new key
        assert AuditTombstone.objects.count() == 0
        head = ChainHead.objects.get()
        assert (head.anchor_sequence, head.anchor_key_id) == (8, NEW_ID)
        assert json.loads(later.files[0].manifest_path.read_text())["key_id"] == NEW_ID
        seal_pending()
        report = verify_chain()
        assert report.ok, report.problems
        for archive in first.files + later.files:
            verify_archive(archive.manifest_path)


def test_a_tombstone_whose_key_is_gone_is_reported(old_ring, settings):
    settings.AUDIT_RETENTION_OVERRIDES = {"auth.login_failed": 30}
    now = timezone.now()
    for number in range(3):
        action = audit.Action.LOGIN_FAILED if number == 1 else audit.Action.MEMORY_READ
        with time_machine.travel(now - datetime.timedelta(days=60, minutes=-number), tick=False):
            audit.record(action=action)
    seal_pending()
    archive_past_retention()
    with override_settings(ENCRYPTION_AUDIT_CHAIN_KEYS=NEW_KEY):
        report = verify_chain()
        assert (2, "unknown_key") in [(problem.sequence, problem.kind) for problem in report.problems]
        assert report.first_bad_sequence == 1


# --- Configuration ---------------------------------------------------------------------------------
def test_a_ring_key_with_the_reserved_legacy_id_is_refused(settings):
    settings.ENCRYPTION_AUDIT_CHAIN_KEYS = make_key(LEGACY_KEY_ID)
    assert [message.id for message in check_audit_settings()] == ["audit.E007"]
    with pytest.raises(KeyConfigurationError, match="reserved id"):
        signing_key()
    with pytest.raises(KeyConfigurationError):
        audit.record(action=audit.Action.LOGOUT)


def test_verification_key_names_what_is_missing(settings):
    with pytest.raises(ChainKeyError, match="not in the audit_chain key ring"):
        verification_key("nobody-has-this-key")
    settings.AUDIT_CHAIN_KEY = ""
    with pytest.raises(ChainKeyError, match="no legacy key is configured"):
        verification_key(None)


# --- The migration ---------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_rows_from_before_migration_0003_verify_and_the_chain_continues(settings):
    """Migrate back to 0002, write a chain as that version did, migrate forward: it verifies, sealing goes on."""
    from audit.chain import CONTENT_FIELDS, content_mac, legacy_key, link_hash
    from audit.services import build_event

    try:
        call_command("migrate", "audit", "0002", verbosity=0)
        key = legacy_key()
        fields = [
            field
            for field in AuditEvent._meta.concrete_fields
            if not field.primary_key and field.name not in ("content_key_id", "chain_key_id")
        ]
        previous = "0" * 64
        with connection.cursor() as cursor:
            for sequence in (1, 2, 3):
                event = build_event(action=audit.Action.LOGIN_SUCCEEDED, subject=f"user{sequence}")
                event.content_mac = content_mac({name: getattr(event, name) for name in CONTENT_FIELDS}, key=key)
                event.sequence, event.previous_hash = sequence, previous
                event.hash = link_hash(
                    sequence=sequence, previous_hash=previous, content_mac_value=event.content_mac, key=key
                )
                previous = event.hash
                columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
                cursor.execute(
                    f"INSERT INTO audit_auditevent ({columns}) VALUES ({', '.join(['%s'] * len(fields))})",  # noqa: S608
                    [field.get_db_prep_save(getattr(event, field.attname), connection) for field in fields],
                )
            cursor.execute(
                "INSERT INTO audit_chainhead (id, sequence, hash, anchor_sequence, anchor_hash, anchor_mac, updated_at)"
                " VALUES (1, 3, %s, 0, %s, '', %s)",
                [previous, "0" * 64, connection.ops.adapt_datetimefield_value(timezone.now())],
            )
    finally:
        call_command("migrate", "audit", verbosity=0)
    assert key_ids() == [(1, None, None), (2, None, None), (3, None, None)]
    record(2)  # sealed by the new sealer (on PostgreSQL: through the widened trigger)
    assert key_ids()[3:] == [(4, OLD_ID, OLD_ID), (5, OLD_ID, OLD_ID)]
    report = verify_chain()
    assert report.ok, report.problems
    assert report.checked == 5
