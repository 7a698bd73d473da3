"""The checks of a verification that do not depend on the database: checksum, rows, field keys."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from encryption import conf
from encryption.backups.file_format import BackupError, BackupReader, VerificationResult
from encryption.backups.progress import ProgressCallback, emit
from encryption.errors import DecryptionError


def decrypt_to(
    reader: BackupReader, sink: Callable[[bytes], None], *, file_bytes: int, progress: ProgressCallback | None
) -> tuple[int, str]:
    """Stream the dump's plaintext into ``sink``; return its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    seen = reader.bytes_read
    emit(progress, "decrypt", seen, file_bytes)
    for chunk in reader.chunks():
        digest.update(chunk)
        size += len(chunk)
        sink(chunk)
        emit(progress, "decrypt", reader.bytes_read - seen, file_bytes)
        seen = reader.bytes_read
    emit(progress, "decrypt", reader.bytes_read - seen, file_bytes)
    return size, digest.hexdigest()


def check_dump(manifest: dict, size: int, sha256: str) -> None:
    """The decrypted dump has the size and SHA-256 the manifest states."""
    if manifest.get("dump_bytes") != size or manifest.get("dump_sha256") != sha256:
        raise BackupError("The decrypted dump does not match the size and SHA-256 in the manifest.", stage="checksum")


def check_row_counts(manifest: dict, restored: dict[str, int]) -> int:
    """The restored copy has the manifest's tables with its row counts; return the rows checked."""
    expected = manifest.get("tables") or {}
    missing = sorted(set(expected) - set(restored))
    extra = sorted(set(restored) - set(expected))
    if missing or extra:
        raise BackupError(
            f"The restored copy's tables differ from the manifest (missing: {', '.join(missing) or 'none'}; "
            f"unexpected: {', '.join(extra) or 'none'}).",
            stage="row-counts",
        )
    wrong = [
        f"{name} {restored[name]} rows, manifest {expected[name]}"
        for name in sorted(expected)
        if restored[name] != expected[name]
    ]
    if wrong:
        raise BackupError(f"Row counts differ from the manifest: {'; '.join(wrong[:10])}.", stage="row-counts")
    return sum(restored.values())


def check_encrypted_values(
    fetch: Callable[[str, list[str], int], list[tuple]], tables: set[str], result: VerificationResult
) -> None:
    """Decrypt up to ``ENCRYPTION_BACKUP_VERIFY_SAMPLE_SIZE`` random rows of every encrypted column.

    ``fetch(table, columns, limit)`` returns raw stored values (tokens) from the restored copy.
    The first value that does not decrypt stops verification: the message names the model, the
    column and the key id, never the value.
    """
    from encryption.selectors import encrypted_model_list

    limit = int(conf.get("ENCRYPTION_BACKUP_VERIFY_SAMPLE_SIZE"))
    for item in encrypted_model_list():
        if not item.encrypted_fields:
            continue
        table = item.model._meta.db_table
        if table not in tables:
            result.models_absent.append(item.label)
            continue
        columns = [f.column for f in item.encrypted_fields]
        decrypted = 0
        for row in fetch(table, columns, limit):
            for column_field, token in zip(item.encrypted_fields, row, strict=True):
                if token is None:
                    continue
                try:
                    column_field.decrypt_token(token)
                except DecryptionError as error:
                    raise BackupError(
                        f"An encrypted value of {item.label}.{column_field.column} in the backup cannot be "
                        f"decrypted with the field key ring: {error.reason} (key id {error.key_id!r}). Restoring "
                        "it would give unreadable data.",
                        stage="encrypted-fields",
                    ) from None
                decrypted += 1
        result.values_decrypted[item.label] = decrypted
