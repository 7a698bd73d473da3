"""End to end with a real Celery worker on a real Redis: login endpoint → audit → detection → alert → webhook.

The test process plays the web server (Django's test client against the real login view); a
``celery worker`` process started here runs detection and delivery against the same database.
"""

from __future__ import annotations

import pytest
from celery import Celery
from django.contrib.auth import get_user_model

from audit.actions import Action
from audit.models import AuditEvent
from monitoring.models import Alert, Notification, NotificationStatus
from tests.monitoring.receivers import WebhookReceiver
from tests.monitoring.worker import publishing_to, wait_for, wait_until_drained
from tests.support.servers import celery_worker, free_port, redis_server

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

SECRET = "end-to-end-webhook-secret-0123456789abcdef"


def _worker_env(receiver: WebhookReceiver, **extra) -> dict:
    return {
        "MONITORING_WEBHOOK_URL": receiver.url,
        "MONITORING_WEBHOOK_SECRET": SECRET,
        "MONITORING_NOTIFICATION_ROUTES": '{"critical": ["webhook"], "high": ["webhook"], "medium": [], "low": []}',
        **extra,
    }


def test_ten_failed_logins_raise_one_brute_force_alert_and_a_signed_webhook(client):
    get_user_model().objects.create_user(username="alice", email="alice@example.org", password="x" * 20)
    receiver = WebhookReceiver(secret=SECRET, port=free_port()).start()
    try:
        with redis_server() as url, publishing_to(url), celery_worker(
            broker_url=url, result_backend=url, extra_env=_worker_env(receiver)
        ):
            for _ in range(10):
                response = client.post(
                    "/accounts/login/",
                    {"username": "alice", "password": "not-the-password"},
                    REMOTE_ADDR="203.0.113.66",
                )
                assert response.status_code in (200, 429), response.status_code
            alert = wait_for(lambda: Alert.objects.filter(detector="brute_force").first())
            wait_until_drained(url)
            wait_for(lambda: receiver.verified)
    finally:
        receiver.stop()

    failures = list(AuditEvent.objects.filter(action=Action.LOGIN_FAILED.value).order_by("timestamp", "id"))
    assert len(failures) == 10 and {event.subject_username for event in failures} == {"alice"}
    assert {event.client_ip for event in failures} == {"203.0.113.66"}
    assert Alert.objects.filter(detector="brute_force").count() == 1
    alert.refresh_from_db()
    assert alert.subject == "alice" and alert.count == 1
    assert alert.triggered_at == failures[-1].timestamp  # the tenth failure crossed the threshold
    assert sorted(alert.evidence["event_ids"]) == sorted(event.pk for event in failures)
    # Detection time: alert created minus the triggering event, measured by the worker.
    assert alert.detection_seconds == pytest.approx((alert.created_at - failures[-1].timestamp).total_seconds())
    assert 0 < alert.detection_seconds < 30
    assert AuditEvent.objects.filter(action=Action.ALERT_RAISED.value, target_id=str(alert.pk)).count() == 1
    [delivery] = [request for request in receiver.verified if request["json"]["alert"]["detector"] == "brute_force"]
    assert delivery["json"]["alert"]["subject"] == "alice"
    assert Notification.objects.get(alert=alert).status == NotificationStatus.SENT
    print(f"\nbrute force detected {alert.detection_seconds:.3f} s after the tenth failed login")


def test_a_webhook_outage_delays_delivery_through_the_worker_and_loses_nothing():
    receiver = WebhookReceiver(secret=SECRET, port=free_port())  # not started: the receiver is down
    import audit

    with redis_server() as url, publishing_to(url), celery_worker(
        broker_url=url, result_backend=url,
        extra_env=_worker_env(receiver, MONITORING_NOTIFICATION_RETRY_BASE_SECONDS="1"),
    ):
        audit.record(action=Action.SUPERUSER_GRANTED, subject="mallory")
        notification = wait_for(
            lambda: Notification.objects.filter(attempts__gte=1, status=NotificationStatus.PENDING).first()
        )
        assert notification.last_error == "URLError"
        receiver.start()
        try:
            sender = Celery("test-client", broker=url, set_as_current=False)

            def delivered() -> bool:
                # What beat does every minute: ask a worker to deliver what is due.
                sender.send_task("monitoring.notifications_deliver")
                return Notification.objects.filter(status=NotificationStatus.SENT).exists()

            wait_for(delivered, timeout=60, interval=1.0)
            sender.close()
        finally:
            receiver.stop()
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT and notification.attempts >= 2
    [delivery] = receiver.verified
    assert delivery["json"]["alert"]["detector"] == "privilege_escalation"
    assert delivery["json"]["delivery_id"] == str(notification.uuid)
