"""core.handoff: a broker outage neither breaks nor slows the request that hands work to Celery."""

from __future__ import annotations

import logging

from celery import shared_task

from core import handoff
from tests.monitoring.worker import publishing_to
from tests.support.servers import free_port


@shared_task(name="tests.core.handoff_probe")
def handoff_probe(value: int) -> int:
    if value < 0:
        raise ValueError("negative")
    return value


class Counting:
    """The real task, counting how often a publish was attempted."""

    name = handoff_probe.name

    def __init__(self) -> None:
        self.attempts = 0

    def delay(self, *args, **kwargs):
        self.attempts += 1
        return handoff_probe.delay(*args, **kwargs)


def test_an_unreachable_broker_is_logged_once_and_not_tried_again_during_the_pause(caplog):
    task = Counting()
    with publishing_to(f"redis://127.0.0.1:{free_port()}/0"), caplog.at_level(logging.WARNING, "core.handoff"):
        assert handoff.hand_off(task, 1) is False
        assert handoff.hand_off(task, 2) is False
        assert handoff.hand_off(task, 3) is False
    assert task.attempts == 1  # the second and third requests did not wait for the broker
    [line] = [record.getMessage() for record in caplog.records if record.name == "core.handoff"]
    assert "could not queue tests.core.handoff_probe (OperationalError)" in line and "30 s" in line


def test_after_the_pause_or_a_resume_the_broker_is_tried_again(settings):
    task = Counting()
    with publishing_to(f"redis://127.0.0.1:{free_port()}/0"):
        assert handoff.hand_off(task, 1) is False
        handoff.resume()
        assert handoff.hand_off(task, 2) is False
        settings.CORE_HANDOFF_PAUSE_SECONDS = 0
        handoff.resume()
        handoff.hand_off(task, 3)
        assert handoff.hand_off(task, 4) is False
    assert task.attempts == 4


def test_a_reachable_broker_takes_the_task(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    task = Counting()
    assert handoff.hand_off(task, 5) is True
    assert handoff.hand_off(task, 6) is True
    assert task.attempts == 2


def test_a_failing_eager_task_is_logged_and_does_not_pause_publishing(caplog):
    task = Counting()
    with caplog.at_level(logging.WARNING, "core.handoff"):
        assert handoff.hand_off(task, -1) is False
    assert handoff.hand_off(task, 1) is True
    assert task.attempts == 2
    mine = [record.getMessage() for record in caplog.records if record.name == "core.handoff"]
    assert mine == ["could not run tests.core.handoff_probe (ValueError)"]
