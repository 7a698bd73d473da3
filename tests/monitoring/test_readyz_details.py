"""/readyz: the status for every probe, the details only for operators (pen-test finding).

The checks and the process posture (user id, capabilities, file system, image revision) were
shown to anyone. Now they need what /metrics needs: the bearer token or an allowed network.
"""

from __future__ import annotations

import secrets

import pytest

pytestmark = pytest.mark.django_db


def test_an_anonymous_probe_gets_the_status_only(client, settings):
    settings.MONITORING_METRICS_TOKEN = ""
    settings.MONITORING_METRICS_ALLOWED_NETWORKS = []
    response = client.get("/readyz")
    assert response.status_code in (200, 503)
    body = response.json()
    assert set(body) <= {"status", "failing"} and body["status"] in {"ok", "unavailable"}
    assert "posture" not in response.content.decode() and "checks" not in body


def test_a_client_outside_the_allowed_networks_gets_no_details(client, settings):
    settings.MONITORING_METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    body = client.get("/readyz", REMOTE_ADDR="192.0.2.7").json()
    assert "checks" not in body and "posture" not in body


def test_the_metrics_token_shows_the_details(client, settings):
    token = secrets.token_urlsafe(24)
    settings.MONITORING_METRICS_TOKEN = token
    settings.MONITORING_METRICS_ALLOWED_NETWORKS = []
    assert "checks" not in client.get("/readyz").json()
    assert "checks" not in client.get("/readyz", HTTP_AUTHORIZATION="Bearer wrong-token").json()
    body = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert {"database", "broker"} <= set(body["checks"]) and "uid" in body["posture"]


def test_an_allowed_network_shows_the_details(client, settings):
    settings.MONITORING_METRICS_TOKEN = ""
    settings.MONITORING_METRICS_ALLOWED_NETWORKS = ["192.0.2.0/24"]
    body = client.get("/readyz", REMOTE_ADDR="192.0.2.7").json()
    assert body["checks"]["database"]["ok"] is True and "posture" in body


def test_an_unready_process_still_tells_every_probe_which_part_fails(client, settings):
    from config.celery import app as celery_app
    from tests.support.servers import free_port

    settings.MONITORING_METRICS_ALLOWED_NETWORKS = []
    previous = celery_app.conf.broker_url
    celery_app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    try:
        response = client.get("/readyz")
    finally:
        celery_app.conf.broker_url = previous
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failing": ["broker"]}
