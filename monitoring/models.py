"""What monitoring keeps: alerts, their notifications (the outbox), job runs, reports, tallies.

Nothing here is imported by another app. Alerts point at audit events by id (in ``evidence``),
never by foreign key: the audit record outlives, and is archived separately from, the alerts.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Severity(models.IntegerChoices):
    """How bad. Integers so that ordering by severity is ordering by the column."""

    LOW = 10, "low"
    MEDIUM = 20, "medium"
    HIGH = 30, "high"
    CRITICAL = 40, "critical"


class AlertStatus(models.TextChoices):
    """open → acknowledged → resolved | false_positive (open may also close directly)."""

    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    FALSE_POSITIVE = "false_positive", "False positive"


ACTIVE_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


class SubjectType(models.TextChoices):
    USER = "user", "User"
    IP = "ip", "IP address"
    API_KEY = "api_key", "API key"
    JOB = "job", "Scheduled job"
    SYSTEM = "system", "System"


class Alert(models.Model):
    """One detected condition; repeated triggers with the same ``dedupe_key`` update it.

    ``triggered_at`` is the time of the audit event that made the detector fire (for a sweep,
    the newest event of the evidence); ``created_at - triggered_at`` is the detection time,
    stored in ``detection_seconds`` (the seed's "mean time to detection").
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    detector = models.CharField(max_length=50)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    status = models.CharField(max_length=20, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    dedupe_key = models.CharField(max_length=255)
    subject_type = models.CharField(max_length=20, choices=SubjectType.choices)
    subject = models.CharField(max_length=255, blank=True, default="")
    summary = models.CharField(max_length=500)
    # {"event_ids": [newest first, capped], "counts": {...}} - counts are the detector's figures.
    evidence = models.JSONField(default=dict, blank=True)
    count = models.PositiveIntegerField(default=1, help_text="Times the detector fired into this alert.")
    first_seen = models.DateTimeField(help_text="Oldest evidence event.")
    last_seen = models.DateTimeField(help_text="Newest evidence event.")
    triggered_at = models.DateTimeField(help_text="Time of the event that made the detector fire.")
    created_at = models.DateTimeField(help_text="When the alert was raised (detection).")
    detection_seconds = models.FloatField(help_text="created_at minus triggered_at, in seconds.")
    last_event_id = models.BigIntegerField(null=True, blank=True, help_text="Newest audit event id seen.")
    updated_at = models.DateTimeField(auto_now=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, default="", help_text="Triage notes, appended at each step.")
    # Who is looking into it: a staff user holding monitoring.triage_alert (alert_assign checks).
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("triage_alert", "Can acknowledge, resolve or dismiss alerts")]
        indexes = [
            models.Index(fields=["status", "severity"], name="monitoring_alert_status_sev"),
            models.Index(fields=["dedupe_key", "created_at"], name="monitoring_alert_dedupe"),
            models.Index(fields=["created_at"], name="monitoring_alert_created"),
            models.Index(fields=["detector", "created_at"], name="monitoring_alert_detector"),
        ]

    def __str__(self) -> str:
        return f"[{self.get_severity_display()}] {self.detector}: {self.subject or self.summary}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


ALERT_NOTE_MAX_LENGTH = 2000  # characters of one triage note


class AlertNote(models.Model):
    """One step of an alert's history: who, when, from which status to which, and what they wrote.

    Written by the triage services only (a transition, an assignment, a suppression made from the
    alert, or the system closing a bootstrap alert, where ``author`` is empty); shown newest first.
    """

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The author's username then (the account may be renamed or deleted later); empty: the system.
    author_username = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField()
    from_status = models.CharField(max_length=20, choices=AlertStatus.choices)
    to_status = models.CharField(max_length=20, choices=AlertStatus.choices)
    text = models.TextField(max_length=ALERT_NOTE_MAX_LENGTH, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["alert", "created_at"], name="monitoring_alertnote_alert")]

    def __str__(self) -> str:
        who = self.author_username or "the system"
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {who}: {self.from_status} → {self.to_status}"


class SuppressionRule(models.Model):
    """ "Don't alert on ``detector`` for ``subject`` until ``expires_at``", with the reason.

    ``monitoring.services.suppression`` creates, ends and deletes rules (each audited); while a
    rule is in force (``expires_at`` in the future, not ended) a matching detection raises no
    alert and is counted here instead (``suppressed_count``, ``last_suppressed_at``). Past its date
    a rule stops applying by itself and stays listed for the record.
    """

    detector = models.CharField(max_length=50)
    subject_type = models.CharField(max_length=20, choices=SubjectType.choices)
    subject = models.CharField(max_length=255)
    reason = models.TextField(max_length=ALERT_NOTE_MAX_LENGTH)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(help_text="The rule applies until this time (UTC).")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Ended early by an administrator.")
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="suppression_rules"
    )
    suppressed_count = models.PositiveIntegerField(default=0, help_text="Detections it kept from alerting.")
    last_suppressed_at = models.DateTimeField(null=True, blank=True)
    # The newest evidence already counted (so a sweep that re-finds the same condition counts it once).
    last_event_id = models.BigIntegerField(null=True, blank=True)
    last_finding_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["detector", "subject_type", "subject", "expires_at"], name="monitoring_supp_match"),
        ]

    def __str__(self) -> str:
        return f"{self.detector} for {self.subject} until {self.expires_at:%Y-%m-%d %H:%M} UTC"

    def in_force(self, now) -> bool:
        return self.ended_at is None and self.expires_at > now


