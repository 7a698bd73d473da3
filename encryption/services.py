"""Encryption operations: key rotation (re-encrypt every encrypted column under the primary key).

Rotation is resumable and idempotent: it walks each model in primary-key order, skips values
already under the primary key, always decrypts before encrypting afresh, leaves a value that
fails to decrypt as it was, and writes each batch with compare-and-set ``UPDATE`` statements (one
per shape of change, not one per row), so a rerun
after a crash only does what is left. Run it once every process has the new primary key; remove
the old key only when ``encryption_keys status`` shows no row under it.
Why: docs/decisions/key-rotation.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.core import exceptions
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from audit.actions import Action, Outcome
from audit.services import record
from encryption import conf
from encryption.crypto import reencrypt, token_key_id
from encryption.errors import DecryptionError
from encryption.fields import EncryptedFieldMixin
from encryption.keyring import LEGACY_FERNET_KEY_ID, PURPOSES, get_key_ring, invalidate_key_cache, provider_name
from encryption.selectors import (
    COUNTED_PURPOSES,
    EncryptedModel,
    encrypted_model_list,
    encryption_key_usage,
    raw_column,
)

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int], None]


# Problems kept in full (row, column, reason) per run; the count goes on beyond this.
MAX_PROBLEMS_KEPT = 1000
# Problems an audit event names one by one (the rest are counted).
MAX_PROBLEMS_IN_EVENT = 20


@dataclass(frozen=True)
class ValueProblem:
    """One stored value rotation left as it was: where it is and why (never the value itself)."""

    model: str
    pk: str
    column: str
    reason: str

    def as_dict(self) -> dict:
        return {"model": self.model, "pk": self.pk, "column": self.column, "reason": self.reason}


@dataclass
class ModelRotation:
    """What rotation did to one model."""

    label: str
    rows_scanned: int = 0
    rows_updated: int = 0
    values_reencrypted: int = 0
    legacy_values_converted: int = 0
    indexes_recomputed: int = 0
    values_failed: int = 0
    rows_changed_concurrently: int = 0


@dataclass
class RotationResult:
    """The outcome of ``encryption_keys_rotate``."""

    field_key_id: str
    blind_index_key_id: str
    started_at: datetime
    finished_at: datetime | None = None
    models: list[ModelRotation] = field(default_factory=list)
    # The values left as they were, one by one (the first MAX_PROBLEMS_KEPT).
    problems: list[ValueProblem] = field(default_factory=list)

    def add_problem(self, problem: ValueProblem) -> None:
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(problem)

    @property
    def values_failed(self) -> int:
        return sum(item.values_failed for item in self.models)

    @property
    def rows_updated(self) -> int:
        return sum(item.rows_updated for item in self.models)

    @property
    def rows_scanned(self) -> int:
        return sum(item.rows_scanned for item in self.models)

    @property
    def complete(self) -> bool:
        """True when every value could be decrypted and rotated."""
        return not self.values_failed

    def summary(self) -> dict:
        """Counts only (no values, no keys): safe for an audit event's context and for logs."""
        return {
            "field_key_id": self.field_key_id,
            "blind_index_key_id": self.blind_index_key_id,
            "rows_scanned": self.rows_scanned,
            "rows_updated": self.rows_updated,
            "values_failed": self.values_failed,
            "models": [asdict(item) for item in self.models],
        }


def _record_event(*, action: Action, outcome: Outcome, actor=None, context: dict | None = None) -> None:
    """Record an audit event of the encryption operations (the one seam to ``audit.record``).

    Context holds counts, key ids and column names only: never values or key material.
    """
    record(action=action, outcome=outcome, actor=actor, subject=None, target=None, context=context or {})


def encrypted_row_count(*, using: str = "default") -> int:
    """Rows that rotation will scan: every row of every model with encrypted columns."""
    return sum(item.model._base_manager.using(using).count() for item in encrypted_model_list())


