"""Receivers of Django's own signals (connected in ``AuditConfig.ready``).

Schema changes are security events (seed section 3, "database monitoring"; OWASP ASVS 4.0.3
V7.1.3): every migration that ``migrate`` applies or unapplies becomes one
``system.migration_applied`` audit event naming the app, the migration, the direction, who ran it
(operating-system user and database user) and when Django marked it applied.

The receiver listens to ``post_migrate`` with ``sender`` set to the audit app, so it runs once per
``migrate`` run (Django sends the signal once per installed app with models, each time with the
same ``plan``). It records nothing when there is no plan (``flush`` sends ``post_migrate`` too)
or when the audit table does not exist in that database (before audit's first migration, or after
``migrate audit zero``), and nothing when ``AUDIT_RECORD_MIGRATIONS`` is off (the test settings
turn it off: the suite's own database set-up is not a schema change, and tests count events from
zero). It imports only the audit app itself.
"""

from __future__ import annotations

import getpass
import logging
import os

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from audit import conf

logger = logging.getLogger("audit.chain")


def _operating_system_user() -> str:
    """The login name of the process that runs ``migrate`` (uid when it has no name)."""
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else ""


def _database_user(connection) -> str:
    """The database role the migrations ran as (``current_user``); SQLite has no users."""
    if connection.vendor == "sqlite":
        return ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return str(cursor.fetchone()[0])


def record_applied_migrations(sender, *, plan=None, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """Record one ``MIGRATION_APPLIED`` event per migration in ``plan`` (post_migrate receiver).

    Events are written to the default database, where ``audit.record`` writes, so migrations of
    another database alias are not recorded here. All events of one run are written in one
    transaction and sealed together after it commits.
    """
    if not plan or using != DEFAULT_DB_ALIAS or not conf.get("AUDIT_RECORD_MIGRATIONS"):
        return
    from audit.actions import Action, Outcome
    from audit.models import AuditEvent
    from audit.services import Target, record_many

    connection = connections[using]
    if AuditEvent._meta.db_table not in connection.introspection.table_names():
        return
    applied_at = {
        (app, name): applied
        for app, name, applied in MigrationRecorder(connection).migration_qs.values_list("app", "name", "applied")
    }
    who = {"os_user": _operating_system_user(), "db_user": _database_user(connection), "database": connection.vendor}
    now = timezone.now()
    entries = []
    for migration, backwards in plan:
        moment = None if backwards else applied_at.get((migration.app_label, migration.name))
        entries.append(
            {
                "action": Action.MIGRATION_APPLIED,
                "outcome": Outcome.SUCCESS,
                "target": Target(
                    type="migrations.migration",
                    id=f"{migration.app_label}.{migration.name}",
                    repr=f"{migration.app_label} {migration.name}",
                ),
                "context": {
                    "app": migration.app_label,
                    "migration": migration.name,
                    "direction": "backwards" if backwards else "forwards",
                    **who,
                    "applied_at": (moment or now).isoformat(),
                },
            }
        )
    with transaction.atomic(using=using):
        record_many(entries)
    logger.info("recorded %d schema change(s) as audit events", len(entries))
