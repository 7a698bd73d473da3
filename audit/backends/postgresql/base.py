"""Django's PostgreSQL backend whose commit carries the held audit events (``audit.backends``).

The last batch of events and the ``COMMIT`` go to the server as one simple-query message
(values bound client-side, as Django's psycopg backend does by default), so an audited
transaction makes as many round trips as an unaudited one. If the INSERT fails the server skips
the ``COMMIT``, the transaction is left aborted, psycopg raises, and Django's ``atomic`` rolls
it back and re-raises: nothing commits without its events.
"""

import psycopg
from django.db.backends.postgresql import base
from django.db.backends.utils import debug_transaction

from audit import pending
from audit.backends import AuditCommitMixin, FlushBeforeAuditStatements


class AuditCursorDebugWrapper(FlushBeforeAuditStatements, base.CursorDebugWrapper):
    pass


class DatabaseWrapper(AuditCommitMixin, base.DatabaseWrapper):
    debug_cursor_class = AuditCursorDebugWrapper

    def _write_and_commit(self, events):
        parts = pending.batches(self, events)
        with (
            debug_transaction(self, "COMMIT"),
            self.wrap_database_errors,
            psycopg.ClientCursor(self.connection) as cursor,
        ):
            for number, part in enumerate(parts, start=1):
                sql = pending.insert_literal_sql(self, part)
                if number == len(parts):
                    sql += "; COMMIT"
                cursor.execute(sql)
                pending.assign_ids(self, part, cursor.fetchall())
