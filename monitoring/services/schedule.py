"""Loading ``monitoring/schedule.py`` into django-celery-beat, where the admins see and edit it."""

from __future__ import annotations

import datetime
import json
import logging

from celery.schedules import crontab
from django.db import DatabaseError, transaction

from monitoring.schedule import BEAT_SCHEDULE

logger = logging.getLogger("monitoring.schedule")


def _interval(schedule: datetime.timedelta, using: str):
    from django_celery_beat.models import IntervalSchedule

    seconds = int(schedule.total_seconds())
    if seconds % 3600 == 0:
        every, period = seconds // 3600, IntervalSchedule.HOURS
    elif seconds % 60 == 0:
        every, period = seconds // 60, IntervalSchedule.MINUTES
    else:
        every, period = seconds, IntervalSchedule.SECONDS
    found = IntervalSchedule.objects.using(using).filter(every=every, period=period).order_by("pk").first()
    return found or IntervalSchedule.objects.using(using).create(every=every, period=period)


def _crontab(schedule: crontab, using: str):
    from django_celery_beat.models import CrontabSchedule

    spec = {
        "minute": str(schedule._orig_minute),
        "hour": str(schedule._orig_hour),
        "day_of_week": str(schedule._orig_day_of_week),
        "day_of_month": str(schedule._orig_day_of_month),
        "month_of_year": str(schedule._orig_month_of_year),
        "timezone": "UTC",
    }
    found = CrontabSchedule.objects.using(using).filter(**spec).order_by("pk").first()
    return found or CrontabSchedule.objects.using(using).create(**spec)


def beat_schedule_sync(*, reset: bool = False, using: str = "default") -> dict[str, int]:
    """Create the missing entries of ``monitoring.schedule.BEAT_SCHEDULE`` in django-celery-beat.

    Idempotent: an entry that exists (same name) is left as the admins set it — schedule,
    enabled flag, arguments — unless ``reset`` puts the definition back. Entries admins added
    are never touched. Returns counts of created, reset and unchanged entries.
    Permission: none (operators run it; ``migrate`` runs it through ``post_migrate``).
    """
    from django_celery_beat.models import PeriodicTask

    counts = {"created": 0, "reset": 0, "unchanged": 0}
    with transaction.atomic(using=using):
        for name, entry in BEAT_SCHEDULE.items():
            existing = PeriodicTask.objects.using(using).filter(name=name).first()
            if existing is not None and not reset:
                counts["unchanged"] += 1
                continue
            schedule = entry["schedule"]
            values = {
                "task": entry["task"],
                "interval": _interval(schedule, using) if isinstance(schedule, datetime.timedelta) else None,
                "crontab": _crontab(schedule, using) if isinstance(schedule, crontab) else None,
                "solar": None,
                "clocked": None,
                "args": json.dumps(entry.get("args", [])),
                "kwargs": json.dumps(entry.get("kwargs", {})),
                "description": entry.get("description", ""),
                "enabled": True,
                "one_off": False,
            }
            task = existing or PeriodicTask(name=name)
            for field, value in values.items():
                setattr(task, field, value)
            task.save(using=using)
            counts["reset" if existing is not None else "created"] += 1
    return counts


def sync_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """``post_migrate`` hook: load the schedule once the tables exist (quietly skip otherwise)."""
    try:
        counts = beat_schedule_sync(using=using)
    except DatabaseError as error:  # django-celery-beat not migrated (yet) on this database
        logger.info("beat schedule not synced: %s", type(error).__name__)
        return
    if counts["created"]:
        logger.info("beat schedule: %d entries created", counts["created"])
