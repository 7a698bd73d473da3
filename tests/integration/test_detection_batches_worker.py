"""A burst of memory reads through a real Celery worker on a real Redis: few tasks, one alert (issue #17).

The test process plays the web server (``memories.services.memory_read``, what the API's memory
endpoints call); a ``celery worker`` started here runs the batch tasks against the same database.
"""

from __future__ import annotations

import time

import pytest
import redis
from django.contrib.auth import get_user_model

from audit.actions import Action
from audit.models import AuditEvent
from memories.models import Context, Memory
from memories.services import memory_read
from monitoring import conf
from monitoring.models import Alert
from monitoring.services.detection import detection_hand_off_reset
from tests.monitoring.worker import publishing_to, wait_for, wait_until_drained
from tests.support.servers import celery_worker, redis_server

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

READS = 150
FLOOR = 40  # tests/integration/detection_worker_settings.py


def _published(client: redis.Redis) -> int:
    return client.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)


def test_a_burst_of_reads_makes_one_task_per_interval_and_one_alert_through_a_real_worker():
    user = get_user_model().objects.create_user(username="hoarder", email="hoarder@example.org", password="x" * 20)
    context = Context.objects.create(name="Notes", scope="personal", owner_user=user, created_by=user)
    memory = Memory.objects.create(context=context, content="deploy notes", author=user, source="cli")
    detection_hand_off_reset()
    settings_module = {"DJANGO_SETTINGS_MODULE": "tests.integration.detection_worker_settings"}
    with (
        redis_server() as url,
        publishing_to(url),
        celery_worker(broker_url=url, result_backend=url, extra_env=settings_module),
    ):
        client = redis.Redis.from_url(url)
        before = _published(client)
        started = time.monotonic()
        for _ in range(READS):
            memory_read(actor=user, memory_id=memory.pk)
        elapsed = time.monotonic() - started
        published = _published(client) - before
        alert = wait_for(lambda: Alert.objects.filter(detector="bulk_read").first(), timeout=90)
        wait_until_drained(url)
    detection_hand_off_reset()

    # One task per interval (this process is the only web process), not one per read.
    interval = conf.get("MONITORING_DETECTION_BATCH_SECONDS")
    # A task at the first read and at most one per interval after it, allowing one at each edge.
    assert 1 <= published <= elapsed / interval + 2 and published < READS / 10
    reads = list(AuditEvent.objects.filter(action=Action.MEMORY_READ.value).order_by("timestamp", "id"))
    assert len(reads) == READS
    assert Alert.objects.filter(detector="bulk_read").count() == 1
    alert.refresh_from_db()
    assert alert.subject == "hoarder"
    assert alert.triggered_at == reads[FLOOR - 1].timestamp  # the 40th read reached the floor
    assert alert.evidence["counts"]["volume"] == READS and alert.last_event_id == reads[-1].pk  # every read judged
    assert alert.count <= published  # at most one trigger per batch
    assert 0 < alert.detection_seconds < 30
    print(
        f"\n{READS} reads in {elapsed:.2f} s: {published} batch tasks; detected after {alert.detection_seconds:.3f} s"
    )
