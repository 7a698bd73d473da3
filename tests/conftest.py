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


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "audit_coverage(*actions): the test records each audit action named through a real entry point "
        "(checked while it runs; tests/support/audit_coverage.py)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Hold a test marked ``audit_coverage`` to its promise: each action it names was recorded while it ran."""
    marks = list(item.iter_markers("audit_coverage"))
    if not marks:
        return (yield)
    from tests.support.audit_coverage import actions_recorded_since, last_event_id

    start = last_event_id()
    result = yield
    promised = {action for mark in marks for action in mark.args}
    missing = promised - actions_recorded_since(start)
    assert not missing, f"marked audit_coverage but recorded none of: {sorted(missing)}"
    return result


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
