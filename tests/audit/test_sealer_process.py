"""The sealer process (``manage.py audit_sealer``): it chains what writers in ``periodic`` mode commit.

Web processes of the compose stack run with ``AUDIT_SEAL_MODE=periodic`` and leave every event
unsealed; only this process (and the minute's ``audit_seal`` task) chains them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError

from audit import services
from audit.models import AuditEvent
from audit.verification import verify_chain
from tests.support import servers

WRITERS = 3
EVENTS_PER_WRITER = 60


def _env() -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": servers.test_database_url(),
        "DATABASE_POOL": "false",
        "TEST_VAR_DIR": str(settings.VAR_DIR),
        "AUDIT_SEAL_MODE": "periodic",
        "AUDIT_CHAIN_KEY": settings.AUDIT_CHAIN_KEY,
        "ENCRYPTION_AUDIT_CHAIN_KEYS": settings.ENCRYPTION_AUDIT_CHAIN_KEYS,
        "ENCRYPTION_AUDIT_CHECKPOINT_KEYS": settings.ENCRYPTION_AUDIT_CHECKPOINT_KEYS,
    }


def _wait_until(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_the_sealer_process_chains_what_periodic_writers_commit_and_stops_cleanly():
    sealer = subprocess.Popen(
        [sys.executable, "manage.py", "audit_sealer", "--interval", "0.05"],
        cwd=servers.PROJECT_DIR,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        start_at = time.time() + 2.0
        writers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.audit.concurrent_writer",
                    f"w{number}",
                    str(EVENTS_PER_WRITER),
                    str(start_at),
                ],
                cwd=servers.PROJECT_DIR,
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for number in range(WRITERS)
        ]
        committed = 0
        for writer in writers:
            out, err = writer.communicate(timeout=300)
            assert writer.returncode == 0, err[-3000:]
            committed += int(out.strip().splitlines()[-1])
        assert committed > 0
        # Nothing in this test seals: only the sealer process can make the count reach zero.
        _wait_until(
            lambda: AuditEvent.objects.count() == committed and not AuditEvent.objects.unsealed().exists(),
            timeout=60,
            what="the sealer process to chain every committed event",
        )
    finally:
        sealer.send_signal(signal.SIGTERM)
        out, err = sealer.communicate(timeout=30)
    assert sealer.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert out.splitlines()[0].startswith("Audit sealer started")
    assert out.splitlines()[-1] == f"Audit sealer stopped after sealing {committed} event(s)."
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, committed + 1))
    report = verify_chain()
    assert report.ok, report.problems[:3]


@pytest.mark.parametrize("interval", ["0", "-1", "61", "nan", "inf"])
def test_an_interval_out_of_range_is_one_clear_error(interval):
    with pytest.raises(CommandError, match="--interval must be between 0.01 and 60 seconds"):
        call_command("audit_sealer", "--interval", interval)


def test_a_database_that_refuses_work_is_retried_with_a_doubling_back_off_and_never_ends_the_loop(monkeypatch, caplog):
    calls, sleeps = [], []

    def seal_pending():
        calls.append(1)
        if len(calls) <= 6:
            raise OperationalError("server closed the connection unexpectedly: password=hunter2")
        return services.SealResult(sealed=3)

    monkeypatch.setattr(services, "seal_pending", seal_pending)
    monkeypatch.setattr("django.db.close_old_connections", lambda: None)
    sealed = services.audit_sealer_run(
        interval=0.2, should_stop=lambda: len(calls) >= 8, sleep=sleeps.append, max_backoff=8.0
    )
    assert sealed == 6, "the loop went on after the database came back"
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 0.2, 0.2]
    refusals = [record.getMessage() for record in caplog.records if "refused work" in record.getMessage()]
    assert len(refusals) == 6
    assert all("OperationalError" in line and "hunter2" not in line for line in refusals)
