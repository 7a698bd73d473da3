"""``manage.py audit_verify [--from N] [--to M]``: check the audit chain; exit 1 naming the first bad event."""

from __future__ import annotations

import argparse
import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from audit import conf
from audit.models import AuditEvent
from audit.services import audit_chain_verify

PROBLEMS_SHOWN = 20


class Command(BaseCommand):
    help = (
        "Verify the keyed hash chain of audit events (all of it, or --from/--to). Exits 1 and names the first bad "
        "sequence number if an event was modified, deleted, inserted or reordered, or the newest were truncated. "
        "After a successful full verification the head is published outside the database."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="from_sequence", type=int, help="First sequence number to check.")
        parser.add_argument("--to", dest="to_sequence", type=int, help="Last sequence number to check.")
        parser.add_argument("--no-publish", action="store_true", help="Do not publish the head after success.")
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Show a progress bar (default: when stderr is a terminal).",
        )

    def handle(self, *args, from_sequence=None, to_sequence=None, no_publish=False, progress=None, **options):
        if from_sequence is not None and from_sequence < 1:
            raise CommandError("--from must be 1 or more.")
        if to_sequence is not None and from_sequence is not None and to_sequence < from_sequence:
            raise CommandError("--to must not be below --from.")
        show_progress = sys.stderr.isatty() if progress is None else progress
        bar = None
        if show_progress:
            query = AuditEvent.objects.sealed()
            if from_sequence is not None:
                query = query.filter(sequence__gte=from_sequence)
            if to_sequence is not None:
                query = query.filter(sequence__lte=to_sequence)
            bar = tqdm(total=query.count(), unit="event", desc="audit_verify", file=sys.stderr)
        try:
            report = audit_chain_verify(
                from_sequence=from_sequence,
                to_sequence=to_sequence,
                publish=not no_publish,
                progress=bar.update if bar else None,
            )
        finally:
            if bar is not None:
                bar.close()

        self.stdout.write(
            f"Checked {report.checked} events (#{report.from_sequence}..#{report.last_sequence}), "
            f"{report.tombstones} purged-event tombstones, in {report.elapsed_seconds:.2f} s "
            f"({report.events_per_second:,.0f} events/s)."
        )
        if report.full and report.tree_size:
            self.stdout.write(
                f"Merkle tree of {report.tree_size} events recomputed; {report.checkpoints_compared} published "
                "checkpoint(s) compared with it."
            )
        if report.anchor_sequence:
            self.stdout.write(f"Verification starts after the purge anchor #{report.anchor_sequence}.")
        if report.published_head is not None and report.published_head.mac_valid:
            self.stdout.write(
                f"Last published head before this run: #{report.published_head.sequence} "
                f"({report.published_head.published_at})."
            )
        if report.unsealed:
            age = (timezone.now() - report.unsealed_oldest).total_seconds() if report.unsealed_oldest else 0
            stale = age > conf.get("AUDIT_SEAL_GRACE_SECONDS")
            writer = self.stderr if stale else self.stdout
            writer.write(
                f"{report.unsealed} event(s) not sealed yet, oldest {age:.0f} s old"
                + (" - the sealer is not keeping up; run audit_seal" if stale else "")
                + "."
            )
        if report.ok:
            if report.full and not no_publish and report.last_sequence > 0:
                self.stdout.write(f"Published head #{report.last_sequence}.")
            self.stdout.write(self.style.SUCCESS("Audit chain OK."))
            return
        for problem in report.problems[:PROBLEMS_SHOWN]:
            self.stderr.write(f"  {problem}")
        if report.problem_count > PROBLEMS_SHOWN:
            self.stderr.write(f"  ... and {report.problem_count - PROBLEMS_SHOWN} more")
        first = report.first_bad_sequence
        if first is not None:
            raise CommandError(
                f"Audit chain verification FAILED: first bad sequence {first} ({report.problem_count} problem(s))."
            )
        first_problem = report.problems[0]
        raise CommandError(f"Audit chain verification FAILED: {first_problem} ({report.problem_count} problem(s)).")
