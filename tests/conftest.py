"""Fixtures shared by the whole suite."""

from __future__ import annotations

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
