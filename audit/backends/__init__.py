"""Database backends that write the audit events a transaction holds as part of its commit.

``config/settings/base.py`` names these instead of Django's own PostgreSQL and SQLite backends.
Each is Django's backend plus two things (see ``audit.pending``):

* its commit first writes the events the transaction recorded, in one multi-row INSERT — on
  PostgreSQL in the same message as the ``COMMIT``, so auditing adds no round trip;
* its cursors write held events before any statement that touches the audit table, so a
  transaction reads its own events.

Wrapping a backend is Django's documented extension point for this (custom ``ENGINE``); the
same pattern is used by django-prometheus and django-tenants.
"""

from __future__ import annotations

import contextlib

from django.db import DatabaseError
from django.db.backends import utils

from audit import pending


class FlushBeforeAuditStatements:
    """Cursor mixin: write held audit events before a statement that names the audit table."""

    def execute(self, sql, params=None):
        if getattr(self.db, pending.UNWRITTEN, 0):
            pending.flush_before(self.db, sql)
        return super().execute(sql, params)

    def executemany(self, sql, param_list):
        if getattr(self.db, pending.UNWRITTEN, 0):
            pending.flush_before(self.db, sql)
        return super().executemany(sql, param_list)


class AuditCursorWrapper(FlushBeforeAuditStatements, utils.CursorWrapper):
    pass


class AuditCursorDebugWrapper(FlushBeforeAuditStatements, utils.CursorDebugWrapper):
    pass


class AuditCommitMixin:
    """DatabaseWrapper mixin: held events are written by the commit, or the commit fails."""

    debug_cursor_class = AuditCursorDebugWrapper

    def make_cursor(self, cursor):
        return AuditCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return self.debug_cursor_class(cursor, self)

    def _commit(self):
        held = pending.take_unwritten(self) if self.connection is not None else []
        if not held:
            return super()._commit()
        events = [event for callback in held for event in callback.events]
        try:
            return self._write_and_commit(events)
        except DatabaseError:
            # Django's atomic rolls the transaction back and re-raises.
            pending.give_back(self, held)
            raise
        except BaseException:
            # Anything else (a timeout signal, KeyboardInterrupt, a bug) would make atomic skip
            # its rollback, and SQLite would then commit the change without its events when
            # autocommit is switched back on. Roll back here, so the change and its events go
            # together, then let the exception through.
            self._abandon_transaction()
            raise

    def _abandon_transaction(self):
        with contextlib.suppress(Exception):
            self._rollback()
        self.needs_rollback = False
        self.run_on_commit = []
        pending.forget(self)

    def _write_and_commit(self, events):
        pending.write(self, events)
        return super()._commit()

    def _rollback(self):
        pending.forget(self)
        return super()._rollback()

    def savepoint_rollback(self, sid):
        super().savepoint_rollback(sid)
        pending.hold_again_after_savepoint_rollback(self, sid)