def encryption_keys_rotate(
    *,
    actor=None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    pause_seconds: float = 0.0,
    using: str = "default",
) -> RotationResult:
    """Re-encrypt every encrypted column of every model under the primary ``field`` key.

    Also rewrites legacy django-encrypted-model-fields values in the ``nv1`` format and
    recomputes blind indexes made with a key other than the primary ``blind_index`` key (or
    missing). ``batch_size`` rows per transaction (default ``ENCRYPTION_ROTATION_BATCH_SIZE``),
    ``progress(model_label, rows)`` after each batch, ``pause_seconds`` between batches to spare a
    busy database.

    One bad value never blocks the rest: a value that does not decrypt, that would become SQL
    NULL in a NOT NULL column (a legacy JSON ``null``), or whose new value the database refuses
    is left as it was and reported in ``result.problems`` (model, row, column, reason); every
    other value is converted. Records ``KEY_ROTATION_STARTED`` and ``KEY_ROTATION_FINISHED``
    (outcome failure when something was left), and ``KEY_ROTATION_FAILED`` with the key ids and
    the reason whenever rotation did not convert everything (values left, or an error that
    stopped it, which is raised again afterwards).

    Permission: the caller has checked it (an operator at the shell, or a staff user through the
    admin action's own permission).
    """
    batch_size = batch_size or conf.get("ENCRYPTION_ROTATION_BATCH_SIZE")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    key_ids = {"field_key_id": "", "blind_index_key_id": ""}
    try:
        result = RotationResult(
            field_key_id=get_key_ring("field").primary.id,
            blind_index_key_id=get_key_ring("blind_index").primary.id,
            started_at=timezone.now(),
        )
        key_ids = {"field_key_id": result.field_key_id, "blind_index_key_id": result.blind_index_key_id}
        with transaction.atomic(using=using):
            _record_event(action=Action.KEY_ROTATION_STARTED, outcome=Outcome.SUCCESS, actor=actor, context=key_ids)
        for item in encrypted_model_list():
            stats = ModelRotation(label=item.label)
            result.models.append(stats)
            _rotate_model(
                item,
                stats=stats,
                result=result,
                batch_size=batch_size,
                progress=progress,
                pause_seconds=pause_seconds,
                using=using,
            )
    except Exception as error:
        # Whatever stopped the run (a key ring that cannot be loaded, a lost database): the
        # alert must still fire. The reason is the error's type and first line: no value, no key.
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        _record_failure(actor=actor, context={**key_ids, "reason": f"{type(error).__name__}: {detail}"[:300]})
        raise
    result.finished_at = timezone.now()
    with transaction.atomic(using=using):
        _record_event(
            action=Action.KEY_ROTATION_FINISHED,
            outcome=Outcome.SUCCESS if result.complete else Outcome.FAILURE,
            actor=actor,
            context=result.summary(),
        )
    if not result.complete:
        _record_failure(
            actor=actor,
            context={
                **key_ids,
                "reason": f"{result.values_failed} values were left as they were",
                "values_failed": result.values_failed,
                "rows_scanned": result.rows_scanned,
                "problems": [problem.as_dict() for problem in result.problems[:MAX_PROBLEMS_IN_EVENT]],
            },
        )
    return result


def _record_failure(*, actor, context: dict) -> None:
    """Record ``KEY_ROTATION_FAILED`` (what the key-rotation detector alerts on), never raising."""
    try:
        with transaction.atomic():
            _record_event(action=Action.KEY_ROTATION_FAILED, outcome=Outcome.FAILURE, actor=actor, context=context)
    except Exception:
        logger.exception("could not record the audit event of a failed key rotation")


def _rotate_model(
    item: EncryptedModel,
    *,
    stats: ModelRotation,
    result: RotationResult,
    batch_size: int,
    progress: ProgressCallback | None,
    pause_seconds: float,
    using: str,
) -> None:
    model = item.model
    encrypted = item.encrypted_fields
    indexes = item.blind_index_fields
    raw_names = {f"_rotation_raw_{position}": raw_column(column) for position, column in enumerate(encrypted + indexes)}
    plain_sources = [index.source_field for index in indexes if not isinstance(index.source_field, EncryptedFieldMixin)]
    names = ["pk", *raw_names, *(source.attname for source in plain_sources)]
    queryset = model._base_manager.using(using).annotate(**raw_names).order_by("pk")
    last_pk = None
    while True:
        page = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
        rows = list(page.values_list(*names)[:batch_size])
        if not rows:
            break
        last_pk = rows[-1][0]
        changes = [(row[0], change) for row in rows if (change := _plan_row(item, row, plain_sources, stats, result))]
        if changes:
            _apply(model, changes, stats=stats, result=result, using=using)
        stats.rows_scanned += len(rows)
        if progress is not None:
            progress(item.label, len(rows))
        if pause_seconds:
            time.sleep(pause_seconds)


