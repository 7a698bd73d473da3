"""``manage.py audit_seal``: chain every committed unsealed audit event now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_chain_seal


class Command(BaseCommand):
    help = "Seal (chain) every committed unsealed audit event now. Safe to run at any time, in parallel."

    def handle(self, *args, **options):
        result = audit_chain_seal()
        self.stdout.write(f"Sealed {result.sealed} event(s).")
        if result.busy:
            self.stdout.write("Another sealer was running and seals the rest.")
        if result.jump:
            self.stdout.write(
                f"The chain head #{result.jump.chain_head} is behind #{result.jump.published_sequence} published in "
                f"{result.jump.published_in} (the newest events were removed, or an older backup restored): those "
                f"numbers are not given again; recorded as system.audit_sequence_jumped."
            )
        if result.skipped:
            sequences = ", ".join(f"#{sequence}" for sequence, _ in result.skipped[:20])
            ids = [event_id for _, event_id in result.skipped[:20]]
            raise CommandError(
                f"Skipped {len(result.skipped)} sequence number(s) held by rows the sealer did not allocate (forged, "
                f"outside audit.record): {sequences} (row ids {ids}); sealing went on after them; recorded as "
                "system.audit_forged_row_skipped."
            )
        if result.refused_ids:
            raise CommandError(
                f"Refused {len(result.refused_ids)} unsealed event(s) with an invalid content MAC "
                f"(inserted or changed outside audit.record): ids {result.refused_ids[:20]}"
            )
