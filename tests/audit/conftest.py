"""Fixtures of the audit tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from audit.models import AuditEvent, AuditTombstone, ChainHead
from core import context as request_context
from tests.audit.support import public_key

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def audit_dir(settings, tmp_path):
    """Each test publishes heads and writes archives into its own folder."""
    settings.AUDIT_DIR = str(tmp_path / "audit")
    return tmp_path / "audit"


@pytest.fixture
def undeclared_context_keys(settings):
    """Let the test record context keys its action does not declare (synthetic markers, hostile input).

    The suite otherwise runs with ``AUDIT_STRICT_CONTEXT`` on, so every real producer conforms
    to ``audit/schema.py``; here an undeclared key is kept and logged once, as in production.
    """
    settings.AUDIT_STRICT_CONTEXT = False


@pytest.fixture(autouse=True)
def empty_audit_trail(request):
    """Each audit test starts from an empty chain.

    Setting up the test database records events of its own (``migrate`` records the migrations
    it applied); the tests count and number events from 1. The purge switch is the one the
    retention purge uses; the test's transaction (or flush) puts everything back.
    """
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    request.getfixturevalue("transactional_db" if marker.kwargs.get("transaction") else "db")
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('audit.allow_purge', 'on', true)")
        for model in (AuditEvent, AuditTombstone, ChainHead):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")  # noqa: S608
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('audit.allow_purge', 'off', true)")


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


@pytest.fixture
def witness(tmp_path, settings):
    """The witness of audit/witness.py, run as its own process, trusting the log's public key."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_DIR / "audit" / "witness.py"),
            "--key",
            public_key(),
            "--state",
            str(tmp_path / "witness"),
            "--port",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()
        assert "listening on" in line, line
        url = f"http://127.0.0.1:{line.rsplit(':', 1)[1].strip()}"
        settings.AUDIT_CHECKPOINT_SINKS = ["file", "witness"]
        settings.AUDIT_WITNESS_URL = url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
