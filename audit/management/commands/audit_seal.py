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
        if result.refused_ids:
            raise CommandError(
                f"Refused {len(result.refused_ids)} unsealed event(s) with an invalid content MAC "
                f"(inserted or changed outside audit.record): ids {result.refused_ids[:20]}"
            )
