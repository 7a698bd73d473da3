"""Many processes recording at once: nothing lost, nothing duplicated, nothing misordered, and
the chain verifies (issue 3: "the concurrent-writer test on PostgreSQL loses nothing")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict

import pytest
from django.conf import settings

from audit.models import AuditEvent, ChainHead
from audit.sealing import seal_pending
from audit.verification import verify_chain
from tests.support import servers

WRITERS = 8
EVENTS_PER_WRITER = 150


def _committed_per_writer() -> int:
    """What one writer commits: every fifth transaction rolls back, every fourth records two events."""
    return sum(2 if number % 4 == 0 else 1 for number in range(EVENTS_PER_WRITER) if number % 5 != 4)


def _run_writers(seal_mode: str) -> int:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": servers.test_database_url(),
        "DATABASE_POOL": "false",
        "TEST_VAR_DIR": str(settings.VAR_DIR),
        "AUDIT_SEAL_MODE": seal_mode,
        "AUDIT_CHAIN_KEY": settings.AUDIT_CHAIN_KEY,
        "ENCRYPTION_AUDIT_CHAIN_KEYS": settings.ENCRYPTION_AUDIT_CHAIN_KEYS,
    }
    start_at = time.time() + 3.0  # after every interpreter has started and imported Django
    processes = [
        subprocess.Popen(
            [
                sys.executable, "-m", "tests.audit.concurrent_writer",
                f"w{number}", str(EVENTS_PER_WRITER), str(start_at),
            ],
            cwd=servers.PROJECT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(WRITERS)
    ]
    committed = 0
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        committed += int(out.strip().splitlines()[-1])
    return committed


def _assert_chain_complete(committed: int) -> None:
    seal_pending()  # whatever a writer left (none expected with inline or background sealing)
    events = list(AuditEvent.objects.order_by("sequence").values("sequence", "uuid", "context"))
    assert len(events) == committed, "events lost or rolled-back events kept"
    assert AuditEvent.objects.unsealed().count() == 0
    assert [event["sequence"] for event in events] == list(range(1, committed + 1)), "gaps or duplicates"
    assert len({event["uuid"] for event in events}) == committed
    assert all(event["context"]["n"] % 5 != 4 for event in events), "a rolled-back event was kept"
    # Each writer committed its transactions one after another: the chain keeps that order.
    seen = defaultdict(list)
    for event in events:
        seen[event["context"]["writer"]].append((event["context"]["n"], event["context"]["part"]))
    for writer, order in seen.items():
        assert order == sorted(order), f"{writer}'s events are out of order"
    assert ChainHead.objects.get().sequence == committed
    report = verify_chain()
    assert report.ok, report.problems[:3]
    assert report.checked == committed


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seal_mode", ["inline", "background"])
def test_eight_concurrent_writer_processes_on_postgresql_lose_nothing(seal_mode):
    committed = _run_writers(seal_mode)
    assert committed == WRITERS * _committed_per_writer()
    _assert_chain_complete(committed)


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_writer_processes_on_the_current_database(on_postgresql):
    if on_postgresql:
        pytest.skip("covered by the PostgreSQL test above")
    committed = _run_writers("inline")
    assert committed == WRITERS * _committed_per_writer()
    _assert_chain_complete(committed)
