"""Encrypted database backups: create, verify by restoring into a scratch database, and prune.

SQLite is copied through its online backup API, PostgreSQL dumped by ``pg_dump``; the dump is
encrypted as it streams (``encryption.streams``) with a manifest as its last frame. Why it is
built this way: docs/decisions/encrypted-backups.md.
"""

from encryption.backups.file_format import BackupError, BackupReader, BackupResult, BackupWriter, VerificationResult
from encryption.backups.services import (
    backup_create,
    backup_create_and_verify,
    backup_directory,
    backup_prune,
    backup_restore,
    backup_verify,
)

__all__ = [
    "BackupError",
    "BackupReader",
    "BackupResult",
    "BackupWriter",
    "VerificationResult",
    "backup_create",
    "backup_create_and_verify",
    "backup_directory",
    "backup_prune",
    "backup_restore",
    "backup_verify",
]
