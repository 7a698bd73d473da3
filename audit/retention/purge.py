"""The purge: which sealed events are past retention, and deleting them behind tombstones.

OWASP ASVS 4.0.3 V8.3.8. Each purged event leaves an authenticated tombstone; tombstones that
continue the anchor are folded into it, so verification starts from the authenticated anchor and
walks over the tombstones of events purged from between kept ones (docs/decisions/audit-retention.md).
"""

from __future__ import annotations

import contextlib
import datetime
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Q
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from audit import conf
from audit.actions import Action
from audit.chain import ChainKey, ChainKeyError, ChainKeys, anchor_mac, macs_equal, signing_key, tombstone_mac
from audit.retention.archive import ArchiveFile
from audit.retention.archive_file import ArchiveError


class Purged(NamedTuple):
    """What one purge did: rows deleted, and the anchor's sequence afterwards."""

    deleted: int
    anchor_sequence: int


def past_retention(now: datetime.datetime | None = None):
    """Sealed events older than their action's retention period.

    Each action keeps its events ``AUDIT_RETENTION_OVERRIDES.get(action, AUDIT_RETENTION_DAYS)`` days.
    """
    from audit.models import AuditEvent

    now = now or timezone.now()
    overrides = {str(action): int(days) for action, days in conf.get("AUDIT_RETENTION_OVERRIDES").items()}
    condition = Q(timestamp__lt=now - datetime.timedelta(days=conf.get("AUDIT_RETENTION_DAYS"))) & ~Q(
        action__in=list(overrides)
    )
    for action, days in overrides.items():
        condition |= Q(action=action, timestamp__lt=now - datetime.timedelta(days=days))
    return AuditEvent.objects.sealed().filter(condition)


def valid_retention_overrides(overrides: Any) -> list[str]:
    """Problems with an ``AUDIT_RETENTION_OVERRIDES`` value (for the system check)."""
    if not isinstance(overrides, dict):
        return ["AUDIT_RETENTION_OVERRIDES must be a dict of action value -> days"]
    problems = []
    known = set(Action.values)
    for action, days in overrides.items():
        if action not in known:
            problems.append(f"AUDIT_RETENTION_OVERRIDES names an unknown action {action!r}")
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            problems.append(f"AUDIT_RETENTION_OVERRIDES[{action!r}] must be a whole number of days >= 1")
    return problems


@contextlib.contextmanager
def _purge_switch():
    """Let the PostgreSQL trigger accept DELETE for the current transaction only."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.allow_purge', 'on', true)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('audit.allow_purge', 'off', true)")


def _fold_tombstones(head, key: ChainKey) -> None:
    """Fold tombstones that continue the anchor into it, checking each as it goes.

    Each tombstone is checked with the key its ``key_id`` names; the moved anchor is MAC'd with
    ``key`` (the signing key) and stores its id.
    """
    from audit.models import AuditTombstone

    keys = ChainKeys()
    anchor_sequence, anchor_hash = head.anchor_sequence, head.anchor_hash
    while True:
        batch = list(
            AuditTombstone.objects.filter(sequence__gt=anchor_sequence)
            .order_by("sequence")
            .values_list("sequence", "previous_hash", "hash", "mac", "key_id")[:5000]
        )
        folded = 0
        for sequence, previous_hash, hash_value, mac, key_id in batch:
            if sequence != anchor_sequence + 1:
                break
            try:
                tombstone_key = keys.get(key_id)
            except ChainKeyError as error:
                raise ArchiveError(
                    f"tombstone #{sequence} cannot be checked ({error}); the anchor was not moved"
                ) from None
            expected_mac = tombstone_mac(
                sequence=sequence, previous_hash=previous_hash, hash_value=hash_value, key=tombstone_key
            )
            if not macs_equal(expected_mac, mac):
                raise ArchiveError(f"tombstone #{sequence} is not authentic; the anchor was not moved")
            if previous_hash != anchor_hash:
                raise ArchiveError(f"tombstone #{sequence} does not follow the anchor; the anchor was not moved")
            anchor_sequence, anchor_hash = sequence, hash_value
            folded += 1
        if folded < len(batch) or not batch:
            break
    if anchor_sequence != head.anchor_sequence:
        AuditTombstone.objects.filter(sequence__lte=anchor_sequence).delete()
        head.anchor_sequence, head.anchor_hash = anchor_sequence, anchor_hash
        head.anchor_mac = anchor_mac(sequence=anchor_sequence, hash_value=anchor_hash, key=key)
        head.anchor_key_id = key.id
        head.save(update_fields=["anchor_sequence", "anchor_hash", "anchor_mac", "anchor_key_id", "updated_at"])


def purge_archived(rows: list[dict[str, Any]], archive: ArchiveFile) -> Purged:
    """Delete archived rows, leaving authenticated tombstones, and fold the anchor.

    Runs in the caller's transaction, the one that records the purge (it locks the chain head).
    Raises ``ArchiveError``, for the caller to roll back, if any row was not deleted.
    """
    from audit.models import AuditEvent, AuditTombstone, ChainHead

    if not connection.in_atomic_block:
        raise TransactionManagementError("purge_archived() runs inside the transaction that records the purge")
    key = signing_key()
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    ChainHead.objects.get_or_create(pk=1)
    head = ChainHead.objects.select_for_update().get(pk=1)
    AuditTombstone.objects.bulk_create(
        [
            AuditTombstone(
                sequence=row["sequence"],
                previous_hash=row["previous_hash"],
                hash=row["hash"],
                archive=archive.path.name,
                mac=tombstone_mac(
                    sequence=row["sequence"], previous_hash=row["previous_hash"], hash_value=row["hash"], key=key
                ),
                key_id=key.id,
            )
            for row in rows
        ],
        batch_size=1000,
    )
    deleted = 0
    with _purge_switch(), connection.cursor() as cursor:
        ids = [row["id"] for row in rows]
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN ({placeholders}) AND sequence IS NOT NULL",  # noqa: S608
                chunk,
            )
            deleted += cursor.rowcount
    if deleted != len(rows):
        raise ArchiveError(f"deleted {deleted} of {len(rows)} archived events; rolled back")
    _fold_tombstones(head, key)
    return Purged(deleted=deleted, anchor_sequence=head.anchor_sequence)
