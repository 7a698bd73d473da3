"""The one beat schedule, loaded into django-celery-beat idempotently; the monitoring system checks."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from monitoring.checks import check_monitoring_settings
from monitoring.schedule import BEAT_SCHEDULE, scheduled_task_names
from monitoring.services.schedule import beat_schedule_sync

pytestmark = pytest.mark.django_db


def test_migrate_loaded_the_schedule():
    """``post_migrate`` ran when the test database was migrated."""
    tasks = {task.name: task for task in PeriodicTask.objects.filter(name__in=BEAT_SCHEDULE)}
    assert set(tasks) == set(BEAT_SCHEDULE)
    assert {task.task for task in tasks.values()} == scheduled_task_names()
    assert {
        "audit.tasks.audit_archive", "audit.tasks.audit_publish_head", "monitoring.detection_sweep",
        "monitoring.notifications_deliver", "monitoring.heartbeat", "monitoring.job_health_check",
        "monitoring.security_report",
    } <= scheduled_task_names()
    sweep = tasks["monitoring: detection sweep"]
    assert (sweep.interval.every, sweep.interval.period) == (1, IntervalSchedule.MINUTES) and sweep.enabled
    weekly = tasks["monitoring: weekly security report"]
    assert (weekly.crontab.minute, weekly.crontab.hour, weekly.crontab.day_of_week) == ("15", "6", "monday")
    assert json.loads(weekly.kwargs) == {"period": "weekly", "email": True}
    assert str(weekly.crontab.timezone) == "UTC"


def test_sync_is_idempotent_and_keeps_the_admins_changes():
    assert beat_schedule_sync() == {"created": 0, "reset": 0, "unchanged": len(BEAT_SCHEDULE)}
    archive = PeriodicTask.objects.get(name="audit: archive past retention")
    archive.enabled = False
    archive.crontab = CrontabSchedule.objects.create(minute="0", hour="4", timezone="UTC")
    archive.save()
    PeriodicTask.objects.create(name="an admin's own job", task="celery.backend_cleanup",
                                interval=IntervalSchedule.objects.create(every=2, period="hours"))
    out = io.StringIO()
    call_command("sync_beat_schedule", stdout=out)
    assert out.getvalue().strip() == f"beat schedule: 0 created, 0 reset, {len(BEAT_SCHEDULE)} unchanged"
    archive.refresh_from_db()
    assert not archive.enabled and archive.crontab.hour == "4"
    call_command("sync_beat_schedule", "--reset", stdout=io.StringIO())
    archive.refresh_from_db()
    assert archive.enabled and (archive.crontab.hour, archive.crontab.minute) == ("2", "30")
    assert PeriodicTask.objects.filter(name="an admin's own job").exists()


def test_a_deleted_entry_comes_back():
    PeriodicTask.objects.filter(name="monitoring: heartbeat").delete()
    assert beat_schedule_sync()["created"] == 1
    assert PeriodicTask.objects.get(name="monitoring: heartbeat").interval.every == 1


# --- system checks -----------------------------------------------------------------------------------
def _ids(settings_errors) -> set[str]:
    return {error.id for error in settings_errors}


def test_default_settings_pass_the_checks():
    assert check_monitoring_settings() == []


@pytest.mark.parametrize(
    ("overrides", "error_id"),
    [
        ({"MONITORING_BRUTE_FORCE_THRESHOLD": 0}, "monitoring.E001"),
        ({"MONITORING_WEBHOOK_URL": "ftp://example.org/x", "MONITORING_WEBHOOK_SECRET": "s" * 40}, "monitoring.E002"),
        ({"MONITORING_WEBHOOK_URL": "http://hooks.example.org/x", "MONITORING_WEBHOOK_SECRET": "s" * 40},
         "monitoring.E003"),
        ({"MONITORING_WEBHOOK_URL": "https://hooks.example.org/x", "MONITORING_WEBHOOK_SECRET": "short"},
         "monitoring.E004"),
        ({"MONITORING_METRICS_TOKEN": "short"}, "monitoring.E005"),
        ({"MONITORING_METRICS_ALLOWED_NETWORKS": ["not-a-network"]}, "monitoring.E006"),
        ({"MONITORING_NOTIFICATION_ROUTES": {"urgent": ["email"]}}, "monitoring.E007"),
        ({"MONITORING_NOTIFICATION_ROUTES": {"high": ["pager"]}}, "monitoring.E007"),
        ({"MONITORING_READINESS_CHECKS": ["database", "disk"]}, "monitoring.E008"),
        ({"MONITORING_DETECTION_BATCH_SECONDS": 0}, "monitoring.E001"),
        ({"MONITORING_BATCHED_ACTIONS": ["memory.read", "memory.raed"]}, "monitoring.E013"),
        ({"MONITORING_BATCHED_ACTIONS": "memory.read"}, "monitoring.E013"),
        ({"MONITORING_VOLUME_BUCKET_SETTLE_SECONDS": -1}, "monitoring.E014"),
        ({"MONITORING_DETECTION_BATCHING": "yes"}, "monitoring.E015"),
    ],
)
def test_unsafe_settings_are_refused(settings, overrides, error_id):
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert error_id in _ids(check_monitoring_settings())


def test_plain_http_to_a_loopback_receiver_is_allowed(settings):
    settings.MONITORING_WEBHOOK_URL = "http://127.0.0.1:9000/hook"
    settings.MONITORING_WEBHOOK_SECRET = "s" * 40
    assert check_monitoring_settings() == []
