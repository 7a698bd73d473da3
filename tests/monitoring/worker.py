"""Run the project's Celery app against a real broker from the test (or benchmark) process."""

from __future__ import annotations

import time
from contextlib import contextmanager

import kombu.pools
import redis

from config.celery import app as celery_app


def _reset_pools() -> None:
    """Forget the connections and the result backend built for the previous configuration.

    kombu's process-wide pool registry goes too: a closed producer pool left in it would make every
    later eager ``.delay()`` of the process fail with "Acquire on closed pool".
    """
    kombu.pools.reset()
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    celery_app._backend_cache = None
    celery_app._local.__dict__.pop("backend", None)


@contextmanager
def publishing_to(broker_url: str):
    """Make ``.delay()`` in this process publish to ``broker_url`` instead of running eagerly.

    Results are disabled for what this process publishes: the receivers never wait for them.
    """
    conf = celery_app.conf
    saved = (conf.broker_url, conf.result_backend, conf.task_always_eager, conf.broker_transport_options)
    conf.broker_url, conf.result_backend = broker_url, "disabled"
    conf.task_always_eager = False
    conf.broker_transport_options = {}
    _reset_pools()
    try:
        yield celery_app
    finally:
        _reset_pools()
        conf.broker_url, conf.result_backend, conf.task_always_eager, conf.broker_transport_options = saved


def wait_until_drained(broker_url: str, *, timeout: float = 60.0, queue: str = "celery") -> None:
    """Wait until the worker has taken and acknowledged every message (late acks: ``unacked`` empty)."""
    client = redis.Redis.from_url(broker_url)
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        busy = client.llen(queue) or client.hlen("unacked")
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.5:  # no new message for half a second
            return
        time.sleep(0.05)
    raise TimeoutError(f"the worker did not drain {queue!r} within {timeout} s")


def wait_for(predicate, *, timeout: float = 60.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")
