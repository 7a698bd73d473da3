"""``manage.py backup_database --output FILE``: an encrypted, verified-format backup of the database."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from encryption.backups import BackupError, backup_create
from encryption.backups.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Back up the database (SQLite online backup API, or pg_dump custom format) into one file encrypted "
        "with the primary backup key (AES-256-GCM in authenticated chunks, with a manifest). Check it with "
        "verify_backup."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", required=True, help="The backup file to write (it must not exist yet).")
        parser.add_argument("--overwrite", action="store_true", help="Replace FILE if it exists (once complete).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, output, overwrite, no_progress, **options):
        bar = ProgressBar(self.stderr, enabled=not no_progress)
        try:
            result = backup_create(output=output, progress=bar.update, overwrite=overwrite)
        except BackupError as error:
            raise CommandError(f"Backup failed: {error}") from None
        finally:
            bar.close()
        summary = result.summary()
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup written: {output} ({summary['database']}, {summary['dump_bytes']} bytes of dump, "
                f"{summary['file_bytes']} bytes encrypted, {summary['tables']} tables, {summary['rows']} rows, "
                f"key id {summary['key_id']}, sha256 {summary['dump_sha256']}, {summary['seconds']:.1f} s)"
            )
        )
