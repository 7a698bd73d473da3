"""``manage.py restore_backup FILE``: restore an encrypted backup into a new, empty database."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from encryption.backups import BackupError, backup_restore
from encryption.backups.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Restore an encrypted backup into a new, empty database: a SQLite backup into a file (--sqlite-file, default "
        "the configured SQLite database), a PostgreSQL backup into a database (--database-url, default the configured "
        "one). The whole file is authenticated before anything is written; afterwards the row counts and content "
        "digests are compared with the backup's manifest and a sample of every encrypted column is decrypted. "
        "Refuses a target that holds tables unless --force. Stop the web, worker and beat processes first."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The backup file.")
        target = parser.add_mutually_exclusive_group()
        target.add_argument(
            "--database-url", help="PostgreSQL target, postgres://USER:PASSWORD@HOST:PORT/NAME (default: DATABASE_URL)."
        )
        target.add_argument("--sqlite-file", help="SQLite target file (default: the configured SQLite database).")
        parser.add_argument(
            "--force",
            "--into-non-empty",
            dest="force",
            action="store_true",
            help="Restore even though the target holds tables (SQLite: the file is replaced; PostgreSQL: the "
            "backup's tables are dropped and restored).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, file, database_url, sqlite_file, force, no_progress, **options):
        if database_url is not None and not database_url.strip():
            raise CommandError("Restore failed: --database-url is empty.")
        bar = ProgressBar(self.stderr, enabled=not no_progress)
        try:
            result = backup_restore(
                path=file, database_url=database_url, sqlite_file=sqlite_file, force=force, progress=bar.update
            )
        except BackupError as error:
            raise CommandError(f"Restore failed: {error}") from None
        finally:
            bar.close()
        summary = result.summary()
        for label, count in sorted(result.values_decrypted.items()):
            self.stdout.write(f"  {label}: {count} encrypted values decrypted")
        digests = f", {result.digests_checked} table digests match" if result.digests_checked else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup restored: {file} into {result.target} ({summary['database']}, made {summary['created_at']}, "
                f"key id {summary['key_id']}, {summary['tables']} tables and {summary['rows']} rows match the "
                f"manifest{digests}, {summary['values_decrypted']} encrypted values decrypted, "
                f"{summary['seconds']:.1f} s)"
            )
        )
        self.stdout.write(
            "Next: `manage.py migrate` (a backup of an older version), `manage.py audit_reconcile --after-restore` "
            "(the audit trail), then start the processes (runbook: docs/operations.md, Restore a backup)."
        )
