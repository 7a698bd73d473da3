"""``manage.py audit_reconcile --after-restore``: name the lost tail, start a new tree epoch, publish again."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.chain import ChainKeyError
from audit.services import ReconcileRefused, audit_chain_reconcile_after_restore


class Command(BaseCommand):
    help = (
        "After restoring a backup: check the restored audit chain on its own, record system.audit_reconciled "
        "with the sequences and the checkpoint lost with the restore, start a new Merkle tree epoch and publish "
        "its head and checkpoints again (the witness accepts the new epoch), so verification and publication "
        "work again."
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
        if result.unmatched_checkpoint:
            epoch, size, root = result.unmatched_checkpoint
            unmatched = (
                f"the checkpoint of {size} events (epoch {epoch}, root {root.hex()[:16]}…) published to "
                f"{result.unmatched_source} is named as lost"
            )
        else:
            unmatched = "no checkpoint had been published"
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain reconciled: restored at #{result.restored_head}; {lost} (published up to "
                f"#{result.published_sequence} on {result.published_at}) were lost with the restore, and any event "
                f"after that publication. Merkle tree epoch {result.epoch} begins after #{result.tree_base}; "
                f"{unmatched}. Recorded as system.audit_reconciled."
            )
        )
