"""Hand work to Celery without letting a broker outage break or slow the request that asks.

Every producer of background work here keeps what the work needs in the database first (the audit
event, an outbox row) and has a scheduled run that catches up, so a publish that fails loses
nothing. ``hand_off`` logs such a failure and, for ``CORE_HANDOFF_PAUSE_SECONDS`` after it, does
not try again in this process: during an outage each request would otherwise wait for the broker
client's connection retries (about a second per publish).
"""

from __future__ import annotations

import logging
import threading
import time

from kombu.exceptions import OperationalError

from core import conf

logger = logging.getLogger("core.handoff")

_lock = threading.Lock()
_paused_until = 0.0  # time.monotonic() before which publishing is skipped


def hand_off(task, *args, **kwargs) -> bool:
    """``task.delay(*args, **kwargs)``; False if the broker could not take it (logged, not raised)."""
    return _publish(task, args, kwargs, countdown=None)


def hand_off_later(task, countdown: float, *args, **kwargs) -> bool:
    """``hand_off`` of a task that a worker runs ``countdown`` seconds from now (at the earliest)."""
    return _publish(task, args, kwargs, countdown=countdown)


def _publish(task, args: tuple, kwargs: dict, *, countdown: float | None) -> bool:
    global _paused_until
    if time.monotonic() < _paused_until:
        return False
    try:
        if countdown is None:
            task.delay(*args, **kwargs)
        else:
            task.apply_async(args=args, kwargs=kwargs, countdown=countdown)
    except Exception as error:
        if not isinstance(error, (OperationalError, OSError)):  # not the broker: an eager task that failed
            logger.warning("could not run %s (%s)", getattr(task, "name", task), type(error).__name__)
            return False
        pause = conf.get("CORE_HANDOFF_PAUSE_SECONDS")
        with _lock:
            _paused_until = time.monotonic() + pause
        logger.warning(
            "could not queue %s (%s); the scheduled run will catch up; not trying again for %s s",
            getattr(task, "name", task), type(error).__name__, pause,
        )
        return False
    return True


def resume() -> None:
    """Try the broker again on the next hand-off (tests; an operator's shell after an outage)."""
    global _paused_until
    with _lock:
        _paused_until = 0.0
