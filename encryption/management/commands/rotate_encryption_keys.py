"""``manage.py rotate_encryption_keys``: re-encrypt every encrypted column under the primary key."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from encryption.services import encrypted_row_count, encryption_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column of every model with the primary key, convert legacy "
        "django-encrypted-model-fields values and recompute blind indexes, in short batches. "
        "Safe to interrupt (even kill -9) and run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Rows per transaction (default ENCRYPTION_ROTATION_BATCH_SIZE).",
        )
        parser.add_argument(
            "--pause", type=float, default=0.0, help="Seconds to wait between batches, to spare a busy database."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, batch_size, pause, no_progress, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if pause < 0:
            raise CommandError("--pause cannot be negative.")
        bar = None
        if not no_progress:
            bar = tqdm(
                total=encrypted_row_count(), unit="rows", desc="rotating", file=self.stderr._out, dynamic_ncols=True
            )

        def progress(label: str, rows: int) -> None:
            if bar is not None:
                bar.set_postfix_str(label, refresh=False)
                bar.update(rows)

        try:
            result = encryption_keys_rotate(batch_size=batch_size, progress=progress, pause_seconds=pause)
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(f"Primary keys: field {result.field_key_id}, blind_index {result.blind_index_key_id}")
        for item in result.models:
            self.stdout.write(
                f"  {item.label}: {item.rows_scanned} rows scanned, {item.rows_updated} updated, "
                f"{item.values_reencrypted} values re-encrypted ({item.legacy_values_converted} legacy), "
                f"{item.indexes_recomputed} blind indexes recomputed, {item.values_failed} failed, "
                f"{item.rows_changed_concurrently} changed concurrently"
            )
        if not result.complete:
            self._report_problems(result)
            raise CommandError(
                f"Rotation finished with {result.values_failed} values left as they were (listed above); "
                "resolve them as described, then run rotate_encryption_keys again."
            )
        self.stdout.write(self.style.SUCCESS(f"Rotation finished: {result.rows_updated} rows updated."))

    def _report_problems(self, result) -> None:
        """Each value left (model, row, column, reason), then how to resolve what is left."""
        self.stdout.write("")
        self.stdout.write(self.style.WARNING(f"Values left as they were ({result.values_failed}):"))
        for problem in result.problems:
            self.stdout.write(f"  {problem.model} row {problem.pk}, column {problem.column}: {problem.reason}")
        if len(result.problems) < result.values_failed:
            self.stdout.write(f"  ... and {result.values_failed - len(result.problems)} more (see the log)")
        self.stdout.write("")
        self.stdout.write("How to resolve what is left (every other value was converted):")
        self.stdout.write(
            "  - unknown key / failed authentication: put the key that made the value back in the ring "
            "(after the primary), or ENCRYPTION_LEGACY_FERNET_KEYS for legacy values, and run again;"
        )
        self.stdout.write(
            "  - null in a NOT NULL column, or not a valid value: give the row a valid value through the "
            "application (or the ORM, e.g. Model.objects.filter(pk=ROW).update(COLUMN=...)) and run again;"
        )
        self.stdout.write(
            "  - not an encrypted value (plaintext from before encryption): run `manage.py encrypt_plaintext`;"
        )
        self.stdout.write(
            "  - the database refused the new value: read the log line of that row, fix the row, run again."
        )
