"""``manage.py security_report --period daily|weekly [--email] [--format html|text|csv] [--until DATE]``."""

from __future__ import annotations

import datetime

from django.core.management.base import BaseCommand, CommandError

from monitoring.services.notifications import notifications_deliver_due
from monitoring.services.reports import report_generate


class Command(BaseCommand):
    help = (
        "Generate and store the daily (previous UTC day) or weekly (previous seven UTC days) security report, "
        "print it, and with --email send it to the security administrators."
    )

    def add_arguments(self, parser):
        parser.add_argument("--period", choices=["daily", "weekly"], default="daily")
        parser.add_argument("--email", action="store_true", help="Email the report (HTML, text and CSV attachment).")
        parser.add_argument("--format", choices=["html", "text", "csv"], default="text", dest="output_format")
        parser.add_argument("--until", help="The report ends at 00:00 UTC of this date, YYYY-MM-DD (default: today).")

    def handle(self, *args, period: str, email: bool, output_format: str, until: str | None = None, **options):
        end_day = None
        if until:
            try:
                end_day = datetime.date.fromisoformat(until)
            except ValueError:
                raise CommandError("--until must be a date as YYYY-MM-DD.") from None
        report = report_generate(period=period, email=email, until=end_day)
        self.stdout.write({"html": report.html, "text": report.text, "csv": report.csv}[output_format], ending="")
        if email:
            results = notifications_deliver_due()
            self.stderr.write(
                f"report {report.pk}: {results['sent']} email(s) sent, "
                f"{results['failed'] + results['deferred']} waiting for retry"
            )
