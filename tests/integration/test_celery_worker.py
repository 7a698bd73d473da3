"""A task through a real Celery worker process, on the embedded filesystem broker and on Redis."""

from __future__ import annotations

import json
import secrets

import pytest
from celery import Celery

from tests.support.servers import celery_worker, filesystem_broker, redis_server

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _ping_through(client: Celery) -> dict:
    token = secrets.token_hex(8)
    result = client.send_task("monitoring.health_ping", args=[token])
    answer = result.get(timeout=60)
    assert answer["token"] == token
    return answer


def test_health_ping_runs_on_a_real_worker_over_the_filesystem_broker(tmp_path):
    broker_url, options = filesystem_broker(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    backend = f"file://{results}"
    client = Celery("test-client", broker=broker_url, backend=backend, set_as_current=False)
    client.conf.broker_transport_options = options
    with celery_worker(
        broker_url=broker_url,
        result_backend=backend,
        extra_env={"CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps(options)},
    ) as worker:
        answer = _ping_through(client)
        assert worker.poll() is None, "the worker exited while answering"
    assert answer["answered_at"].endswith("+00:00")


@pytest.mark.redis
def test_health_ping_runs_on_a_real_worker_over_redis():
    with redis_server() as url:
        client = Celery("test-client", broker=url, backend=url, set_as_current=False)
        with celery_worker(broker_url=url, result_backend=url):
            _ping_through(client)
