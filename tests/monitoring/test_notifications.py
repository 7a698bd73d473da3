"""Notifications: routing, the transactional outbox, the signed webhook and email, against real local servers."""

from __future__ import annotations

import datetime
import email
import json

import pytest
import time_machine
from django.core import mail
from django.db import transaction

from monitoring import webhooks
from monitoring.detectors.base import Finding
from monitoring.models import Alert, Notification, NotificationStatus, Severity
from monitoring.services.alerts import alert_record_finding
from monitoring.services.notifications import notifications_deliver_due
from tests.monitoring.conftest import NOW
from tests.monitoring.receivers import SMTPServer, WebhookReceiver
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db

SECRET = "test-webhook-secret-0123456789abcdef-0123456789"
MINUTE = datetime.timedelta(minutes=1)


def raise_alert(*, severity=Severity.HIGH, key="brute_force:subject_username:alice", event_id=10) -> Alert:
    finding = Finding(
        detector="brute_force",
        severity=severity,
        subject_type="user",
        subject="alice",
        summary="10 failed logins against account alice within 900 s (threshold 10)",
        dedupe_key=key,
        counts={"count": 10},
        first_seen=NOW - 5 * MINUTE,
        last_seen=NOW - MINUTE,
        triggered_at=NOW - MINUTE,
        event_ids=[event_id],
        last_event_id=event_id,
    )
    alert, outcome = alert_record_finding(finding=finding)
    assert outcome == "created"
    return alert


@pytest.fixture
def webhook(settings):
    receiver = WebhookReceiver(secret=SECRET, port=free_port())
    settings.MONITORING_WEBHOOK_URL = receiver.url
    settings.MONITORING_WEBHOOK_SECRET = SECRET
    return receiver


# --- the signature ---------------------------------------------------------------------------------
def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    import hashlib
    import hmac

    body = b'{"type":"alert.raised"}'
    signature = webhooks.sign(secret=SECRET, timestamp=1700000000, body=body)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature == f"v1={expected}"
    verify = webhooks.verify_signature
    assert verify(secret=SECRET, timestamp="1700000000", body=body, signature=signature, now=1700000100)
    assert not verify(secret=SECRET, timestamp="1700000000", body=body + b" ", signature=signature, now=1700000100)
    assert not verify(secret="another-secret", timestamp="1700000000", body=body, signature=signature, now=1700000100)
    assert not verify(secret=SECRET, timestamp="1700000000", body=body, signature=signature, now=1700000301)
    assert not verify(secret=SECRET, timestamp="1700000001", body=body, signature=signature, now=1700000100)
    assert not verify(secret=SECRET, timestamp="soon", body=body, signature=signature)
    assert not verify(secret=SECRET, timestamp=None, body=body, signature=None)


# --- routing and the outbox ------------------------------------------------------------------------
def test_routes_by_severity(settings, security_admin, webhook, now):
    settings.MONITORING_NOTIFICATION_ROUTES = {
        "critical": ["email", "webhook"], "high": ["email", "webhook"], "medium": ["webhook"], "low": [],
    }
    high = raise_alert(severity=Severity.HIGH, key="a")
    medium = raise_alert(severity=Severity.MEDIUM, key="b")
    low = raise_alert(severity=Severity.LOW, key="c")
    assert sorted(Notification.objects.filter(alert=high).values_list("channel", "destination")) == [
        ("email", "sec-admin@example.org"), ("webhook", webhook.url),
    ]
    assert list(Notification.objects.filter(alert=medium).values_list("channel", flat=True)) == ["webhook"]
    assert not Notification.objects.filter(alert=low).exists()


def test_alert_emails_setting_replaces_the_superusers(settings, security_admin, now):
    settings.MONITORING_ALERT_EMAILS = ["soc@example.org", "oncall@example.org"]
    alert = raise_alert()
    assert sorted(Notification.objects.filter(alert=alert).values_list("destination", flat=True)) == [
        "oncall@example.org", "soc@example.org",
    ]


def test_notifications_are_written_with_the_alert_and_roll_back_with_it(security_admin, now):
    with pytest.raises(RuntimeError), transaction.atomic():
        raise_alert()
        assert Notification.objects.count() == 1
        raise RuntimeError("the transaction fails after the alert")
    assert not Alert.objects.exists() and not Notification.objects.exists()


