"""The transfer offers' expiry job runs on a real Celery worker over Redis, as beat sends it."""

from __future__ import annotations

import datetime
import time

import pytest
from celery import Celery
from django.contrib.auth import get_user_model
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import write_held_events
from memories.models import Context, ContextTransferOffer
from tests.support.servers import celery_worker, redis_server

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _wait_for_runs(count: int) -> None:
    """Wait (up to a minute) until the worker has recorded ``count`` finished runs of the job."""
    from monitoring.models import JobRun

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        finished = JobRun.objects.filter(task_name="memories.transfer_offers_expire", finished_at__isnull=False)
        if finished.count() >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker did not finish {count} runs of memories.transfer_offers_expire")


def test_a_lapsed_offer_is_expired_by_the_worker_and_recorded_once():
    users = get_user_model().objects
    sender = users.create_user(username="sam.sender", email="sam@example.test", password="x" * 20)
    recipient = users.create_user(username="vic.recipient", email="vic@example.test", password="x" * 20)
    context = Context.objects.create(name="Prompts", scope="personal", owner_user=sender, created_by=sender)
    lapsed = ContextTransferOffer.objects.create(
        context=context, sender=sender, recipient=recipient, expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    other = Context.objects.create(name="Other", scope="personal", owner_user=sender, created_by=sender)
    open_offer = ContextTransferOffer.objects.create(
        context=other, sender=sender, recipient=recipient, expires_at=timezone.now() + datetime.timedelta(days=1)
    )
    with redis_server() as url:
        client = Celery("test-client", broker=url, backend=url, set_as_current=False)
        with celery_worker(broker_url=url, result_backend=url):
            # Results are not kept (CELERY_TASK_IGNORE_RESULT): wait for the job's own record instead.
            for _run in range(2):
                client.send_task("memories.transfer_offers_expire")
            _wait_for_runs(2)
    assert ContextTransferOffer.objects.get(pk=lapsed.pk).status == "expired"
    assert ContextTransferOffer.objects.get(pk=open_offer.pk).status == "pending"
    write_held_events()
    expired = AuditEvent.objects.filter(action="context.transfer_expired")
    assert [event.context["offer_id"] for event in expired] == [lapsed.pk]
    context.refresh_from_db()
    assert context.owner_user == sender
