"""Events recorded inside a transaction, written in one statement just before it commits.

Why: ``record()`` sits on the write path of every audited action, and on PostgreSQL its own
INSERT was one more round trip to the server on top of the change it describes. So inside an
atomic block an event is *held* by the connection and written when the transaction commits:
all the events of the transaction in one multi-row INSERT, sent together with the ``COMMIT`` in
a single message (``audit.backends.postgresql``), so an audited transaction costs no more round
trips than an unaudited one. The event is still part of the caller's transaction: it commits
with the change, rolls back with it, and a failure to write it fails the commit (fail closed).

How the held events follow the transaction: each ``record()`` inside an atomic block registers
a ``PendingEvents`` as an ``on_commit`` callback. Django already drops the callbacks of a
savepoint that is rolled back and of a transaction that is rolled back, so the events of
rolled-back work disappear with it, and the callbacks that are still registered at commit are
exactly the events to write. After the commit the same callback announces its events (log
line and ``event_recorded``), as before.

Reading your own writes: before any statement that names the audit table runs on a connection
that holds events, they are written first (``flush_before``, called by the backends' cursor
wrappers), so a query, the sealer or the verifier inside the same transaction sees every event
recorded before it — exactly as if each had been inserted at once.

Outside an atomic block (autocommit) there is no commit to ride on: the event is written at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections, models

if TYPE_CHECKING:
    from audit.models import AuditEvent

AUDIT_TABLE = "audit_auditevent"
# Set by the sealer, never by record(): left out of the INSERT (NULL until the event is sealed).
SEAL_COLUMNS = frozenset({"sequence", "previous_hash", "hash", "chain_key_id"})
# The attribute a connection uses to say it holds events not yet written (a count, 0 when none).
UNWRITTEN = "audit_unwritten"


class PendingEvents:
    """An ``on_commit`` callback holding events recorded in a transaction until they are written.

    ``written`` is set once the events are in the database (before the commit, or before a
    query that reads the audit table). Calling it after the commit announces the events.
    """

    __slots__ = ("announce", "events", "written", "written_in")

    def __init__(self, events: Sequence[AuditEvent], announce: Callable[[AuditEvent], None]) -> None:
        self.events = events
        self.announce = announce
        self.written = False
        # The savepoints that were open when the events were written early (before a read):
        # rolling back to one of them undoes the INSERT, so the events are held again.
        self.written_in: frozenset[str] = frozenset()

    def __call__(self) -> None:
        if not self.written:
            # Only when callbacks are run without a commit (tests capturing on_commit callbacks):
            # the events must exist before anyone is told about them. Everything still held is
            # written, in the order it was recorded; these events too, even if no longer held.
            connection = connections[DEFAULT_DB_ALIAS]
            write_held(connection)
            if not self.written:
                self.written = True
                write(connection, self.events)
        for event in self.events:
            self.announce(event)


def hold(events: Sequence[AuditEvent], announce: Callable[[AuditEvent], None]) -> bool:
    """Hold ``events`` until the current transaction commits; False when there is no transaction."""
    connection = connections[DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:
        return False
    connection.on_commit(PendingEvents(events, announce))
    setattr(connection, UNWRITTEN, getattr(connection, UNWRITTEN, 0) + len(events))
    return True


def _unwritten(connection) -> list[PendingEvents]:
    return [
        func
        for _savepoints, func, _robust in connection.run_on_commit
        if type(func) is PendingEvents and not func.written
    ]


def take_unwritten(connection) -> list[PendingEvents]:
    """Return the held, still-registered callbacks of ``connection`` and mark them written."""
    if not getattr(connection, UNWRITTEN, 0):
        return []
    setattr(connection, UNWRITTEN, 0)
    pending = _unwritten(connection)
    for callback in pending:
        callback.written = True
    return pending


def give_back(connection, pending: list[PendingEvents]) -> None:
    """Undo ``take_unwritten`` after a failed write, so the commit tries (and fails) again."""
    for callback in pending:
        callback.written = False
    setattr(connection, UNWRITTEN, sum(len(callback.events) for callback in pending))


def write_held(connection) -> None:
    """Write the events ``connection`` holds now, inside its transaction."""
    pending = take_unwritten(connection)
    if pending:
        try:
            write(connection, [event for callback in pending for event in callback.events])
        except BaseException:
            give_back(connection, pending)
            raise
        savepoints = frozenset(connection.savepoint_ids)
        for callback in pending:
            callback.written_in = savepoints


def hold_again_after_savepoint_rollback(connection, savepoint_id: str) -> None:
    """After ``ROLLBACK TO savepoint_id``: hold again the events written early inside it.

    Their callbacks were registered outside the savepoint, so Django keeps them; the database
    has just undone their INSERT, so the commit must write them (they are not lost).
    """
    again = 0
    for _savepoints, func, _robust in connection.run_on_commit:
        if type(func) is PendingEvents and func.written and savepoint_id in func.written_in:
            func.written = False
            func.written_in = frozenset()
            for event in func.events:
                event.pk = None
                event._state.adding = True
                event._state.db = None
            again += len(func.events)
    if again:
        setattr(connection, UNWRITTEN, getattr(connection, UNWRITTEN, 0) + again)


def forget(connection) -> None:
    """The transaction is gone (rolled back): nothing is held any more."""
    setattr(connection, UNWRITTEN, 0)


def flush_before(connection, sql: Any) -> None:
    """Write the held events first if ``sql`` reads or writes the audit table (read your own writes)."""
    if isinstance(sql, str) and AUDIT_TABLE in sql:
        write_held(connection)


# --- The INSERT --------------------------------------------------------------------------------

_statements: dict[str, tuple[str, str, list]] = {}


def _statement(connection) -> tuple[str, str, list]:
    """(INSERT prefix, one row's placeholders, converters), compiled once per database vendor.

    Compiling a 25-column INSERT through the ORM costs about as much as the database's own work
    on the row. Non-text values still go through their field's ``get_db_prep_save``, exactly as
    ``Model.save()`` would (text columns already hold sanitised strings); only the SQL is reused.
    No model signals are sent for audit events.
    """
    statement = _statements.get(connection.vendor)
    if statement is None:
        from audit.models import AuditEvent

        # The columns the sealer fills in are NULL on insert, so they are left out of the INSERT.
        fields = [
            field
            for field in AuditEvent._meta.concrete_fields
            if not field.primary_key and field.attname not in SEAL_COLUMNS
        ]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in fields)
        prefix = f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES "  # noqa: S608
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        converters = [
            (field.attname, None if type(field) is models.CharField else field.get_db_prep_save) for field in fields
        ]
        statement = _statements[connection.vendor] = (prefix, row, converters)
    return statement


def row_params(connection, event: AuditEvent) -> list:
    """The parameters of one event's row, in the statement's column order."""
    _prefix, _row, converters = _statement(connection)
    values = event.__dict__
    params = []
    for name, convert in converters:
        value = values[name]
        params.append(value if convert is None or value is None else convert(value, connection))
    return params


def insert_sql(connection, events: Sequence[AuditEvent]) -> tuple[str, list]:
    """One multi-row ``INSERT ... RETURNING id`` for ``events`` and its parameters."""
    prefix, row, _converters = _statement(connection)
    params: list = []
    for event in events:
        params.extend(row_params(connection, event))
    return f"{prefix}{', '.join([row] * len(events))}{returning(connection)}", params


def insert_literal_sql(connection, events: Sequence[AuditEvent]) -> str:
    """The same INSERT with its values bound by the driver's client-side quoting (``mogrify``).

    psycopg re-parses a statement's placeholders on every call once it is too long to cache,
    which for a thousand rows of 25 columns costs more than the INSERT itself; binding row by
    row through one short, cached template avoids that. The values are quoted exactly as
    psycopg's client-side binding would quote them in ``execute``.
    """
    prefix, row, _converters = _statement(connection)
    mogrify = _quoting_cursor(connection).mogrify
    rows = ", ".join(mogrify(row, row_params(connection, event)) for event in events)
    return f"{prefix}{rows}{returning(connection)}"


def _quoting_cursor(connection):
    """A client-side-binding psycopg cursor on the live connection, kept for its ``mogrify``."""
    import psycopg  # PostgreSQL only

    raw = connection.connection
    cached = getattr(connection, "_audit_quoting_cursor", None)
    if cached is None or cached.connection is not raw:
        cached = connection._audit_quoting_cursor = psycopg.ClientCursor(raw)
    return cached


def returning(connection) -> str:
    return f" RETURNING {connection.ops.quote_name('id')}"


def batches(connection, events: Sequence[AuditEvent]) -> list[Sequence[AuditEvent]]:
    """Split ``events`` so no statement exceeds the database's parameter limit."""
    _prefix, _row, converters = _statement(connection)
    limit = connection.features.max_query_params or 65535
    size = max(1, min(1000, limit // len(converters)))
    return [events[start : start + size] for start in range(0, len(events), size)]


def assign_ids(connection, events: Sequence[AuditEvent], ids: list) -> None:
    if len(ids) != len(events):
        raise RuntimeError(f"audit INSERT returned {len(ids)} ids for {len(events)} events")
    for event, (event_id,) in zip(events, ids, strict=True):
        event.pk = event_id
        event._state.adding = False
        event._state.db = connection.alias


def write(connection, events: Sequence[AuditEvent]) -> None:
    """INSERT ``events`` on ``connection`` now (inside whatever transaction it is in)."""
    with connection.cursor() as cursor:
        for batch in batches(connection, events):
            if connection.vendor == "postgresql":
                cursor.execute(insert_literal_sql(connection, batch))
            else:
                cursor.execute(*insert_sql(connection, batch))
            assign_ids(connection, batch, cursor.fetchall())


def write_now(events: Sequence[AuditEvent]) -> None:
    write(connections[DEFAULT_DB_ALIAS], events)
