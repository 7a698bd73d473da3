"""``manage.py audit_schema``: print the audit trail's documentation (``docs/audit-events.md``)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from audit.schema import markdown_table


class Command(BaseCommand):
    help = (
        "Print, as Markdown, every audit action with its area, meaning and context keys "
        "(python manage.py audit_schema > docs/audit-events.md)."
    )

    def handle(self, *args, **options):
        self.stdout.write(markdown_table(), ending="")
