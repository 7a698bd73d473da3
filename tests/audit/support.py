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