def _left_as_it_was(
    label: str, pk, column: str, reason: str, *, stats: ModelRotation, result: RotationResult | None
) -> None:
    stats.values_failed += 1
    if result is not None:
        result.add_problem(ValueProblem(model=label, pk=str(pk), column=column, reason=reason))
    logger.warning("Rotation left %s.%s of row %s as it was: %s", label, column, pk, reason)


def _plan_row(
    item: EncryptedModel, row: tuple, plain_sources: list, stats: ModelRotation, result: RotationResult
) -> dict:
    """Return ``{column: (stored, new)}`` for the values of one row that need rewriting."""
    encrypted = item.encrypted_fields
    field_primary = get_key_ring("field").primary.id
    index_primary = get_key_ring("blind_index").primary.id
    pk = row[0]
    tokens = row[1 : 1 + len(encrypted)]
    stored_indexes = row[1 + len(encrypted) : 1 + len(encrypted) + len(item.blind_index_fields)]
    plain_values = dict(
        zip((f.name for f in plain_sources), row[1 + len(encrypted) + len(item.blind_index_fields) :], strict=True)
    )
    change: dict[str, tuple[str | None, str | None]] = {}
    failed: set[str] = set()
    for column, token in zip(encrypted, tokens, strict=True):
        if token is None:
            continue
        key_id = token_key_id(token)
        if key_id == field_primary:
            continue
        try:
            if key_id == LEGACY_FERNET_KEY_ID:
                # Through the field: the legacy str(value) becomes the canonical text of the type.
                new = column.encrypt_value(column.decrypt_token(token))
            else:
                new = reencrypt(token, associated_data=column.associated_data, purpose=column.purpose)
        except DecryptionError as error:
            failed.add(column.name)
            _left_as_it_was(item.label, pk, column.column, error.reason, stats=stats, result=result)
            continue
        if new is None and not column.null:
            # A legacy JSON null: writing it would put SQL NULL into a NOT NULL column.
            failed.add(column.name)
            _left_as_it_was(
                item.label,
                pk,
                column.column,
                "the legacy value decrypts to null but the column is NOT NULL",
                stats=stats,
                result=result,
            )
            continue
        if key_id == LEGACY_FERNET_KEY_ID:
            stats.legacy_values_converted += 1
        stats.values_reencrypted += 1
        change[column.column] = (token, new)
    for index, stored in zip(item.blind_index_fields, stored_indexes, strict=True):
        if stored is not None and stored.partition(":")[0] == index_primary:
            continue
        source = index.source_field
        if source.name in failed:
            continue
        if isinstance(source, EncryptedFieldMixin):
            source_token = tokens[encrypted.index(source)]
            if source_token is None:
                value = None
            else:
                try:
                    value = source.decrypt_token(source_token)
                except DecryptionError as error:
                    _left_as_it_was(item.label, pk, index.column, error.reason, stats=stats, result=result)
                    continue
        else:
            value = plain_values[source.name]
        expected = index.compute(value)
        if expected != stored:
            stats.indexes_recomputed += 1
            change[index.column] = (stored, expected)
    return change


# Bound parameters per UPDATE, well under SQLite's 32,766 and PostgreSQL's 65,535.
_MAX_PARAMETERS = 30_000


