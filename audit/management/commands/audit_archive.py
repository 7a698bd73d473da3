"""``manage.py audit_archive``: archive events past retention, verify the archive, then purge them.

``--read PATH`` prints an archive (encrypted, or plain gzip from before encryption) as JSON Lines
for an investigator; ``--verify PATH`` checks an archive against its manifest and MACs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from audit.retention.archive import manifest_path_for, read_archive, verify_archive
from audit.retention.archive_file import ArchiveError
from audit.retention.services import ArchiveBusy, audit_events_archive


class Command(BaseCommand):
    help = (
        "Write audit events past their retention period (AUDIT_RETENTION_DAYS, AUDIT_RETENTION_OVERRIDES) to "
        "encrypted gzip JSON Lines archives with manifests under AUDIT_DIR/archive/, read each archive back to "
        "verify it, and only then purge the events. The chain stays verifiable. Safe to run twice. "
        "With --read PATH: print an archive as JSON Lines; with --verify PATH: check an archive."
    )

    def add_arguments(self, parser):
        investigate = parser.add_mutually_exclusive_group()
        investigate.add_argument(
            "--read",
            metavar="PATH",
            help="Decrypt an archive and print its events as JSON Lines (needs its audit_archive key); - reads "
            "it from standard input (a pipe). Exits 1, after the lines already printed, if the archive is damaged, "
            "truncated or its key is missing.",
        )
        investigate.add_argument(
            "--verify",
            metavar="PATH",
            help="Check an archive (or its .manifest.json) against its manifest, its MACs and its encryption.",
        )
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

    def handle(self, *args, dry_run=False, batch_size=None, progress=None, read=None, verify=None, **options):
        if read:
            self._read(Path("/dev/stdin") if read == "-" else Path(read))
            return
        if verify:
            self._verify(Path(verify))
            return
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

    def _read(self, path: Path) -> None:
        """Stream the events to stdout, one JSON object per line, as stored in the archive."""
        count = 0
        try:
            for event in read_archive(path):
                self.stdout.write(json.dumps(event, sort_keys=True, separators=(",", ":")))
                count += 1
        except ArchiveError as error:
            raise CommandError(f"Cannot read the archive after {count} event(s): {error}") from None
        self.stderr.write(f"{count} event(s) read from {path.name}.")

    def _verify(self, path: Path) -> None:
        try:
            manifest = verify_archive(manifest_path_for(path))
        except ArchiveError as error:
            raise CommandError(f"Archive verification FAILED: {error}") from None
        encryption = manifest.get("encryption") or {}
        under = f", encrypted with audit_archive key {encryption['key_id']!r}" if encryption else ", not encrypted"
        self.stdout.write(
            self.style.SUCCESS(
                f"Archive OK: {manifest['count']} events #{manifest['first_sequence']}..#{manifest['last_sequence']}"
                f"{under}."
            )
        )
