"""A Celery worker killed (``kill -9``) in the middle of delivering an alert: another worker delivers it.

The first worker is stopped while its webhook request is in flight (the receiver holds the first
request unanswered). The outbox row stays claimed; once the claim times out, beat's minute run on
a second worker sends it again. Delivery is at-least-once: the receiver sees the same delivery id
twice and deduplicates on it (docs/monitoring.md); there is one alert and one notification row.
"""

from __future__ import annotations

import signal

import pytest
from celery import Celery

import audit
from audit.actions import Action
from monitoring.models import Alert, Notification, NotificationStatus
from tests.monitoring.receivers import WebhookReceiver
from tests.monitoring.worker import publishing_to, wait_for
from tests.support.servers import celery_worker, free_port, redis_server

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

SECRET = "fault-webhook-secret-0123456789abcdef0123"


def test_a_delivery_cut_by_a_killed_worker_is_sent_again_by_the_next_with_the_same_delivery_id():
    receiver = WebhookReceiver(secret=SECRET, port=free_port())
    receiver.hold_first = True
    receiver.start()
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.faults.worker_settings",
        "MONITORING_WEBHOOK_URL": receiver.url,
        "MONITORING_WEBHOOK_SECRET": SECRET,
        "MONITORING_NOTIFICATION_ROUTES": '{"critical": ["webhook"], "high": ["webhook"], "medium": [], "low": []}',
    }
    try:
        with redis_server() as url, publishing_to(url):
            with celery_worker(broker_url=url, result_backend=url, extra_env=env) as first:
                audit.record(action=Action.SUPERUSER_GRANTED, subject="mallory")
                assert receiver.first_arrived.wait(timeout=90), "the first worker never sent the webhook"
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=30)
            receiver.release.set()
            notification = Notification.objects.get()
            assert notification.status == NotificationStatus.SENDING  # claimed by the dead worker

            with celery_worker(broker_url=url, result_backend=url, extra_env=env):
                beat = Celery("test-beat", broker=url, set_as_current=False)

                def delivered() -> bool:
                    beat.send_task("monitoring.notifications_deliver")  # what beat sends every minute
                    return Notification.objects.filter(status=NotificationStatus.SENT).exists()

                wait_for(delivered, timeout=90, interval=1.0)
                beat.close()
    finally:
        receiver.release.set()
        receiver.stop()

    assert Alert.objects.filter(detector="privilege_escalation").count() == 1
    notification = Notification.objects.get()
    assert notification.status == NotificationStatus.SENT
    deliveries = {request["headers"]["X-Ninaivalaigal-Delivery"] for request in receiver.verified}
    assert len(receiver.verified) == 2 and deliveries == {str(notification.uuid)}
