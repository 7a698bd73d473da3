"""One request id follows the work end to end: from the request into a real worker's events."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

from audit.actions import Action
from audit.models import AuditEvent
from audit.tasks import audit_publish_head
from config.celery import app as celery_app
from core import context as request_context
from tests.support.servers import celery_worker, redis_server

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@contextmanager
def publishing_to(url: str):
    """Point the project's own Celery app at a real broker for the duration of the block."""
    saved = {key: celery_app.conf[key] for key in ("broker_url", "result_backend", "task_always_eager")}
    celery_app.conf.update(broker_url=url, result_backend=url, task_always_eager=False)
    _forget_connections()
    try:
        yield
    finally:
        celery_app.conf.update(saved)
        _forget_connections()


def _forget_connections() -> None:
    """Drop the app's cached connection pools and result backend (what Celery does after a fork)."""
    celery_app._after_fork()
    celery_app._backend_cache = None
    celery_app._local.__dict__.pop("backend", None)


def test_a_task_started_in_a_request_records_events_with_that_request_id(settings, tmp_path):
    settings.AUDIT_DIR = str(tmp_path / "audit")
    with redis_server() as url, publishing_to(url), celery_worker(
        broker_url=url, result_backend=url, extra_env={"AUDIT_DIR": str(tmp_path / "audit")}
    ):
        with request_context.bound(request_id="req-from-the-web-0001", client_ip="203.0.113.50"):
            result = audit_publish_head.delay()
        assert result.get(timeout=60)["ok"] is True
        deadline = time.monotonic() + 30
        event = None
        while event is None and time.monotonic() < deadline:
            event = AuditEvent.objects.filter(action=Action.AUDIT_HEAD_PUBLISHED).first()
            time.sleep(0.2)
    assert event is not None
    assert event.request_id == "req-from-the-web-0001"
    assert event.client_ip == "203.0.113.50"
    assert event.user_agent == "celery:audit.tasks.audit_publish_head"


def test_a_task_started_outside_any_request_gets_its_own_request_id(tmp_path, settings):
    settings.AUDIT_DIR = str(tmp_path / "audit")
    with redis_server() as url, publishing_to(url), celery_worker(
        broker_url=url, result_backend=url, extra_env={"AUDIT_DIR": str(tmp_path / "audit")}
    ):
        assert audit_publish_head.delay().get(timeout=60)["ok"] is True
    event = AuditEvent.objects.get(action=Action.AUDIT_HEAD_PUBLISHED)
    assert len(event.request_id) == 32
