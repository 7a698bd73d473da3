"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from rest_framework.test import APIClient


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``postgresql`` when the suite runs on SQLite."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if engine.endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (runs in the PostgreSQL half of make test)")
    for item in items:
        if "postgresql" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def api_client() -> APIClient:
    """An unauthenticated DRF test client."""
    return APIClient()


@pytest.fixture
def on_postgresql() -> bool:
    """Whether the suite runs on PostgreSQL."""
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _celery_join_flag_reset():
    """Reset Celery's process-wide "a task is running" flag after each test.

    Eager tasks set and restore it around their body; eager tasks run from many threads at once
    (the concurrency tests) can restore each other's value and leave it set, after which any
    later ``result.get()`` in the test process refuses to block.
    """
    from celery._state import _set_task_join_will_block

    yield
    _set_task_join_will_block(False)


@pytest.fixture(autouse=True)
def _handoff_resumed():
    """Each test starts trying the broker: a broker-outage test leaves no pause behind."""
    from core import handoff

    handoff.resume()
    yield
    handoff.resume()


_acquaintances = itertools.count(1)


@pytest.fixture
def acquaint():
    """Make users visible to each other with an organization of their own (``acquaint(alice, bob)``).

    The API answers about a username only to someone who shares an organization with that user
    (``memories.selectors.user_is_visible_to``); tests that name a user use this.
    """

    from memories.models import Membership, Organization, Role

    def make(*users) -> Organization:
        number = next(_acquaintances)
        organization = Organization.objects.create(name=f"Acquaintances {number}", slug=f"acquaintances-{number}")
        for user in users:
            Membership.objects.create(user=user, organization=organization, role=Role.VIEWER)
        return organization

    return make
