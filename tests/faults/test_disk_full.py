"""The disk of the embedded default (SQLite) full or read-only: a clear answer, nothing half-written.

SQLite's ``max_page_count`` caps the database file at its current size: a write that must grow
it meets SQLite's own "database or disk is full" (SQLITE_FULL), exactly as on a full disk (small
writes may still fit in the file's free space, as on a real disk). ``query_only`` refuses every
write, as a disk remounted read-only after errors does.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection

from audit.models import AuditEvent
from audit.services import audit_chain_seal
from audit.verification import verify_chain
from memories.models import Memory
from tests.memories.api_helpers import assert_error, url

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def disk_full():
    if connection.vendor != "sqlite":
        pytest.skip("the embedded default is SQLite; PostgreSQL's own disk handling is not ours to test")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM")  # no free pages left inside the file for a write to reuse
        cursor.execute("PRAGMA page_count")
        (pages,) = cursor.fetchone()
        cursor.execute(f"PRAGMA max_page_count = {pages}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA max_page_count = 1073741823")


def test_a_memory_written_on_a_full_disk_gets_a_clear_answer_and_nothing_half_written(world, client_for):
    client = client_for(world.owner)
    memories, events = Memory.objects.count(), AuditEvent.objects.count()
    big = "x" * 60_000  # more than the free pages of the file: the write must grow it
    with disk_full():
        response = client.post(url("memory-list"), {"context": world.team_context.pk, "content": big}, format="json")
    error = assert_error(response, 503, "unavailable")
    assert "Try again later" in error["message"] and response["Retry-After"] == "30"
    assert Memory.objects.count() == memories and AuditEvent.objects.count() == events

    response = client.post(url("memory-list"), {"context": world.team_context.pk, "content": big}, format="json")
    assert response.status_code == 201  # space is back: the same request works
    audit_chain_seal()
    assert verify_chain().ok


@contextmanager
def disk_read_only():
    """What a failing disk often becomes: remounted read-only (SQLite's ``query_only``: every write refused)."""
    if connection.vendor != "sqlite":
        pytest.skip("the embedded default is SQLite; PostgreSQL's own disk handling is not ours to test")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA query_only = ON")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA query_only = OFF")


def test_a_sign_in_on_a_read_only_disk_is_a_try_again_page_and_counts_nothing_half(world, client):
    from accounts.models import FailureCounter

    with disk_read_only():
        response = client.post(
            "/accounts/login/", {"username": "olga.owner", "password": "wrong"}, REMOTE_ADDR="192.0.2.4"
        )
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert b"Try again shortly" in response.content and b"Traceback" not in response.content
    assert not FailureCounter.objects.exists()
    response = client.post("/accounts/login/", {"username": "olga.owner", "password": "wrong"}, REMOTE_ADDR="192.0.2.4")
    assert response.status_code == 200  # space is back: counted as usual
    assert FailureCounter.objects.filter(username="olga.owner", failure_count=1).exists()
