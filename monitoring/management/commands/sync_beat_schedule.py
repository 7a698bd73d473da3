"""``manage.py sync_beat_schedule [--reset]``: load monitoring/schedule.py into django-celery-beat."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from monitoring.services.schedule import beat_schedule_sync


class Command(BaseCommand):
    help = (
        "Create the missing entries of the project's beat schedule (monitoring/schedule.py) in django-celery-beat. "
        "Entries that exist keep the admins' changes unless --reset is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset", action="store_true", help="Put every defined entry back as monitoring/schedule.py defines it."
        )
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args, reset: bool = False, database: str = "default", **options):
        counts = beat_schedule_sync(reset=reset, using=database)
        self.stdout.write(
            f"beat schedule: {counts['created']} created, {counts['reset']} reset, {counts['unchanged']} unchanged"
        )
