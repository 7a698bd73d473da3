from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Detectors, alerts, notifications, job runs, reports and health.

    ``ready()`` connects the listeners (``monitoring.receivers``): no other app imports this one.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"
    verbose_name = "Security monitoring"

    def ready(self) -> None:
        from celery import signals as celery_signals
        from django.contrib.auth import signals as auth_signals
        from django.db.models.signals import post_migrate

        from audit.signals import event_recorded
        from monitoring import (
            checks,  # noqa: F401  (registers the system checks)
            receivers,
        )
        from monitoring.services.schedule import sync_after_migrate

        event_recorded.connect(receivers.audit_event_recorded, dispatch_uid="monitoring.audit_event_recorded")
        celery_signals.task_prerun.connect(receivers.task_started, weak=False, dispatch_uid="monitoring.job_start")
        celery_signals.task_postrun.connect(receivers.task_finished, weak=False, dispatch_uid="monitoring.job_end")
        celery_signals.task_failure.connect(receivers.task_failed, weak=False, dispatch_uid="monitoring.job_failed")
        celery_signals.worker_ready.connect(receivers.worker_ready, weak=False, dispatch_uid="monitoring.worker_ready")
        celery_signals.beat_init.connect(receivers.beat_init, weak=False, dispatch_uid="monitoring.beat_init")
        auth_signals.user_logged_in.connect(receivers.user_logged_in, dispatch_uid="monitoring.user_logged_in")
        auth_signals.user_login_failed.connect(receivers.user_login_failed, dispatch_uid="monitoring.user_login_failed")
        post_migrate.connect(sync_after_migrate, sender=self, dispatch_uid="monitoring.sync_beat_schedule")
        # Slow queries are logged normalised, never with their parameters (monitoring.database).
        from monitoring.database import connect_slow_query_capture

        connect_slow_query_capture()
