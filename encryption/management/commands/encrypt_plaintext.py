"""``manage.py encrypt_plaintext``: encrypt in place values stored before their column was encrypted."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from encryption.errors import KeyConfigurationError
from encryption.services import encryption_plaintext_encrypt


class Command(BaseCommand):
    help = (
        "Encrypt in place the values of encrypted columns still stored as plaintext (rows written before an "
        "upgrade encrypted the column, e.g. memories before migration memories.0002). Resumable: safe to interrupt "
        "and run again; values already encrypted are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None, help="Rows per transaction (default 500).")

    def handle(self, *args, batch_size, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            result = encryption_plaintext_encrypt(batch_size=batch_size)
        except KeyConfigurationError as error:
            raise CommandError(f"No field key: {error}") from None
        for item in result.columns:
            if item.values_encrypted or item.values_failed:
                self.stdout.write(
                    f"  {item.label}.{item.column}: {item.values_encrypted} encrypted, {item.values_failed} left"
                )
        for problem in result.problems:
            self.stdout.write(f"  {problem.model} row {problem.pk}, column {problem.column}: {problem.reason}")
        if result.values_failed:
            raise CommandError(
                f"{result.values_failed} plaintext values could not be converted and were left as they were (listed "
                "above): give those rows valid values and run encrypt_plaintext again."
            )
        self.stdout.write(self.style.SUCCESS(f"Plaintext encrypted: {result.values_encrypted} values."))
