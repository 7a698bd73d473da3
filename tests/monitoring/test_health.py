"""Health probes: liveness, readiness, and a named failing part."""

from __future__ import annotations

import pytest

from config.celery import app as celery_app
from tests.support.servers import free_port


@pytest.fixture(autouse=True)
def _operator_network(request, settings):
    """In the /readyz tests the test client (127.0.0.1) is an operator: it is shown the checks' details."""
    if "readyz" in request.node.name or "readiness" in request.node.name:
        settings.MONITORING_METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_reports_database_and_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


@pytest.mark.django_db
def test_readyz_answers_503_naming_an_unreachable_broker(client):
    previous = celery_app.conf.broker_url
    celery_app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    try:
        response = client.get("/readyz")
    finally:
        celery_app.conf.broker_url = previous
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["database"]["ok"] is True
    assert "127.0.0.1" not in response.content.decode()


def test_health_endpoints_refuse_other_methods(client):
    assert client.post("/healthz").status_code == 405


# --- cache, worker heartbeat, beat ------------------------------------------------------------------
@pytest.fixture
def with_worker(settings):
    """Readiness as in production, where a separate worker and beat run the tasks."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = previous


def _fresh_beat_and_heartbeat():
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from monitoring.services.jobs import heartbeat_record

    heartbeat_record(name="worker")
    PeriodicTask.objects.filter(task="monitoring.heartbeat").update(last_run_at=timezone.now())


@pytest.mark.django_db
def test_readyz_checks_cache_worker_and_beat(client, with_worker):
    _fresh_beat_and_heartbeat()
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    checks = response.json()["checks"]
    assert set(checks) == {"database", "cache", "broker", "worker", "beat"}
    assert checks["cache"]["ok"] and checks["worker"]["age_seconds"] < 5 and checks["beat"]["ok"]


@pytest.mark.django_db
def test_readyz_names_a_stale_worker_heartbeat(client, with_worker, settings):
    import time_machine
    from django.utils import timezone

    _fresh_beat_and_heartbeat()
    settings.MONITORING_WORKER_HEARTBEAT_MAX_AGE_SECONDS = 180
    settings.MONITORING_BEAT_MAX_AGE_SECONDS = 600
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=181)):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["worker"]
    assert body["checks"]["worker"]["ok"] is False and body["checks"]["worker"]["max_age_seconds"] == 180


@pytest.mark.django_db
def test_readyz_names_a_worker_that_never_beat_and_a_beat_that_never_ran(client, with_worker):
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.update(last_run_at=None)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["beat", "worker"]
    assert body["checks"]["worker"]["error"] == "NoHeartbeat" and body["checks"]["beat"]["error"] == "NeverRan"


@pytest.mark.django_db
def test_a_check_left_out_of_the_readiness_list_reports_without_failing(client, with_worker, settings):
    settings.MONITORING_READINESS_CHECKS = ["database", "cache", "broker"]
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["worker"] == {"ok": False, "error": "NoHeartbeat", "required": False}


@pytest.mark.django_db
def test_readyz_names_a_broken_cache(client, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["cache"]


def test_the_heartbeat_job_writes_what_readiness_reads(db):
    from monitoring import tasks
    from monitoring.models import Heartbeat, JobRun

    tasks.heartbeat.delay()
    assert Heartbeat.objects.get(name="worker").beat_at is not None
    assert JobRun.objects.get(task_name="monitoring.heartbeat").outcome == "success"


# --- /metrics ----------------------------------------------------------------------------------------
TOKEN = "metrics-token-0123456789abcdef0123456789"


@pytest.mark.django_db
def test_metrics_is_off_until_configured(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_metrics_needs_the_bearer_token(client, settings):
    settings.MONITORING_METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")


@pytest.mark.django_db
def test_metrics_allows_listed_networks_by_the_audit_client_ip(client, settings):
    settings.MONITORING_METRICS_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    settings.AUDIT_TRUSTED_PROXY_COUNT = 1
    # The client-side X-Forwarded-For entry is not believed: the proxy (REMOTE_ADDR) saw 192.0.2.9.
    refused = client.get("/metrics", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="10.20.1.1, 192.0.2.9")
    assert refused.status_code == 403
    allowed = client.get("/metrics", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.9, 10.20.1.1")
    assert allowed.status_code == 200


@pytest.mark.django_db
def test_metrics_expose_requests_failed_logins_open_alerts_and_job_ages(client, settings):
    import datetime

    from django.utils import timezone

    import audit
    from monitoring.models import Alert, JobOutcome, JobRun, Severity, Tally

    settings.MONITORING_METRICS_TOKEN = TOKEN
    now = timezone.now()
    Tally.objects.create(name="http.2xx", minute=now.replace(second=0, microsecond=0), count=41)
    for _ in range(3):
        audit.record(action=audit.Action.LOGIN_FAILED, subject="alice")
    Alert.objects.create(
        detector="brute_force", severity=Severity.HIGH, dedupe_key="k", subject_type="user", subject="alice",
        summary="s", first_seen=now, last_seen=now, triggered_at=now, created_at=now, detection_seconds=1.0,
    )
    JobRun.objects.create(
        task_name="monitoring.heartbeat", task_id="x", started_at=now - datetime.timedelta(seconds=90),
        finished_at=now - datetime.timedelta(seconds=89), outcome=JobOutcome.SUCCESS,
    )
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert 'ninaivalaigal_http_requests_total{status_class="2xx"} 41.0' in text
    assert 'ninaivalaigal_failed_logins{window="1h"} 3.0' in text
    assert 'ninaivalaigal_alerts_open{severity="high"} 1.0' in text
    assert 'ninaivalaigal_alerts_open{severity="critical"} 0.0' in text
    assert 'ninaivalaigal_job_last_start_age_seconds{task="monitoring.heartbeat"} 9' in text
    assert 'ninaivalaigal_job_last_run_failed{task="monitoring.heartbeat"} 0.0' in text
    assert "ninaivalaigal_audit_last_event_age_seconds" in text


# --- request counting --------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_served_requests_are_counted_per_status_class_and_probes_are_not(client, settings):
    from monitoring.middleware import flush_request_counts
    from monitoring.models import Tally

    flush_request_counts(force=True)  # whatever earlier tests left
    Tally.objects.all().delete()
    settings.MONITORING_REQUEST_COUNT_FLUSH_SECONDS = 0
    client.get("/healthz")
    client.get("/readyz")
    client.get("/no-such-page")
    client.get("/no-such-page-either")
    assert dict(Tally.objects.values_list("name", "count")) == {"http.4xx": 2}
