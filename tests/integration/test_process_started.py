"""Real processes record their start and posture once: a web process, a Celery worker, beat.

Each is started here as a separate process against the test database, as ``make run`` and a
deployment start them; a management command records nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from audit.actions import Action
from audit.models import AuditEvent
from core.posture import read_posture
from monitoring.models import Alert, Severity
from monitoring.posture import posture_problems
from tests.support import servers
from tests.support.servers import filesystem_broker

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT_DIR = Path(__file__).resolve().parents[2]


def _environment(**extra) -> dict:
    """What a process started here needs to share the test database (as tests/support/servers.py gives a worker)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": servers.test_database_url(),
        "DATABASE_POOL": "false",
        "TEST_VAR_DIR": str(settings.VAR_DIR),
        "IMAGE_REVISION": "3f2c1e9",
        **extra,
    }


def _started(role: str):
    return AuditEvent.objects.filter(action=Action.PROCESS_STARTED.value, context__role=role)


def _wait_for(query, *, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = query()
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError("nothing appeared in time")


def _expected_problems() -> list[str]:
    """What the detector should find in a process of this machine, started as this test runs."""
    mine = read_posture()
    found = posture_problems(uid=mine.uid, root_fs_writable=mine.root_fs_writable, cap_effective=mine.cap_effective)
    return list(found)


def _assert_posture_alert(role: str, host: str) -> None:
    problems = _expected_problems()
    alerts = Alert.objects.filter(detector="process_posture", subject=f"{role} on {host}")
    if not problems:
        assert not alerts.exists()
        return
    [alert] = alerts
    assert alert.severity == Severity.LOW  # the suite's settings, as on the embedded default
    assert alert.evidence["counts"]["problems"] == problems


@pytest.mark.audit_coverage("system.process_started")
def test_a_web_process_records_its_start_once_when_config_wsgi_builds_the_application():
    script = (
        "import json, os, config.wsgi; from django.db import connection; "
        "from monitoring.services.posture import process_started_record_once; "
        "closed = connection.connection is None; "
        "print(json.dumps({'pid': os.getpid(), 'closed': closed, 'again': process_started_record_once(role='web')}))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, env=_environment(), capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    child = json.loads(completed.stdout.strip().splitlines()[-1])
    assert child["again"] is False  # once per process
    assert child["closed"] is True  # nothing open for a fork (gunicorn's preload_app) to inherit
    [event] = _started("web")
    mine = read_posture()
    assert event.context["pid"] == child["pid"] and event.context["uid"] == mine.uid
    assert event.context["revision"] == "3f2c1e9"
    assert event.context["cap_effective"] == mine.cap_effective
    _assert_posture_alert("web", event.context["host"])  # detected in the web process (eager Celery)


def test_a_web_process_starts_even_when_its_start_cannot_be_recorded():
    port = servers.free_port()  # nothing listens there
    database_url = f"postgres://app:db-password-never-logged@127.0.0.1:{port}/app"
    script = "import config.wsgi; print('application', type(config.wsgi.application).__name__)"
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, env=_environment(DATABASE_URL=database_url),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == "application WSGIHandler"
    assert "could not record the start of this web process (OperationalError)" in completed.stderr
    assert "db-password-never-logged" not in completed.stderr + completed.stdout


def test_a_management_command_records_no_start():
    completed = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=PROJECT_DIR, env=_environment(), capture_output=True,
        text=True, timeout=180,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert not AuditEvent.objects.filter(action=Action.PROCESS_STARTED.value).exists()


@contextmanager
def _celery(tmp_path: Path, name: str, *arguments: str, broker_url: str, options: dict):
    """Run ``celery -A config <arguments>`` as ``make run`` does, on a filesystem broker, against the test database."""
    log_path = tmp_path / f"{name}.log"
    environment = _environment(
        CELERY_BROKER_URL=broker_url, CELERY_RESULT_BACKEND=f"file://{tmp_path / 'results'}",
        CELERY_TASK_ALWAYS_EAGER="false", CELERY_BROKER_TRANSPORT_OPTIONS=json.dumps(options),
    )  # fmt: skip
    (tmp_path / "results").mkdir(exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *arguments, "--loglevel=INFO"],
            cwd=PROJECT_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode not in (0, -15):
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])


@pytest.mark.worker
def test_a_celery_worker_records_its_start_once_not_per_pool_child_and_detects_its_own_posture(tmp_path):
    """A prefork worker with two children, as ``make run`` starts it: one event, from the main process."""
    broker_url, options = filesystem_broker(tmp_path)
    client = Celery("test-client", broker=broker_url, backend=f"file://{tmp_path / 'results'}", set_as_current=False)
    client.conf.broker_transport_options = options
    with _celery(
        tmp_path, "worker", "worker", "--pool=prefork", "--concurrency=2", "--without-gossip", "--without-mingle",
        "--without-heartbeat", broker_url=broker_url, options=options,
    ) as worker:  # fmt: skip
        [event] = _wait_for(lambda: list(_started("worker")))
        for token in ("one", "two", "three"):  # the pool children are busy and alive
            assert client.send_task("monitoring.health_ping", args=[token]).get(timeout=60)["token"] == token
        if _expected_problems():  # a pool child ran detection on the worker's own event
            _wait_for(lambda: Alert.objects.filter(detector="process_posture").exists())
        assert worker.poll() is None
    assert _started("worker").count() == 1
    assert event.context["pid"] == worker.pid  # the worker's main process, not a pool child
    assert event.context["revision"] == "3f2c1e9"
    _assert_posture_alert("worker", event.context["host"])


@pytest.mark.worker
def test_beat_records_its_start_once(tmp_path):
    broker_url, options = filesystem_broker(tmp_path)
    schedule = f"--schedule={tmp_path / 'beat-schedule'}"
    with _celery(tmp_path, "beat", "beat", schedule, broker_url=broker_url, options=options) as beat:
        [event] = _wait_for(lambda: list(_started("beat")))
        time.sleep(1.0)  # beat keeps running: no second record
        assert beat.poll() is None
    assert _started("beat").count() == 1
    assert event.context["pid"] == beat.pid


@pytest.mark.worker
def test_beat_shows_readiness_it_is_alive_within_a_minute_of_its_start(tmp_path):
    """/readyz reads when beat last sent a job; beat must save that soon, not after its 3-minute sync."""
    from monitoring.selectors import beat_last_run_at
    from monitoring.services.schedule import beat_schedule_sync

    beat_schedule_sync()  # the project's schedule, as migrate loads it (a transactional test flushes it)
    broker_url, options = filesystem_broker(tmp_path)
    schedule = f"--schedule={tmp_path / 'beat-schedule'}"
    with _celery(tmp_path, "beat", "beat", schedule, broker_url=broker_url, options=options):
        # The first jobs are due a minute after the start; the default sync would save them after three.
        assert _wait_for(beat_last_run_at, timeout=120.0)

