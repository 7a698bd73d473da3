"""Tasks are fire-and-forget: publishing one never touches the Redis result backend (issue #17).

With results kept, every ``delay()`` also SUBSCRIBEd (and later UNSUBSCRIBEd) on the result
backend: two more round trips per published detection. Only the tasks whose answer someone reads
keep their result.
"""

from __future__ import annotations

import pytest
import redis

from config.celery import app as celery_app
from monitoring.tasks import detect_event, notifications_deliver
from tests.integration.test_request_id_in_tasks import publishing_to
from tests.support.servers import redis_server

pytestmark = [pytest.mark.redis]

# The tasks whose result is read: the worker probe (/readyz, tests) and the head publication's verdict.
RESULT_READ = {"monitoring.health_ping", "audit.tasks.audit_publish_head"}


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}


def test_every_project_task_ignores_its_result_but_the_ones_that_are_read():
    celery_app.loader.import_default_modules()
    project = {name: task for name, task in celery_app.tasks.items() if not name.startswith("celery.")}
    assert set(project) >= RESULT_READ
    kept = sorted(name for name, task in project.items() if not task.ignore_result)
    assert kept == sorted(RESULT_READ)


def test_publishing_a_detection_or_a_delivery_never_subscribes_to_the_result_backend():
    with redis_server() as url, publishing_to(url):
        client = redis.Redis.from_url(url)
        before = _calls(client)
        for event_id in range(5):
            detect_event.delay(event_id)
        notifications_deliver.delay()
        after = _calls(client)
        used = {name for name in after if after[name] != before.get(name, 0)}
        assert "lpush" in used  # the messages went to the broker...
        assert not used & {"subscribe", "unsubscribe", "psubscribe", "get", "mget"}, used  # ...and nothing else
        assert client.llen("celery") == 6


def test_a_task_whose_answer_is_read_still_subscribes():
    """The opposite case, so the test above can fail: health_ping keeps its result."""
    from monitoring.tasks import health_ping

    with redis_server() as url, publishing_to(url):
        client = redis.Redis.from_url(url)
        before = _calls(client)
        health_ping.delay("token")
        after = _calls(client)
        assert after.get("subscribe", 0) - before.get("subscribe", 0) == 1
