"""Export of the audit explorer's filtered events as CSV or JSON Lines, streamed.

The rows are read through one query with a database-side cursor (``QuerySet.iterator``: a
named cursor inside a transaction on PostgreSQL, SQLite's stepping cursor), ``AUDIT_EXPORT_CHUNK_SIZE``
rows per fetch, and each chunk is written out before the next is read: memory stays bounded by
one chunk whatever the number of events (tests/audit/test_explorer.py; a million rows in
bench/audit_bench.py). Events are written oldest first, as a log reads.

The export itself is recorded as ``audit.exported`` (the filters, the format and the number of
events) before its first byte is sent, so an export cut short is still on the record. The
events it holds are those matching when it began: events recorded afterwards are left out.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a
tab, a carriage return or a line feed) are prefixed with an apostrophe (OWASP, "CSV Injection").
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Max, QuerySet

import audit
from audit import conf
from audit.actions import Action, Outcome
from audit.explorer import EventFilters
from audit.models import AuditEvent

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
# The columns of an export, in order (the chain's MACs stay in the database and the archives).
COLUMNS = (
    "id", "sequence", "uuid", "timestamp", "action", "outcome",
    "actor_id", "actor_username", "actor_is_staff", "subject_id", "subject_username", "subject_is_staff",
    "target_type", "target_id", "target_repr", "request_id", "client_ip", "user_agent", "api_key_id",
    "context", "hash",
)  # fmt: skip
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


class ExportFormatError(ValueError):
    """An export format other than csv or jsonl."""


@dataclass(frozen=True)
class ExportPlan:
    """What one export will write: its format, its rows' query and how many rows it holds."""

    format: str
    queryset: QuerySet
    rows: int


def events_export_begin(*, actor, filters: EventFilters, queryset: QuerySet, format: str) -> ExportPlan:
    """Fix the set of events an export holds and record ``audit.exported``; the caller streams it.

    The caller (the explorer's export view) has checked ``audit.export_auditevent`` and that
    ``filters`` are valid; ``queryset`` is the explorer's filtered and searched set. The set is
    bounded by the newest event id at this moment, so the count in the event is the export's.
    """
    if format not in FORMATS:
        raise ExportFormatError(f"An export is csv or jsonl, not {format[:20]!r}.")
    newest = AuditEvent.objects.aggregate(newest=Max("id"))["newest"] or 0
    bounded = queryset.filter(id__lte=newest).order_by("timestamp", "id")
    rows = bounded.count()
    audit.record(
        action=Action.AUDIT_EXPORTED,
        outcome=Outcome.SUCCESS,
        actor=actor,
        context={"filters": filters.described(), "format": format, "rows": rows},
    )
    return ExportPlan(format=format, queryset=bounded, rows=rows)


def export_stream(plan: ExportPlan) -> Iterator[bytes]:
    """The export's bytes, one piece per chunk of rows (a header line first for CSV)."""
    chunk_size = conf.get("AUDIT_EXPORT_CHUNK_SIZE")
    encode = _csv_lines if plan.format == "csv" else _jsonl_lines
    if plan.format == "csv":
        yield _csv_text([list(COLUMNS)]).encode()
    # A named cursor lives only inside a transaction (outside one Django declares it WITH HOLD,
    # and PostgreSQL then computes every row before the first is fetched).
    with transaction.atomic():
        rows = plan.queryset.values_list(*COLUMNS).iterator(chunk_size=chunk_size)
        batch: list[tuple] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= chunk_size:
                yield encode(batch).encode()
                batch = []
        if batch:
            yield encode(batch).encode()


def uses_server_side_cursor() -> bool:
    """Whether this database streams the rows from a server-side cursor (PostgreSQL)."""
    return connection.vendor == "postgresql" and not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")


def neutralised(cell: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets an apostrophe."""
    return f"'{cell}" if cell.startswith(FORMULA_PREFIXES) else cell


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return _timestamp(value)
    if isinstance(value, dict | list):
        return neutralised(json.dumps(value, sort_keys=True, ensure_ascii=False))
    return neutralised(str(value))


def _csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def _csv_lines(batch: list[tuple]) -> str:
    return _csv_text([[_csv_value(value) for value in row] for row in batch])


def _json_value(value):
    if isinstance(value, datetime.datetime):
        return _timestamp(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _jsonl_lines(batch: list[tuple]) -> str:
    return "".join(
        json.dumps(dict(zip(COLUMNS, (_json_value(value) for value in row), strict=True)), ensure_ascii=False) + "\n"
        for row in batch
    )


def _timestamp(value: datetime.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the microsecond (the list shows seconds)."""
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
