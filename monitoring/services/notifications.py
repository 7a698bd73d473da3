"""Notifications through a transactional outbox: email to the security administrators and a signed webhook.

``notifications_enqueue_for_alert`` adds one ``Notification`` row per routed destination inside
the alert's transaction; ``notifications_deliver_due`` (task ``monitoring.notifications_deliver``,
after commit and every minute) sends due rows, retries a failure with exponential backoff and
holds back a destination over its rate limit. Nothing is sent before the commit, nothing is
dropped, and delivery is at-least-once. Why: docs/decisions/notifications-outbox.md.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from core.emails import absolute_url
from core.handoff import hand_off
from core.outbox import claim_due, retry_backoff
from monitoring import conf, webhooks
from monitoring.models import (
    Alert,
    Notification,
    NotificationChannel,
    NotificationStatus,
    Report,
    Severity,
)

logger = logging.getLogger("monitoring.notifications")

EMAIL_TIMEOUT_SECONDS = 30
USER_AGENT = "Ninaivalaigal-Webhook/1"


# --- who receives ---------------------------------------------------------------------------
def alert_email_recipients() -> list[str]:
    """``MONITORING_ALERT_EMAILS``, or else every active superuser with an email address."""
    configured = conf.get("MONITORING_ALERT_EMAILS")
    if configured:
        return sorted({address.strip() for address in configured if address.strip()})
    users = get_user_model().objects.filter(is_active=True, is_superuser=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def report_email_recipients() -> list[str]:
    configured = conf.get("MONITORING_REPORT_EMAILS")
    if configured:
        return sorted({address.strip() for address in configured if address.strip()})
    return alert_email_recipients()


def _admin_path(alert: Alert) -> str:
    try:
        return reverse("admin:monitoring_alert_change", args=[alert.pk])
    except NoReverseMatch:
        return ""


def alert_payload(alert: Alert, *, event_type: str, delivery_id: str) -> dict:
    """The webhook body (and the facts the email shows). No secrets: ids, names, counts."""
    return {
        "type": event_type,
        "delivery_id": delivery_id,
        "alert": {
            "id": alert.pk,
            "uuid": str(alert.uuid),
            "detector": alert.detector,
            "severity": alert.get_severity_display(),
            "status": alert.status,
            "subject_type": alert.subject_type,
            "subject": alert.subject,
            "summary": alert.summary,
            "count": alert.count,
            "first_seen": alert.first_seen.isoformat(),
            "last_seen": alert.last_seen.isoformat(),
            "triggered_at": alert.triggered_at.isoformat(),
            "detected_at": alert.created_at.isoformat(),
            "detection_seconds": round(alert.detection_seconds, 3),
            "evidence": alert.evidence,
            "console_path": _admin_path(alert),
        },
    }


# --- writing into the outbox -----------------------------------------------------------------
def notifications_enqueue_for_alert(*, alert: Alert, event_type: str) -> list[Notification]:
    """Add the alert's notifications to the outbox in the current transaction (routes by severity).

    Permission: none (called by the alert service).
    """
    channels = conf.get("MONITORING_NOTIFICATION_ROUTES").get(Severity(alert.severity).label, [])
    now = timezone.now()
    destinations: list[tuple[str, str]] = []
    if NotificationChannel.EMAIL in channels:
        destinations += [(NotificationChannel.EMAIL, address) for address in alert_email_recipients()]
    if NotificationChannel.WEBHOOK in channels and conf.get("MONITORING_WEBHOOK_URL"):
        destinations.append((NotificationChannel.WEBHOOK, conf.get("MONITORING_WEBHOOK_URL")))
    rows = []
    for channel, destination in destinations:
        notification = Notification(
            alert=alert,
            channel=channel,
            destination=destination[:500],
            event_type=event_type,
            subject=_alert_subject(alert, event_type),
            next_attempt_at=now,
            created_at=now,
        )
        notification.payload = alert_payload(alert, event_type=event_type, delivery_id=str(notification.uuid))
        rows.append(notification)
    return Notification.objects.bulk_create(rows)


def report_email_enqueue(*, report: Report) -> list[Notification]:
    """Add the report's emails to the outbox (HTML, plain text and CSV attachment at delivery).

    Permission: none (the report job and command run as the system).
    """
    now = timezone.now()
    subject = f"[Ninaivalaigal] {report.get_period_display()} security report {report.period_start:%Y-%m-%d}"
    rows = [
        Notification(
            report=report,
            channel=NotificationChannel.EMAIL,
            destination=address[:500],
            event_type="report.ready",
            subject=subject,
            payload={"report_id": report.pk},
            next_attempt_at=now,
            created_at=now,
        )
        for address in report_email_recipients()
    ]
    with transaction.atomic():
        created = Notification.objects.bulk_create(rows)
        schedule_delivery_after_commit()
    return created


def _alert_subject(alert: Alert, event_type: str) -> str:
    verb = "escalated" if event_type == "alert.escalated" else "alert"
    text = f"[Ninaivalaigal] {alert.get_severity_display().upper()} {verb}: {alert.detector} - {alert.subject}"
    return " ".join(text.split())[:255]  # one line: no header injection through a subject


def schedule_delivery_after_commit() -> None:
    """After commit, ask a worker to deliver now; if the broker is down the beat sweep will."""

    def deliver_now() -> None:
        from monitoring.tasks import notifications_deliver

        hand_off(notifications_deliver)  # the outbox keeps the rows; the scheduled run delivers them

    transaction.on_commit(deliver_now, robust=True)


# --- delivering ------------------------------------------------------------------------------
def _claim(now: datetime.datetime, limit: int) -> list[Notification]:
    timeout = conf.seconds("MONITORING_NOTIFICATION_CLAIM_TIMEOUT_SECONDS")
    return claim_due(Notification, now=now, limit=limit, claim_timeout=timeout)


def _rate_limited_until(destination: str, now: datetime.datetime) -> datetime.datetime | None:
    window = conf.seconds("MONITORING_NOTIFICATION_RATE_WINDOW_SECONDS")
    limit = conf.get("MONITORING_NOTIFICATION_RATE_LIMIT")
    recent = list(
        Notification.objects.filter(destination=destination, sent_at__gt=now - window)
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)[:limit]
    )
    if len(recent) < limit:
        return None
    return min(recent) + window


def backoff(attempts: int) -> datetime.timedelta:
    """Delay before retry number ``attempts`` (1, 2, ...): base x 2^(attempts-1), capped."""
    return retry_backoff(
        attempts,
        base=conf.get("MONITORING_NOTIFICATION_RETRY_BASE_SECONDS"),
        cap=conf.get("MONITORING_NOTIFICATION_RETRY_MAX_SECONDS"),
    )


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: the signed body is never re-sent to another address."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class DeliveryError(Exception):
    """A destination refused or could not take a notification; ``str()`` is safe to store."""


def _send_webhook(notification: Notification) -> None:
    url = notification.destination
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryError("webhook URL must be http(s)")
    if not conf.get("MONITORING_WEBHOOK_SECRET"):
        raise DeliveryError("MONITORING_WEBHOOK_SECRET is not set")
    body = json.dumps(notification.payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            webhooks.HEADER_EVENT: notification.event_type,
            webhooks.HEADER_DELIVERY: str(notification.uuid),
            webhooks.HEADER_TIMESTAMP: timestamp,
            webhooks.HEADER_SIGNATURE: webhooks.sign(
                secret=conf.get("MONITORING_WEBHOOK_SECRET"), timestamp=timestamp, body=body
            ),
        },
    )
    opener = urllib.request.build_opener(_RefuseRedirects)
    try:
        with opener.open(request, timeout=conf.get("MONITORING_WEBHOOK_TIMEOUT_SECONDS")) as response:
            if not 200 <= response.status < 300:
                raise DeliveryError(f"HTTP {response.status}")
    except urllib.error.HTTPError as error:
        raise DeliveryError(f"HTTP {error.code}") from None


def _send_email(notification: Notification) -> None:
    mail_connection = get_connection(timeout=EMAIL_TIMEOUT_SECONDS)
    if notification.report_id is not None:
        report = notification.report
        message = EmailMultiAlternatives(
            notification.subject,
            report.text,
            settings.DEFAULT_FROM_EMAIL,
            [notification.destination],
            connection=mail_connection,
        )
        message.attach_alternative(report.html, "text/html")
        message.attach(f"security-report-{report.period}-{report.period_start:%Y-%m-%d}.csv", report.csv, "text/csv")
    else:
        alert = notification.payload.get("alert", {})
        # A mail client follows absolute links only: the console path on the site's address.
        console_url = absolute_url(alert["console_path"]) if alert.get("console_path") else ""
        context = {"payload": notification.payload, "alert": alert, "console_url": console_url}
        message = EmailMultiAlternatives(
            notification.subject,
            render_to_string("monitoring/email/alert.txt", context),
            settings.DEFAULT_FROM_EMAIL,
            [notification.destination],
            connection=mail_connection,
        )
        message.attach_alternative(render_to_string("monitoring/email/alert.html", context), "text/html")
    message.send(fail_silently=False)


SENDERS = {NotificationChannel.EMAIL: _send_email, NotificationChannel.WEBHOOK: _send_webhook}


def notifications_deliver_due(*, limit: int = 100) -> dict[str, int]:
    """Deliver every due notification once; return counts of sent, failed (will retry) and deferred.

    Safe to run concurrently and twice: rows are claimed before sending. Permission: none.
    """
    now = timezone.now()
    results = {"sent": 0, "failed": 0, "deferred": 0}
    for notification in _claim(now, limit):
        wait_until = _rate_limited_until(notification.destination, timezone.now())
        if wait_until is not None:
            Notification.objects.filter(pk=notification.pk).update(
                status=NotificationStatus.PENDING, next_attempt_at=wait_until, claimed_at=None
            )
            results["deferred"] += 1
            continue
        attempts = notification.attempts + 1
        try:
            SENDERS[notification.channel](notification)
        except Exception as error:  # every failure is retried; only a safe label is stored
            reason = str(error) if isinstance(error, DeliveryError) else type(error).__name__
            Notification.objects.filter(pk=notification.pk).update(
                status=NotificationStatus.PENDING,
                attempts=attempts,
                next_attempt_at=timezone.now() + backoff(attempts),
                claimed_at=None,
                last_error=reason[:200],
            )
            logger.warning(
                "notification %s to %s failed (attempt %d): %s", notification.pk, notification.channel, attempts, reason
            )
            results["failed"] += 1
        else:
            Notification.objects.filter(pk=notification.pk).update(
                status=NotificationStatus.SENT,
                attempts=attempts,
                sent_at=timezone.now(),
                claimed_at=None,
                last_error="",
            )
            results["sent"] += 1
    return results
