"""``manage.py audit_archive``: archive events past retention, verify the archive, then purge them."""

from __future__ import annotations

import argparse
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from audit.retention import ArchiveBusy, ArchiveError
from audit.services import audit_events_archive


class Command(BaseCommand):
    help = (
        "Write audit events past their retention period (AUDIT_RETENTION_DAYS, AUDIT_RETENTION_OVERRIDES) to "
        "gzip JSON Lines archives with manifests under AUDIT_DIR/archive/, read each archive back to verify it, "
        "and only then purge the events. The chain stays verifiable. Safe to run twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only count the events past retention.")
        parser.add_argument(
            "--batch-size", type=int, help="Events per archive file (default AUDIT_ARCHIVE_BATCH_SIZE)."
        )
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Show a progress bar (default: when stderr is a terminal).",
        )

    def handle(self, *args, dry_run=False, batch_size=None, progress=None, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        show_progress = sys.stderr.isatty() if progress is None else progress
        bar = None

        def on_start(total: int) -> None:
            nonlocal bar
            if show_progress and not dry_run and total:
                bar = tqdm(total=total, unit="event", desc="audit_archive", file=sys.stderr)

        try:
            result = audit_events_archive(
                dry_run=dry_run,
                batch_size=batch_size,
                on_start=on_start,
                progress=lambda count: bar.update(count) if bar else None,
            )
        except ArchiveBusy as error:
            raise CommandError(str(error)) from None
        except ArchiveError as error:
            raise CommandError(f"Archive failed, nothing was purged from that batch: {error}") from None
        finally:
            if bar is not None:
                bar.close()
        if dry_run:
            self.stdout.write(f"{result.eligible} event(s) are past retention (dry run: nothing written).")
            return
        for archive in result.files:
            self.stdout.write(
                f"Archived #{archive.first_sequence}..#{archive.last_sequence} ({archive.count} events) to "
                f"{archive.path.name}, sha256 {archive.sha256}"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Archived {result.archived} and purged {result.purged} event(s); "
                f"verification now starts after #{result.anchor_sequence}."
            )
        )
