"""The Prometheus exposition: figures read from the database at scrape time.

A custom collector on a private registry (nothing global, nothing per process), so every web
process answers the same numbers. Counters come from the per-minute tallies: they restart lower
when old tallies are pruned, which Prometheus treats as a counter reset. The ``process_*`` figures
are the exception: the runtime posture of the web process that answers the scrape, read then
(``monitoring.posture``; a figure it could not read is left out). The metrics (prefix
``ninaivalaigal_``) and what each counts: docs/monitoring.md (Health and metrics).
"""

from __future__ import annotations

from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitoring import selectors
from monitoring.models import JobOutcome
from monitoring.posture import posture_summary

PREFIX = "ninaivalaigal_"
PROCESS_ROLE = "web"  # /metrics is answered by a web process


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
            (
                "worker_heartbeat_age_seconds",
                "Seconds since the worker heartbeat.",
                getattr(selectors.heartbeat_get("worker"), "beat_at", None),
            ),
            (
                "beat_last_run_age_seconds",
                "Seconds since beat last sent a scheduled job.",
                selectors.beat_last_run_at(),
            ),
            ("audit_last_event_age_seconds", "Seconds since the newest audit event.", selectors.last_audit_event_at()),
        ):
            age = _age(now, moment)
            if age is not None:
                yield GaugeMetricFamily(f"{PREFIX}{name}", help_text, value=age)

        yield from self.collect_posture()

    def collect_posture(self):
        """The answering process's posture; a figure that could not be read is left out."""
        posture = posture_summary()
        yield InfoMetricFamily(
            f"{PREFIX}process",
            "The answering process: its role and image revision.",
            value={"role": PROCESS_ROLE, "revision": str(posture["revision"])},
        )
        if type(posture["uid"]) is int:
            yield GaugeMetricFamily(f"{PREFIX}process_uid", "Effective user id of the process.", value=posture["uid"])
        for name, help_text in (
            ("root_fs_writable", "1 when the root filesystem is mounted writable, else 0."),
            ("no_new_privs", "1 when no_new_privs is set (no privilege gain through exec), else 0."),
        ):
            if isinstance(posture[name], bool):
                yield GaugeMetricFamily(f"{PREFIX}process_{name}", help_text, value=1.0 if posture[name] else 0.0)
        if isinstance(posture["extra_capabilities"], list):
            yield GaugeMetricFamily(
                f"{PREFIX}process_extra_capabilities",
                "Effective capabilities beyond MONITORING_POSTURE_CAPABILITY_BASELINE.",
                value=len(posture["extra_capabilities"]),
            )


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitoringCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
