"""``manage.py audit_reconcile --after-restore``: re-anchor the published head after a restore."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.chain import ChainKeyError
from audit.services import ReconcileRefused, audit_chain_reconcile_after_restore


class Command(BaseCommand):
    help = (
        "After restoring a backup: check the restored audit chain on its own, publish its head again "
        "(heads.log) and record system.audit_reconciled with the sequences lost with the restore, so "
        "verification and publication work again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--after-restore",
            action="store_true",
            help="Required: says the database was restored from a backup (the chain's tail is knowingly lost).",
        )

    def handle(self, *args, after_restore, **options):
        if not after_restore:
            raise CommandError("Say why: audit_reconcile runs only --after-restore (a restored database).")
        try:
            result = audit_chain_reconcile_after_restore()
        except (ReconcileRefused, ChainKeyError) as error:
            raise CommandError(f"Reconcile refused: {error}") from None
        if not result.reconciled:
            self.stdout.write(
                f"Nothing to reconcile: the chain (head #{result.restored_head}) reaches the published head."
            )
            return
        lost = f"sequences {result.lost_from} to {result.lost_to}" if result.lost_to else "no published sequence"
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain reconciled: restored at #{result.restored_head}; {lost} (published up to "
                f"#{result.published_sequence} on {result.published_at}) were lost with the restore, and any event "
                "after that publication; recorded as system.audit_reconciled."
            )
        )
