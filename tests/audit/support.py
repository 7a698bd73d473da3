"""Helpers of the audit tests: play the attacker who has database access but not the key."""

from __future__ import annotations

from django.db import connection

from audit.models import AuditEvent

TABLE = AuditEvent._meta.db_table


def tamper(sql: str, params: list | tuple = ()) -> int:
    """Run raw SQL on the events table as someone with full database access would.

    On PostgreSQL the append-only trigger is disabled first (the test's transaction rolls the
    DDL back), exactly what a database superuser could do.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql.format(table=TABLE), params)
        count = cursor.rowcount
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER audit_event_append_only")
    return count


def record_legacy(count: int, **kwargs) -> list[AuditEvent]:
    """Append ``count`` sealed events as the chain had them before the key ring: every MAC under
    ``AUDIT_CHAIN_KEY``, no key ids (the rows migration 0003 left with NULL).
    """
    from audit.actions import Action
    from audit.chain import CONTENT_FIELDS, content_mac, legacy_key, link_hash
    from audit.models import ChainHead
    from audit.services import build_event

    key = legacy_key()
    head, _ = ChainHead.objects.get_or_create(pk=1)
    sequence, previous = head.sequence, head.hash
    events = []
    for number in range(count):
        event = build_event(action=Action.MEMORY_READ, target=("memories.memory", number), **kwargs)
        event.content_mac = content_mac({name: getattr(event, name) for name in CONTENT_FIELDS}, key=key)
        event.content_key_id = None
        sequence += 1
        event.sequence, event.previous_hash = sequence, previous
        event.hash = link_hash(sequence=sequence, previous_hash=previous, content_mac_value=event.content_mac, key=key)
        previous = event.hash
        events.append(event)
    AuditEvent.objects.bulk_create(events)
    # Events before the key ring are also before the Merkle tree: it starts after them (migration 0009).
    tree = {"tree_base": sequence} if head.tree_size == 0 else {}
    ChainHead.objects.filter(pk=1).update(sequence=sequence, hash=previous, **tree)
    return events


def public_key() -> str:
    """The verifier key of the audit checkpoints, as ``audit_checkpoint --public-key`` prints it."""
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("audit_checkpoint", "--public-key", stdout=out)
    return out.getvalue().splitlines()[0]
