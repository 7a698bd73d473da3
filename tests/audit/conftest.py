"""Fixtures of the audit tests."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from audit import context as request_context


@pytest.fixture(autouse=True)
def audit_dir(settings, tmp_path):
    """Each test publishes heads and writes archives into its own folder."""
    settings.AUDIT_DIR = str(tmp_path / "audit")
    return tmp_path / "audit"


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user(username="alice", email="alice@example.com", password="x" * 20)


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(
        username="root-admin", email="admin@example.com", password="y" * 20, is_staff=True
    )


@pytest.fixture
def bound_request():
    """A bound request context, as the middleware makes it."""
    with request_context.bound(
        request_id="req-0123456789", client_ip="203.0.113.7", user_agent="pytest-agent/1.0"
    ) as bound:
        yield bound
