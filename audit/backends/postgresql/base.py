"""Django's PostgreSQL backend whose commit carries the held audit events (``audit.backends``).

The last batch of events and the ``COMMIT`` go to the server as one simple-query message
(values bound client-side, as Django's psycopg backend does by default), so an audited
transaction makes as many round trips as an unaudited one. If the INSERT fails the server skips
the ``COMMIT``, the transaction is left aborted, psycopg raises, and Django's ``atomic`` rolls
it back and re-raises: nothing commits without its events.
"""

import logging

import psycopg
from django.db.backends.postgresql import base
from django.db.backends.utils import debug_transaction

from audit import pending
from audit.backends import AuditCommitMixin, FlushBeforeAuditStatements

logger = logging.getLogger("audit.chain")


class AuditCursorDebugWrapper(FlushBeforeAuditStatements, base.CursorDebugWrapper):
    pass


class DatabaseWrapper(AuditCommitMixin, base.DatabaseWrapper):
    debug_cursor_class = AuditCursorDebugWrapper

    def _write_and_commit(self, events):
        # Every statement is built before the first is sent, so nothing but the database can
        # fail half-way; nothing after the COMMIT may raise.
        parts = pending.batches(self, events)
        statements = [pending.insert_literal_sql(self, part) for part in parts]
        statements[-1] += "; COMMIT"
        with (
            debug_transaction(self, "COMMIT"),
            self.wrap_database_errors,
            psycopg.ClientCursor(self.connection) as cursor,
        ):
            for part, statement in zip(parts, statements, strict=True):
                cursor.execute(statement)
                ids = cursor.fetchall()
                if part is parts[-1]:
                    committed = ids
                else:
                    pending.assign_ids(self, part, ids)
        try:
            pending.assign_ids(self, parts[-1], committed)
        except RuntimeError:
            logger.exception("audit events committed, but their ids could not be read back")
