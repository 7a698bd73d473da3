"""The broker (Redis) down during a burst of security events: nothing is lost, detection catches up.

The test process plays the web server (Django's test client against the real login view), handing
events to Celery on a real Redis as production does; the Redis server is killed before the burst
and started again, empty, afterwards. A real ``celery worker`` then runs the scheduled sweep.
"""

from __future__ import annotations

import time

import pytest
from celery import Celery
from django.contrib.auth import get_user_model

from accounts.models import FailureCounter
from audit.actions import Action
from audit.models import AuditEvent
from audit.services import audit_chain_seal
from audit.verification import verify_chain
from monitoring.models import Alert
from tests.faults.servers import RestartableRedis
from tests.monitoring.worker import publishing_to, wait_for, wait_until_drained
from tests.support.servers import celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ATTACKER_IP = "203.0.113.77"


def _fail_logins(client, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        response = client.post(
            "/accounts/login/", {"username": "alice", "password": "not-the-password"}, REMOTE_ADDR=ATTACKER_IP
        )
        statuses.append(response.status_code)
    return statuses


def test_a_burst_while_the_broker_is_down_is_recorded_counted_and_detected_once_it_returns(client):
    get_user_model().objects.create_user(username="alice", email="alice@example.org", password="x" * 20)
    with RestartableRedis() as redis, publishing_to(redis.url):
        redis.stop()
        started = time.monotonic()
        statuses = _fail_logins(client, 10)
        elapsed = time.monotonic() - started
        # Every attempt is answered as usual: the form again, then "too many attempts" once locked.
        assert set(statuses) <= {200, 429} and statuses[0] == 200, statuses
        # Nothing lost: each failure is in the audit trail, and the lockout counted every one.
        failures = AuditEvent.objects.filter(action=Action.LOGIN_FAILED.value, subject_username="alice")
        assert failures.count() == 10
        assert AuditEvent.objects.filter(action=Action.ACCOUNT_LOCKED.value).exists()
        assert FailureCounter.objects.filter(username="alice", lock_count__gte=1).exists()
        assert not Alert.objects.filter(detector="brute_force").exists()  # nobody could detect yet

        redis.start()  # back, and empty: the queued hand-offs were never made
        with celery_worker(broker_url=redis.url, result_backend=redis.url):
            sender = Celery("test-beat", broker=redis.url, set_as_current=False)
            sender.send_task("monitoring.detection_sweep")  # what beat sends every minute
            alert = wait_for(lambda: Alert.objects.filter(detector="brute_force").first(), timeout=90)
            sender.send_task("monitoring.detection_sweep")  # a second sweep must not raise it again
            wait_until_drained(redis.url)
            sender.close()

    assert Alert.objects.filter(detector="brute_force").count() == 1
    assert alert.subject in {"alice", ATTACKER_IP}
    audit_chain_seal()
    report = verify_chain()
    assert report.ok and report.unsealed == 0, report.summary()
    print(f"\n10 failed logins with the broker down answered in {elapsed:.2f} s in all")
