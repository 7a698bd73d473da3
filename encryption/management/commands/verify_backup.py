"""``manage.py verify_backup FILE``: decrypt, restore into a scratch database and check a backup."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from encryption.backups import BackupError, backup_verify
from encryption.backups.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Verify an encrypted backup: authenticate every chunk, restore into a scratch database (a temporary "
        "SQLite file, or a temporary PostgreSQL database that is dropped afterwards), compare row counts "
        "with the manifest and decrypt a sample of every encrypted column. Changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The backup file.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, file, no_progress, **options):
        bar = ProgressBar(self.stderr, enabled=not no_progress)
        try:
            result = backup_verify(path=file, progress=bar.update)
        except BackupError as error:
            raise CommandError(f"Backup verification failed: {error}") from None
        finally:
            bar.close()
        summary = result.summary()
        for label, count in sorted(result.values_decrypted.items()):
            self.stdout.write(f"  {label}: {count} encrypted values decrypted")
        for label in result.models_absent:
            self.stdout.write(f"  {label}: no table in this backup (older schema)")
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup verified: {file} ({summary['database']}, made {summary['created_at']}, key id "
                f"{summary['key_id']}, {summary['tables']} tables and {summary['rows']} rows match the manifest, "
                f"{summary['values_decrypted']} encrypted values decrypted, {summary['seconds']:.1f} s)"
            )
        )