# --- delivery to real local servers ----------------------------------------------------------------
def test_webhook_delivered_signed_to_a_real_receiver(webhook, now):
    webhook.start()
    try:
        alert = raise_alert()
        assert notifications_deliver_due() == {"sent": 1, "failed": 0, "deferred": 0}
    finally:
        webhook.stop()
    [request] = webhook.received
    assert request["verified"], "the receiver could not verify the signature"
    notification = Notification.objects.get(alert=alert)
    assert notification.status == NotificationStatus.SENT and notification.attempts == 1
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers[webhooks.HEADER_EVENT] == "alert.raised"
    assert headers[webhooks.HEADER_DELIVERY] == str(notification.uuid)
    assert headers[webhooks.HEADER_TIMESTAMP] == str(int(NOW.timestamp()))
    body = request["json"]
    assert body["type"] == "alert.raised" and body["delivery_id"] == str(notification.uuid)
    assert body["alert"]["detector"] == "brute_force" and body["alert"]["severity"] == "high"
    assert body["alert"]["subject"] == "alice" and body["alert"]["evidence"]["event_ids"] == [10]
    assert body["alert"]["detection_seconds"] == 60.0


def test_email_delivered_through_a_real_smtp_server(settings, security_admin, now):
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    with SMTPServer(port=port) as smtp:
        raise_alert(severity=Severity.CRITICAL)
        assert notifications_deliver_due()["sent"] == 1
    [envelope] = smtp.messages
    assert envelope.rcpt_tos == ["sec-admin@example.org"]
    message = email.message_from_bytes(envelope.content)
    assert message["Subject"] == "[Ninaivalaigal] CRITICAL alert: brute_force - alice"
    parts = {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.walk()
             if not part.is_multipart()}
    assert "10 failed logins against account alice" in parts["text/plain"]
    assert "<html" in parts["text/html"] and "alice" in parts["text/html"]


def test_receiver_down_loses_nothing_and_delivery_succeeds_once_it_is_back(webhook, settings):
    settings.MONITORING_NOTIFICATION_RETRY_BASE_SECONDS = 30
    with time_machine.travel(NOW, tick=False):
        alert = raise_alert()
        assert notifications_deliver_due() == {"sent": 0, "failed": 1, "deferred": 0}  # nobody listens
        notification = Notification.objects.get(alert=alert)
        assert notification.status == NotificationStatus.PENDING and notification.attempts == 1
        assert notification.next_attempt_at == NOW + datetime.timedelta(seconds=30)
        assert notification.last_error == "URLError"
    with time_machine.travel(NOW + datetime.timedelta(seconds=31), tick=False):
        assert notifications_deliver_due()["failed"] == 1  # still down: backoff doubles
        notification.refresh_from_db()
        assert notification.attempts == 2
        assert notification.next_attempt_at == NOW + datetime.timedelta(seconds=91)
    webhook.start()
    try:
        with time_machine.travel(NOW + datetime.timedelta(seconds=60), tick=False):
            assert notifications_deliver_due() == {"sent": 0, "failed": 0, "deferred": 0}  # not due yet
        with time_machine.travel(NOW + datetime.timedelta(seconds=92), tick=False):
            assert notifications_deliver_due() == {"sent": 1, "failed": 0, "deferred": 0}
    finally:
        webhook.stop()
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT and notification.attempts == 3
    [request] = webhook.verified
    assert request["headers"][webhooks.HEADER_DELIVERY] == str(notification.uuid)


def test_a_refusing_receiver_is_retried(webhook, now):
    webhook.status_override = 503
    webhook.start()
    try:
        raise_alert()
        assert notifications_deliver_due()["failed"] == 1
    finally:
        webhook.stop()
    assert Notification.objects.get().last_error == "HTTP 503"


def test_a_storm_to_one_destination_is_delayed_not_dropped(settings, webhook):
    settings.MONITORING_NOTIFICATION_RATE_LIMIT = 2
    settings.MONITORING_NOTIFICATION_RATE_WINDOW_SECONDS = 600
    webhook.start()
    try:
        with time_machine.travel(NOW, tick=False):
            for index in range(3):
                raise_alert(key=f"storm-{index}", event_id=index + 1)
            assert notifications_deliver_due() == {"sent": 2, "failed": 0, "deferred": 1}
            waiting = Notification.objects.get(status=NotificationStatus.PENDING)
            assert waiting.next_attempt_at == NOW + datetime.timedelta(seconds=600) and waiting.attempts == 0
        with time_machine.travel(NOW + datetime.timedelta(seconds=601), tick=False):
            assert notifications_deliver_due()["sent"] == 1
    finally:
        webhook.stop()
    assert len(webhook.verified) == 3


def test_delivery_after_commit_through_the_task(security_admin, django_capture_on_commit_callbacks, now):
    with django_capture_on_commit_callbacks(execute=True):
        raise_alert()
    assert Notification.objects.get().status == NotificationStatus.SENT  # the eager task delivered it
    [message] = mail.outbox
    assert message.to == ["sec-admin@example.org"] and "brute_force" in message.subject
    assert json.loads(json.dumps(Notification.objects.get().payload))["alert"]["subject"] == "alice"
