"""Django's SQLite backend whose commit writes the held audit events first (``audit.backends``)."""

from django.db.backends.sqlite3 import base

from audit.backends import AuditCommitMixin


class DatabaseWrapper(AuditCommitMixin, base.DatabaseWrapper):
    pass
