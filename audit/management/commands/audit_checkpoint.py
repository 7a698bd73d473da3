"""``manage.py audit_checkpoint [--public-key]``: sign and publish a checkpoint now, or print the public key."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.checkpoints import checkpoint_publish, verifier_keys
from audit.sealing import seal_pending
from encryption.errors import KeyConfigurationError, KeyProviderError


class Command(BaseCommand):
    help = (
        "Seal what is pending, sign a checkpoint of the audit Merkle tree (when it grew) and publish it to "
        "AUDIT_CHECKPOINT_SINKS. With --public-key, print the verifier key(s) that check checkpoints instead."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--public-key",
            action="store_true",
            help="Print the verifier key of each audit_checkpoint key, the signing key first, and exit.",
        )

    def handle(self, *args, public_key=False, **options):
        try:
            if public_key:
                for _, text in verifier_keys():
                    self.stdout.write(text)
                return
            seal_pending()
            result = checkpoint_publish()
        except (KeyConfigurationError, KeyProviderError) as error:
            raise CommandError(f"The audit_checkpoint signing key is not available: {error}") from None
        checkpoint = result.checkpoint
        if checkpoint is None:
            self.stdout.write("Nothing sealed yet: no checkpoint to publish.")
            return
        verb = "Signed" if result.fresh else "Nothing new; offered the last"
        self.stdout.write(f"{verb} checkpoint at tree size {checkpoint.tree_size} (root {checkpoint.root_hash}).")
        for sink, outcome in result.sinks.items():
            self.stdout.write(f"  {sink}: {outcome}")
        if not result.ok:
            failed = ", ".join(sink for sink, outcome in result.sinks.items() if outcome != "ok")
            raise CommandError(f"The checkpoint was not published to: {failed}.")