class NotificationChannel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"


class Notification(models.Model):
    """The transactional outbox: one message to one destination, written with what it announces.

    A row is written in the same transaction as its alert (or report) and delivered afterwards
    by ``monitoring.notifications_deliver``; a failed attempt is retried with backoff until it
    succeeds. Nothing is dropped: an outage only delays.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    report = models.ForeignKey(
        "monitoring.Report", null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    channel = models.CharField(max_length=10, choices=NotificationChannel.choices)
    destination = models.CharField(max_length=500, help_text="Email address or webhook URL.")
    event_type = models.CharField(max_length=50, help_text="alert.raised, alert.escalated, report.ready")
    subject = models.CharField(max_length=255, blank=True, default="")
    payload = models.JSONField(default=dict, help_text="The webhook body (JSON) or the email's facts.")
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="monitoring_notif_due"),
            models.Index(fields=["destination", "sent_at"], name="monitoring_notif_rate"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.event_type} → {self.destination} ({self.status})"


class JobOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    RETRY = "retry", "Retry"


class JobRun(models.Model):
    """One run of a scheduled job (a task named in ``monitoring/schedule.py``), from Celery's signals."""

    task_name = models.CharField(max_length=200)
    task_id = models.CharField(max_length=64, unique=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=JobOutcome.choices, default=JobOutcome.RUNNING)
    counts = models.JSONField(default=dict, blank=True, help_text="Numbers the job returned.")
    error = models.CharField(max_length=200, blank=True, default="", help_text="Exception class, never its text.")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["task_name", "started_at"], name="monitoring_jobrun_task")]

    def __str__(self) -> str:
        return f"{self.task_name} {self.started_at:%Y-%m-%d %H:%M:%S} {self.outcome}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class ReportPeriod(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"


class Report(models.Model):
    """A security digest as generated: the figures, and the HTML, text and CSV made from them."""

    period = models.CharField(max_length=10, choices=ReportPeriod.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    generated_at = models.DateTimeField()
    figures = models.JSONField(default=dict)
    html = models.TextField()
    text = models.TextField()
    csv = models.TextField()
    # The Celery task that made it, when a task did: a redelivered task (acks_late: its worker died
    # before acknowledging) finds its report here and neither makes nor emails a second one.
    task_id = models.CharField(max_length=255, null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-generated_at", "-id"]
        indexes = [models.Index(fields=["period", "period_start"], name="monitoring_report_period")]

    def __str__(self) -> str:
        return f"{self.get_period_display()} security report {self.period_start:%Y-%m-%d}"


class Tally(models.Model):
    """A per-minute count observed outside the audit record (served requests, Django auth signals).

    Used by /metrics, by the audit-silence detector and to measure audit coverage (logins Django
    saw versus logins the audit record holds).
    """

    minute = models.DateTimeField()
    name = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "minute"], name="monitoring_tally_unique")]
        indexes = [models.Index(fields=["minute"], name="monitoring_tally_minute")]

    def __str__(self) -> str:
        return f"{self.name} {self.minute:%Y-%m-%d %H:%M} {self.count}"


class Heartbeat(models.Model):
    """The last time a component proved it was alive (the worker, through the heartbeat job)."""

    name = models.CharField(max_length=64, primary_key=True)
    beat_at = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.name} {self.beat_at:%Y-%m-%d %H:%M:%S}"


class DailySecurityCount(models.Model):
    """A per-day (UTC) count for the security dashboard, precomputed by the rollup job.

    ``monitoring.security_counts_rollup`` recomputes today and yesterday every few minutes from the
    audit record, the tallies and Django's admin log, so the dashboard never counts the audit table
    itself. ``name`` is an audit action (``auth.login_failed``) or an observed count
    (``observed.auth.login_failed``, ``observed.admin_log``); see ``monitoring.services.rollup``.
    """

    day = models.DateField()
    name = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "name"]
        constraints = [models.UniqueConstraint(fields=["day", "name"], name="monitoring_dailycount_unique")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.name} {self.count}"


class SecuritySnapshot(models.Model):
    """A figure of the dashboard too costly to compute per view (the last 24 h's top failing IPs
    and accounts), written by the rollup job with the time it was computed."""

    name = models.CharField(max_length=64, primary_key=True)
    computed_at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.name} {self.computed_at:%Y-%m-%d %H:%M:%S}"
