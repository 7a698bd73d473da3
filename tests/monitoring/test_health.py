"""Health probes: liveness, readiness, and a named failing part."""

from __future__ import annotations

import pytest

from config.celery import app as celery_app
from tests.support.servers import free_port


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