def _apply(
    model,
    changes: list[tuple[object, dict]],
    *,
    stats: ModelRotation,
    using: str,
    result: RotationResult | None = None,
) -> None:
    """Write one batch in one short transaction, each row compare-and-set on the values we read.

    Rows whose change has the same shape (the same columns, stored NULL in the same places) go in
    one ``UPDATE … FROM`` a ``VALUES`` list: one statement per shape, not one per row. If the
    database refuses such a statement (a constraint, a value too long), only that statement is
    rolled back and its rows are written again one by one, each in its own savepoint, so the
    refused row is reported alone and the rest of the batch commits.
    """
    connection = connections[using]
    shapes: dict[tuple, list[tuple[object, dict]]] = {}
    for pk, change in changes:
        shape = tuple((column, stored is None) for column, (stored, _new) in change.items())
        shapes.setdefault(shape, []).append((pk, change))
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for shape, rows in shapes.items():
            per_row = 1 + len(shape) + sum(1 for _column, stored_null in shape if not stored_null)
            size = max(1, _MAX_PARAMETERS // per_row)
            for start in range(0, len(rows), size):
                chunk = rows[start : start + size]
                try:
                    with transaction.atomic(using=using):
                        updated = _update_shape(cursor, connection, model, shape, chunk)
                except DatabaseError:
                    _apply_rows(cursor, connection, model, chunk, stats=stats, using=using, result=result)
                    continue
                stats.rows_updated += updated
                stats.rows_changed_concurrently += len(chunk) - updated


def _update_shape(cursor, connection, model, shape: tuple, rows: list[tuple[object, dict]]) -> int:
    """One compare-and-set ``UPDATE`` of rows that share a shape; return how many rows it wrote."""
    quote = connection.ops.quote_name
    meta = model._meta
    table = quote(meta.db_table)
    names = ["rotation_pk"]
    assignments, conditions = [], [f"{table}.{quote(meta.pk.column)} = rotation.rotation_pk"]
    for position, (column, stored_null) in enumerate(shape):
        names.append(f"new_{position}")
        assignments.append(f"{quote(column)} = rotation.new_{position}")
        if stored_null:
            conditions.append(f"{table}.{quote(column)} IS NULL")
        else:
            names.append(f"old_{position}")
            conditions.append(f"{table}.{quote(column)} = rotation.old_{position}")
    placeholders = "(" + ", ".join(["%s"] * len(names)) + ")"
    params: list = []
    for pk, change in rows:
        params.append(meta.pk.get_db_prep_value(pk, connection))
        for stored, new in change.values():
            params.append(new)
            if stored is not None:
                params.append(stored)
    # VALUES names its columns column1, column2, … on both SQLite and PostgreSQL. The statement
    # starts with UPDATE (not WITH) so that SQLite's driver reports its row count.
    columns = ", ".join(f"column{position} AS {name}" for position, name in enumerate(names, start=1))
    values = ", ".join([placeholders] * len(rows))
    cursor.execute(
        f"UPDATE {table} SET {', '.join(assignments)} "  # noqa: S608 - quoted names
        f"FROM (SELECT {columns} FROM (VALUES {values}) AS rotation_values) AS rotation "
        f"WHERE {' AND '.join(conditions)}",
        params,
    )
    return cursor.rowcount


def _apply_rows(
    cursor,
    connection,
    model,
    changes: list[tuple[object, dict]],
    *,
    stats: ModelRotation,
    using: str,
    result: RotationResult | None,
) -> None:
    """Write rows one by one, each in its own savepoint: a refused row is reported and skipped."""
    quote = connection.ops.quote_name
    meta = model._meta
    table = quote(meta.db_table)
    pk_column = quote(meta.pk.column)
    for pk, change in changes:
        assignments = ", ".join(f"{quote(column)} = %s" for column in change)
        conditions = " AND ".join(
            f"{quote(column)} IS NULL" if stored is None else f"{quote(column)} = %s"
            for column, (stored, _new) in change.items()
        )
        params = [new for _stored, new in change.values()]
        params.append(meta.pk.get_db_prep_value(pk, connection))
        params.extend(stored for stored, _new in change.values() if stored is not None)
        try:
            with transaction.atomic(using=using):
                cursor.execute(
                    f"UPDATE {table} SET {assignments} WHERE {pk_column} = %s AND {conditions}",  # noqa: S608 - quoted names
                    params,
                )
        except DatabaseError as error:
            # The message of a constraint error may quote the row's values: the type only.
            _left_as_it_was(
                meta.label,
                pk,
                ", ".join(change),
                f"the database refused the new value ({type(error).__name__})",
                stats=stats,
                result=result,
            )
            continue
        if cursor.rowcount == 1:
            stats.rows_updated += 1
        else:
            stats.rows_changed_concurrently += 1


# ---------------------------------------------------------------------------------------------
# Retiring a key
# ---------------------------------------------------------------------------------------------
class KeyRetirementError(Exception):
    """A key cannot (or may not) be retired. ``str()`` is one line for the operator."""


@dataclass
class KeyRetirement:
    """What ``encryption_key_retire`` found and did."""

    purpose: str
    key_id: str
    forced: bool
    rows: int
    dependents: object  # encryption.selectors.KeyDependents
    # True when the key was removed from the ring's file (the file provider); otherwise the
    # operator removes it from the provider (environment, Vault, AWS) now that it is cleared.
    removed_from_provider: bool = False


def encryption_key_needs(*, purpose: str, key_id: str) -> tuple[int, object]:
    """Rows under ``key_id`` (counted purposes) and the backups, archives and MACs that need it."""
    from encryption.selectors import KeyDependents, encryption_key_dependents

    rows = 0
    if purpose in COUNTED_PURPOSES:
        rows = encryption_key_usage(purpose=purpose).totals.get(key_id, 0)
    return rows, encryption_key_dependents(purpose=purpose).get(key_id, KeyDependents())


def encryption_key_retire(*, purpose: str, key_id: str, force: bool = False, actor=None) -> KeyRetirement:
    """Retire the key ``key_id`` of ``purpose``: refused while anything still needs it, unless ``force``.

    Needs: stored values under it (``field``, ``blind_index``), backups in the backup folder and
    audit archives that were made with it or hold values under it, audit-chain MACs made with it.
    The primary key is never retired. With the file provider the key's line is removed from the
    ring's file (written anew, 0600); with the other providers the operator removes it there.
    Records ``KEY_RETIRED`` (``forced`` says whether something still needed it).

    Permission: the caller has checked it (an operator at the shell).
    """
    if purpose not in PURPOSES:
        raise KeyRetirementError(f"Unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}.")
    ring = get_key_ring(purpose)
    if key_id not in ring:
        raise KeyRetirementError(f"The {purpose} key ring has no key {key_id!r}.")
    if key_id == ring.primary.id:
        raise KeyRetirementError(
            f"{key_id!r} is the primary {purpose} key: put a new key first in the ring (and rotate) before retiring it."
        )
    rows, dependents = encryption_key_needs(purpose=purpose, key_id=key_id)
    needed = bool(rows or dependents)
    if needed and not force:
        what = ", ".join(part for part in (f"{rows} stored values" if rows else "", dependents.describe()) if part)
        raise KeyRetirementError(
            f"The {purpose} key {key_id!r} is still needed by {what}; retiring it would make them unreadable. "
            "Rotate (rows), let the backups and archives age out, or pass --force."
        )
    retirement = KeyRetirement(purpose=purpose, key_id=key_id, forced=needed, rows=rows, dependents=dependents)
    with transaction.atomic():
        _record_event(
            action=Action.KEY_RETIRED,
            outcome=Outcome.SUCCESS,
            actor=actor,
            context={
                "purpose": purpose,
                "key_id": key_id,
                "forced": needed,
                "rows": rows,
                "backups": dependents.backups[:50],
                "archives": dependents.archives[:50],
                "audit_events": dependents.audit_events,
            },
        )
        if provider_name() == "file":
            # Inside the transaction: a file that cannot be written leaves no event behind.
            _remove_from_key_file(purpose, key_id)
            retirement.removed_from_provider = True
    invalidate_key_cache()
    if needed:
        logger.warning("%s key %s retired although still needed (forced)", purpose, key_id)
    return retirement


def _remove_from_key_file(purpose: str, key_id: str) -> None:
    """Write the ring's file again without ``key_id``'s entry (atomically, mode 0600)."""
    import os
    from pathlib import Path

    path = Path(conf.get("ENCRYPTION_KEYS_DIR")) / purpose
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entries = [entry for entry in line.split("#", 1)[0].split(",") if entry.strip()]
        if any(entry.strip().partition(":")[0].strip() == key_id for entry in entries):
            remaining = [entry.strip() for entry in entries if entry.strip().partition(":")[0].strip() != key_id]
            if remaining:
                kept.append(",".join(remaining))
            continue
        kept.append(line)
    partial = path.with_name(f".{purpose}.retiring")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(kept) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


# ---------------------------------------------------------------------------------------------
# Plaintext left by an upgrade
# ---------------------------------------------------------------------------------------------
@dataclass
class PlaintextColumn:
    """What ``encryption_plaintext_encrypt`` did to one encrypted column."""

    label: str
    column: str
    rows_scanned: int = 0
    values_encrypted: int = 0
    values_failed: int = 0


@dataclass
class PlaintextResult:
    columns: list[PlaintextColumn] = field(default_factory=list)
    problems: list[ValueProblem] = field(default_factory=list)

    @property
    def values_encrypted(self) -> int:
        return sum(item.values_encrypted for item in self.columns)

    @property
    def values_failed(self) -> int:
        return sum(item.values_failed for item in self.columns)

    @property
    def rows_scanned(self) -> int:
        return max((item.rows_scanned for item in self.columns), default=0)

    def summary(self) -> dict:
        return {
            "rows_scanned": sum(item.rows_scanned for item in self.columns),
            "values_encrypted": self.values_encrypted,
            "values_failed": self.values_failed,
            "models": [asdict(item) for item in self.columns if item.values_encrypted or item.values_failed],
        }


def _plaintext_value(column: EncryptedFieldMixin, text: str):
    """The Python value of plaintext stored before the column was encrypted; ``ValueError`` if not one."""
    import json

    from encryption.fields import EncryptedJSONField

    if isinstance(column, EncryptedJSONField):
        return json.loads(text)  # the JSON text the old JSONField stored
    return column.to_python(text)


def encryption_plaintext_encrypt(
    *,
    models: list | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    using: str = "default",
    actor=None,
    record_event: bool = True,
) -> PlaintextResult:
    """Encrypt in place the values of encrypted columns still stored as plaintext.

    Columns that were plain before a migration made them encrypted (``memories.0002``) keep
    their old plaintext rows: reads fail ("not an encrypted value") and the data stays readable
    at rest. Every stored value that is neither an ``nv1`` nor a legacy Fernet token is taken as
    such plaintext, converted as the old column stored it (JSON text for JSON fields) and
    written under the primary key, row by row with compare-and-set, in batches of
    ``batch_size``: resumable (a rerun skips what is encrypted) and safe beside a running
    application. A value that does not convert is reported and left as it was. ``models``
    default to every model with encrypted columns (a migration passes its historical models).
    Records ``PLAINTEXT_ENCRYPTED`` unless ``record_event`` is False (migrations).

    Permission: the caller has checked it (an operator at the shell, or ``migrate``).
    """
    batch_size = batch_size or conf.get("ENCRYPTION_ROTATION_BATCH_SIZE")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    if models is None:
        models = [item.model for item in encrypted_model_list()]
    result = PlaintextResult()
    connection = connections[using]
    quote = connection.ops.quote_name
    for model in models:
        meta = model._meta
        for column in [f for f in meta.local_concrete_fields if isinstance(f, EncryptedFieldMixin)]:
            stats = PlaintextColumn(label=meta.label, column=column.column)
            result.columns.append(stats)
            table, pk_column, name = quote(meta.db_table), quote(meta.pk.column), quote(column.column)
            last_pk = None
            while True:
                queryset = model._base_manager.using(using).filter(**{f"{column.name}__isnull": False})
                if last_pk is not None:
                    queryset = queryset.filter(pk__gt=last_pk)
                rows = list(
                    queryset.annotate(_raw=raw_column(column)).order_by("pk").values_list("pk", "_raw")[:batch_size]
                )
                if not rows:
                    break
                last_pk = rows[-1][0]
                stats.rows_scanned += len(rows)
                with transaction.atomic(using=using), connection.cursor() as cursor:
                    for pk, stored in rows:
                        if not isinstance(stored, str):
                            stored = str(stored)
                        if token_key_id(stored) is not None or stored.startswith("gAAAAA"):
                            continue
                        try:
                            token = column.encrypt_value(_plaintext_value(column, stored))
                        except (ValueError, TypeError, exceptions.ValidationError) as error:
                            stats.values_failed += 1
                            if len(result.problems) < MAX_PROBLEMS_KEPT:
                                result.problems.append(
                                    ValueProblem(
                                        model=meta.label,
                                        pk=str(pk),
                                        column=column.column,
                                        reason=f"the plaintext is not a valid {type(column).__name__} value "
                                        f"({type(error).__name__})",
                                    )
                                )
                            continue
                        cursor.execute(
                            f"UPDATE {table} SET {name} = %s WHERE {pk_column} = %s AND {name} = %s",  # noqa: S608 - quoted names
                            [token, meta.pk.get_db_prep_value(pk, connection), stored],
                        )
                        stats.values_encrypted += cursor.rowcount
                if progress is not None:
                    progress(f"{meta.label}.{column.column}", len(rows))
    if record_event:
        with transaction.atomic(using=using):
            _record_event(
                action=Action.PLAINTEXT_ENCRYPTED,
                outcome=Outcome.SUCCESS if not result.values_failed else Outcome.FAILURE,
                actor=actor,
                context=result.summary(),
            )
    return result
