"""Runtime posture: the process-start event, the process_posture detector, /readyz and /metrics."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from audit.actions import Action
from audit.models import AuditEvent
from audit.schema import CONTEXT_SCHEMAS
from core.posture import CAPABILITY_NAMES, UNKNOWN, Posture, read_posture
from monitoring import conf
from monitoring import posture as monitoring_posture
from monitoring.checks import check_monitoring_settings
from monitoring.health import process_posture
from monitoring.models import Alert, Notification, Severity
from monitoring.posture import capabilities_beyond_baseline, posture_problems
from monitoring.services import posture as posture_services
from monitoring.services.detection import detection_sweep
from monitoring.services.posture import process_started_record, process_started_record_once
from tests.core.test_posture import DOCKER_DEFAULT, READ_ONLY_ROOT, fake_proc, status_text

pytestmark = pytest.mark.django_db

PROJECT_DIR = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-0123456789abcdef0123456789"

HARDENED = Posture(
    pid=4242, host="web-1", uid=10001, gid=10001, root_fs_writable=False, root_fs_source="mountinfo",
    cap_effective=[], cap_permitted=[], cap_bounding=[], no_new_privs=True, container=True,
    container_evidence="/.dockerenv", revision="3f2c1e9",
)  # fmt: skip
AS_ROOT = dataclasses.replace(
    HARDENED, uid=0, gid=0, root_fs_writable=True, cap_effective=DOCKER_DEFAULT, cap_permitted=DOCKER_DEFAULT,
    cap_bounding=list(CAPABILITY_NAMES), no_new_privs=False,
)  # fmt: skip


@pytest.fixture
def high(settings):
    """A deployment's severity (the suite's own settings say low, as the embedded default does)."""
    settings.MONITORING_POSTURE_SEVERITY = "high"


def started(posture: Posture | None, *, role: str = "web", capture) -> AuditEvent:
    """Record a process start (of ``posture``, or of this process) with real-time detection after commit."""
    with capture(execute=True):
        return process_started_record(role=role, posture=posture)


# --- the event ----------------------------------------------------------------------------------
def test_the_event_carries_the_role_and_the_whole_posture_under_declared_keys(django_capture_on_commit_callbacks):
    event = started(HARDENED, role="worker", capture=django_capture_on_commit_callbacks)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.action == Action.PROCESS_STARTED and not stored.actor_id  # the system
    assert stored.context == {"role": "worker", **HARDENED.as_dict()}
    assert set(stored.context) == set(CONTEXT_SCHEMAS[Action.PROCESS_STARTED])
    assert (stored.target_type, stored.target_id) == ("system.process", "web-1:4242")


def test_the_event_of_the_real_process_holds_no_secret_of_its_environment(
    monkeypatch, django_capture_on_commit_callbacks
):
    secret = "do-not-record-this-secret-0123456789"
    monkeypatch.setenv("SECRET_KEY", secret)
    monkeypatch.setenv("DATABASE_URL", f"postgres://app:{secret}@db:5432/app")
    event = started(None, capture=django_capture_on_commit_callbacks)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.context["uid"] == os.geteuid() and stored.context["pid"] == os.getpid()
    assert secret not in json.dumps(stored.context) and secret not in stored.target_repr


def test_an_unknown_role_is_refused_and_nothing_is_recorded():
    with pytest.raises(ValueError, match="process role must be one of web, worker, beat, not 'cron'"):
        process_started_record(role="cron")
    assert not AuditEvent.objects.exists()


def test_the_entry_points_record_once_per_process_and_never_raise(monkeypatch, caplog):
    monkeypatch.setattr(posture_services, "_recorded", set())
    assert process_started_record_once(role="web") is True
    assert process_started_record_once(role="web") is False
    assert AuditEvent.objects.filter(action=Action.PROCESS_STARTED).count() == 1
    with caplog.at_level(logging.WARNING, logger="monitoring.posture"):
        assert process_started_record_once(role="cron") is False  # a failure is logged, not raised
    assert "could not record the start of this cron process (ValueError)" in caplog.text


# --- the detector -------------------------------------------------------------------------------
def test_a_root_posture_raises_exactly_one_high_alert_naming_every_problem(high, django_capture_on_commit_callbacks):
    event = started(AS_ROOT, capture=django_capture_on_commit_callbacks)
    [alert] = Alert.objects.filter(detector="process_posture")
    assert alert.severity == Severity.HIGH
    assert (alert.subject_type, alert.subject) == ("system", "web on web-1")
    assert alert.dedupe_key == "process_posture:web-1:web"
    assert alert.summary == (
        "the web process on web-1 runs as root (uid 0); has a writable root filesystem; holds 14 effective "
        "capabilities beyond the baseline (cap_chown, cap_dac_override, cap_fowner, cap_fsetid, cap_kill and 9 more)"
    )
    assert alert.evidence["event_ids"] == [event.pk]
    assert alert.evidence["counts"]["problems"] == ["root_user", "root_fs_writable", "capabilities"]
    assert alert.evidence["counts"]["extra_capabilities"] == DOCKER_DEFAULT
    detection_sweep()  # the sweep re-judges the event and recognises the alert
    assert Alert.objects.filter(detector="process_posture").count() == 1


def test_a_hardened_posture_and_an_unreadable_one_raise_nothing(high, django_capture_on_commit_callbacks):
    started(HARDENED, capture=django_capture_on_commit_callbacks)
    unreadable = dataclasses.replace(
        HARDENED, uid=UNKNOWN, root_fs_writable=UNKNOWN, cap_effective=UNKNOWN, no_new_privs=UNKNOWN
    )
    started(unreadable, capture=django_capture_on_commit_callbacks)
    detection_sweep()
    assert not Alert.objects.filter(detector="process_posture").exists()


def test_later_starts_fold_into_one_alert_per_host_and_role(high, django_capture_on_commit_callbacks):
    for pid in (101, 102, 103):  # three gunicorn workers of one host
        started(dataclasses.replace(AS_ROOT, pid=pid), capture=django_capture_on_commit_callbacks)
    started(AS_ROOT, role="worker", capture=django_capture_on_commit_callbacks)
    started(dataclasses.replace(AS_ROOT, host="web-2"), capture=django_capture_on_commit_callbacks)
    alerts = {alert.dedupe_key: alert.count for alert in Alert.objects.filter(detector="process_posture")}
    assert alerts == {"process_posture:web-1:web": 3, "process_posture:web-1:worker": 1, "process_posture:web-2:web": 1}


def test_the_capability_baseline_and_the_checks_decide_what_is_a_problem(high, settings):
    settings.MONITORING_POSTURE_CAPABILITY_BASELINE = ["cap_net_bind_service"]
    assert capabilities_beyond_baseline(["cap_net_bind_service"]) == []
    assert capabilities_beyond_baseline(["cap_chown", "cap_net_bind_service"]) == ["cap_chown"]
    assert posture_problems(uid=10001, root_fs_writable=False, cap_effective=["cap_net_bind_service"]) == {}
    assert list(posture_problems(uid=0, root_fs_writable=True, cap_effective=["cap_chown"])) == [
        "root_user", "root_fs_writable", "capabilities",
    ]  # fmt: skip
    settings.MONITORING_POSTURE_CHECKS = ["capabilities"]  # a deployment that cannot run read-only, or as non-root
    assert list(posture_problems(uid=0, root_fs_writable=True, cap_effective=["cap_chown"])) == ["capabilities"]
    settings.MONITORING_POSTURE_CHECKS = []
    assert posture_problems(uid=0, root_fs_writable=True, cap_effective=["cap_chown"]) == {}


def test_on_the_embedded_default_the_alert_is_low_and_notifies_no_one(django_capture_on_commit_callbacks):
    assert conf.get("MONITORING_POSTURE_SEVERITY") == "low"  # the test settings, as config/settings/local.py
    started(AS_ROOT, capture=django_capture_on_commit_callbacks)
    alert = Alert.objects.get(detector="process_posture")
    assert alert.severity == Severity.LOW
    assert not Notification.objects.filter(alert=alert).exists()


def _setting_in(module: str, **environment) -> str:
    """MONITORING_POSTURE_SEVERITY as a process started with the settings ``module`` reads it."""
    script = (
        "import django; django.setup(); from monitoring import conf; "
        "print(conf.get('MONITORING_POSTURE_SEVERITY'))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": module, **environment},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout.strip()


def test_make_run_reports_posture_low_and_production_high(tmp_path):
    var = str(tmp_path / "var")
    assert _setting_in("config.settings.local", VAR_DIR=var) == "low"
    assert _setting_in(
        "config.settings.production", VAR_DIR=var, SECRET_KEY="x" * 50, ALLOWED_HOSTS="console.example.org",
        DATABASE_URL="postgres://app:app@127.0.0.1:5432/app",
    ) == "high"  # fmt: skip


def test_system_checks_refuse_unknown_capabilities_checks_and_severities(settings):
    assert [error.id for error in check_monitoring_settings()] == []
    settings.MONITORING_POSTURE_CAPABILITY_BASELINE = ["net_bind_service", "cap_chown"]
    settings.MONITORING_POSTURE_CHECKS = ["root_user", "seccomp"]
    settings.MONITORING_POSTURE_SEVERITY = "urgent"
    errors = {error.id: error.msg for error in check_monitoring_settings()}
    assert set(errors) == {"monitoring.E009", "monitoring.E010", "monitoring.E011"}
    assert "'net_bind_service'" in errors["monitoring.E009"] and "cap_chown'" not in errors["monitoring.E009"]
    settings.MONITORING_POSTURE_CAPABILITY_BASELINE = "cap_chown"
    assert "not a list (str)" in check_monitoring_settings()[0].msg


# --- /readyz and /metrics -----------------------------------------------------------------------
def test_readyz_shows_the_posture_of_the_answering_process(client, settings, monkeypatch):
    monkeypatch.setenv("IMAGE_REVISION", "3f2c1e9")
    mine = read_posture()
    baseline = mine.cap_effective[:1] if isinstance(mine.cap_effective, list) else []
    settings.MONITORING_POSTURE_CAPABILITY_BASELINE = baseline
    settings.MONITORING_METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the details are for operators
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    posture = response.json()["posture"]
    assert posture == {
        "uid": mine.uid,
        "root_fs_writable": mine.root_fs_writable,
        "extra_capabilities": capabilities_beyond_baseline(mine.cap_effective),
        "no_new_privs": mine.no_new_privs,
        "revision": "3f2c1e9",
        "problems": list(posture_problems(
            uid=mine.uid, root_fs_writable=mine.root_fs_writable, cap_effective=mine.cap_effective
        )),
    }  # fmt: skip
    if baseline:
        assert baseline[0] not in posture["extra_capabilities"]  # the baseline is left out


def test_a_root_posture_never_makes_readyz_fail(client, monkeypatch, tmp_path, settings):
    settings.MONITORING_METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the details are for operators
    proc, root = fake_proc(tmp_path, status=status_text(effective="000001ffffffffff"), mountinfo=READ_ONLY_ROOT)
    monkeypatch.setattr(monitoring_posture, "read_posture", functools.partial(read_posture, proc=proc, root=root))
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and "failing" not in body
    assert len(body["posture"]["extra_capabilities"]) == 41 and "capabilities" in body["posture"]["problems"]


def test_a_posture_that_cannot_be_judged_is_reported_as_its_error_class(monkeypatch):
    def broken(posture=None):
        raise OSError("/proc/self/status: detail that stays out")

    monkeypatch.setattr("monitoring.health.posture_summary", broken)
    assert process_posture() == {"error": "OSError"}


def _metrics(client) -> dict[str, list]:
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_metrics_expose_the_answering_process_posture(client, settings, monkeypatch):
    settings.MONITORING_METRICS_TOKEN = TOKEN
    monkeypatch.setenv("IMAGE_REVISION", "3f2c1e9")
    mine = read_posture()
    families = _metrics(client)
    [uid] = families["ninaivalaigal_process_uid"]
    assert uid.value == mine.uid
    [writable] = families["ninaivalaigal_process_root_fs_writable"]
    assert writable.value == (1.0 if mine.root_fs_writable else 0.0)
    [no_new_privs] = families["ninaivalaigal_process_no_new_privs"]
    assert no_new_privs.value == (1.0 if mine.no_new_privs else 0.0)
    [extra] = families["ninaivalaigal_process_extra_capabilities"]
    assert extra.value == len(capabilities_beyond_baseline(mine.cap_effective))
    [info] = families["ninaivalaigal_process_info"]
    assert info.value == 1.0
    assert info.labels == {"role": "web", "revision": "3f2c1e9"}


def test_metrics_leave_out_what_could_not_be_read(client, settings, monkeypatch, tmp_path):
    settings.MONITORING_METRICS_TOKEN = TOKEN
    monkeypatch.delenv("IMAGE_REVISION", raising=False)
    proc, root = fake_proc(tmp_path)  # no status, no mountinfo
    monkeypatch.setattr(
        monitoring_posture, "read_posture", functools.partial(read_posture, proc=proc, root=tmp_path / "missing")
    )
    families = _metrics(client)
    assert "ninaivalaigal_process_uid" in families  # the uid comes from the process itself
    for name in ("root_fs_writable", "no_new_privs", "extra_capabilities"):
        assert f"ninaivalaigal_process_{name}" not in families
    assert families["ninaivalaigal_process_info"][0].labels["revision"] == "unknown"

