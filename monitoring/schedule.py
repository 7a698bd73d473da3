"""The beat schedule of the whole project: the one definition in code.

``manage.py sync_beat_schedule`` (and a ``post_migrate`` hook) loads these entries into
django-celery-beat idempotently, leaving an existing entry as the admins set it (``--reset``
restores the definitions below); deliberately not ``CELERY_BEAT_SCHEDULE``, which would undo the
admins' changes. Every task named here is a scheduled job whose runs ``monitoring`` records.
Task names are strings so this module imports nothing of the apps.
Why: docs/decisions/beat-schedule-in-code.md.
"""

from __future__ import annotations

from datetime import timedelta

from celery.schedules import crontab

#: name → {"task": dotted task name, "schedule": timedelta or crontab, "kwargs": {...},
#: "description": text shown in the admin}. Times are UTC.
BEAT_SCHEDULE: dict[str, dict] = {
    "audit: seal pending events": {
        "task": "audit.tasks.audit_seal",
        "schedule": timedelta(minutes=1),
        "description": "Chain committed events that a crashed process left unsealed.",
    },
    "audit: publish chain head": {
        "task": "audit.tasks.audit_publish_head",
        "schedule": crontab(minute=5),
        "description": "Verify the chain from the last published head and publish the new head (hourly).",
    },
    "audit: archive past retention": {
        "task": "audit.tasks.audit_archive",
        "schedule": crontab(hour=2, minute=30),
        "description": "Archive, verify and purge audit events past retention (daily).",
    },
    "accounts: expire unconfirmed authenticators": {
        "task": "accounts.totp_devices_expire",
        "schedule": timedelta(minutes=15),
        "description": "Delete TOTP enrolments never confirmed within ACCOUNTS_MFA_UNCONFIRMED_DEVICE_TTL.",
    },
    "memories: expire transfer offers": {
        "task": "memories.transfer_offers_expire",
        "schedule": timedelta(minutes=15),
        "description": "Mark context transfer offers past MEMORIES_TRANSFER_OFFER_MAX_AGE as expired (recorded).",
    },
    "accounts: deliver security emails": {
        "task": "accounts.security_emails_deliver",
        "schedule": timedelta(minutes=1),
        "description": "Send due security emails of the outbox (locked account, new sign-in, reset links) "
        "with retries and backoff.",
    },
    "api: purge expired request nonces": {
        "task": "api.request_nonces_purge",
        "schedule": timedelta(minutes=10),
        "description": "Delete signed-request nonces older than the signature window.",
    },
    "api: flush deprecated-call counts": {
        "task": "api.deprecated_calls_flush",
        "schedule": timedelta(minutes=1),
        "description": "Add the deprecated-endpoint call counts pending in Redis to their daily rows.",
    },
    "encryption: backup and verify": {
        "task": "encryption.backup_and_verify",
        "schedule": crontab(hour=1, minute=30),
        "description": "Encrypted database backup, restored into a scratch database and checked; keeps the "
        "newest ENCRYPTION_BACKUP_KEEP verified backups (daily).",
    },
    "monitoring: detection sweep": {
        "task": "monitoring.detection_sweep",
        "schedule": timedelta(minutes=1),
        "description": "Run every detector over the recent audit events (catches lost real-time hand-offs).",
    },
    "monitoring: deliver notifications": {
        "task": "monitoring.notifications_deliver",
        "schedule": timedelta(minutes=1),
        "description": "Deliver due outbox notifications (email, webhook) with retries and backoff.",
    },
    "monitoring: heartbeat": {
        "task": "monitoring.heartbeat",
        "schedule": timedelta(minutes=1),
        "description": "Prove a worker runs scheduled jobs; /readyz reads the timestamp.",
    },
    "monitoring: job health": {
        "task": "monitoring.job_health_check",
        "schedule": timedelta(minutes=5),
        "description": "Alert on scheduled jobs that are late; prune old job runs and tallies.",
    },
    "monitoring: dashboard counts": {
        "task": "monitoring.security_counts_rollup",
        "schedule": timedelta(minutes=5),
        "description": "Recompute today's and yesterday's per-day counts and the 24-hour top lists of the dashboard.",
    },
    "monitoring: daily security report": {
        "task": "monitoring.security_report",
        "schedule": crontab(hour=6, minute=0),
        "kwargs": {"period": "daily", "email": True},
        "description": "Daily security digest, stored and emailed to the security administrators.",
    },
    "monitoring: weekly security report": {
        "task": "monitoring.security_report",
        "schedule": crontab(hour=6, minute=15, day_of_week="monday"),
        "kwargs": {"period": "weekly", "email": True},
        "description": "Weekly security digest, stored and emailed to the security administrators.",
    },
}


def scheduled_task_names() -> frozenset[str]:
    """The dotted names of every task that runs on the schedule (the "scheduled jobs")."""
    return frozenset(entry["task"] for entry in BEAT_SCHEDULE.values())
