"""The Prometheus exposition: figures read from the database at scrape time.

A custom collector on a private registry (nothing global, nothing per process), so every web
process answers the same numbers. Counters come from the per-minute tallies: they restart lower
when old tallies are pruned, which Prometheus treats as a counter reset. The metrics (prefix
``ninaivalaigal_``) and what each counts: docs/monitoring.md (Health and metrics).
"""

from __future__ import annotations

from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitoring import selectors
from monitoring.models import JobOutcome

PREFIX = "ninaivalaigal_"


def _age(now, moment) -> float | None:
    return None if moment is None else max((now - moment).total_seconds(), 0.0)


class MonitoringCollector:
    """Yields the metric families above at each collection."""

    def collect(self):
        now = timezone.now()
        requests = CounterMetricFamily(
            f"{PREFIX}http_requests", "Requests served, by status class (probes excluded).", labels=["status_class"]
        )
        for status_class, total in sorted(selectors.request_totals().items()):
            requests.add_metric([status_class], total)
        yield requests

        failed = GaugeMetricFamily(
            f"{PREFIX}failed_logins", "Failed password and MFA attempts in the trailing window.", labels=["window"]
        )
        for window, count in selectors.failed_login_counts(now=now).items():
            failed.add_metric([window], count)
        yield failed

        alerts = GaugeMetricFamily(f"{PREFIX}alerts_open", "Open or acknowledged alerts.", labels=["severity"])
        for severity, count in selectors.open_alert_counts().items():
            alerts.add_metric([severity], count)
        yield alerts

        yield GaugeMetricFamily(
            f"{PREFIX}notifications_pending",
            "Notifications not yet delivered.",
            value=selectors.pending_notification_count(),
        )

        started = GaugeMetricFamily(
            f"{PREFIX}job_last_start_age_seconds", "Seconds since the scheduled job last started.", labels=["task"]
        )
        succeeded = GaugeMetricFamily(
            f"{PREFIX}job_last_success_age_seconds", "Seconds since the scheduled job last succeeded.", labels=["task"]
        )
        failed_jobs = GaugeMetricFamily(
            f"{PREFIX}job_last_run_failed", "1 when the job's latest run failed, else 0.", labels=["task"]
        )
        for job in selectors.job_status_list():
            if job["last_started"] is not None:
                started.add_metric([job["task"]], _age(now, job["last_started"]))
                failed_jobs.add_metric([job["task"]], 1.0 if job["last_outcome"] == JobOutcome.FAILURE else 0.0)
            if job["last_success"] is not None:
                succeeded.add_metric([job["task"]], _age(now, job["last_success"]))
        yield started
        yield succeeded
        yield failed_jobs

        for name, help_text, moment in (
            ("worker_heartbeat_age_seconds", "Seconds since the worker heartbeat.",
             getattr(selectors.heartbeat_get("worker"), "beat_at", None)),
            ("beat_last_run_age_seconds", "Seconds since beat last sent a scheduled job.",
             selectors.beat_last_run_at()),
            ("audit_last_event_age_seconds", "Seconds since the newest audit event.", selectors.last_audit_event_at()),
        ):
            age = _age(now, moment)
            if age is not None:
                yield GaugeMetricFamily(f"{PREFIX}{name}", help_text, value=age)


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitoringCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
