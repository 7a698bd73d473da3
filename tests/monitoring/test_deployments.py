"""``manage.py record_deployment``: deploys and rollbacks in the audit trail, with both revisions.

The exact event each kind records, the revisions it accepts and normalises, and every bad input
refused with one line and status 2, nothing recorded.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

import audit
from audit.models import AuditEvent
from monitoring.services.deployments import REVISION_MAX_LENGTH, revision_normalise
from tests.monitoring.conftest import events_of

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent.parent
LONG_HASH = secrets.token_hex(20)  # 40 hex digits like a git commit, made at run time (no scanner sees a key)


def record_deployment(*args: str) -> str:
    out = StringIO()
    call_command("record_deployment", *args, stdout=out)
    return out.getvalue()


@pytest.mark.audit_coverage("system.deployed")
def test_a_deploy_records_system_deployed_with_both_revisions_who_and_where():
    assert len(LONG_HASH) == 40
    output = record_deployment(
        "--kind", "deploy", "--from-revision", "v1.4.0", "--to-revision", LONG_HASH.upper(),
        "--environment", "staging", "--tool", "bluegreen", "--note", "green took over at 1 % error budget",
    )
    (event,) = events_of(audit.Action.DEPLOYED)
    assert event.context == {
        "from_revision": "v1.4.0",
        "to_revision": LONG_HASH,  # a hash is kept whole (a revision is an identifier) and in lower case
        "environment": "staging",
        "tool": "bluegreen",
        "os_user": getpass.getuser(),
        "host": socket.gethostname(),
        "note": "green took over at 1 % error budget",
    }
    assert event.actor_id == "" and event.actor_username == "" and event.outcome == "success"  # the system
    assert (event.target_type, event.target_id) == ("system.release", LONG_HASH)
    assert event.target_repr == f"staging: deployed v1.4.0 -> {LONG_HASH[:12]}"  # short: a label, not the record
    assert output == f"recorded system.deployed (event {event.uuid}): staging v1.4.0 -> {LONG_HASH}\n"
    assert AuditEvent.objects.count() == 1


@pytest.mark.audit_coverage("system.rolled_back")
def test_a_rollback_records_system_rolled_back_in_the_default_environment(settings):
    settings.MONITORING_DEPLOYMENT_ENVIRONMENT = "production-eu"
    record_deployment("--kind", "rollback", "--from-revision", "5a7cb64", "--to-revision", "94e7e02")
    (event,) = events_of(audit.Action.ROLLED_BACK)
    assert event.context["from_revision"] == "5a7cb64" and event.context["to_revision"] == "94e7e02"
    assert event.context["environment"] == "production-eu"
    assert event.context["tool"] == "manual"
    assert "note" not in event.context
    assert event.target_repr == "production-eu: rolled back 5a7cb64 -> 94e7e02"
    assert events_of(audit.Action.DEPLOYED) == []


@pytest.mark.parametrize(
    "revision",
    ["abc1234", "ABCDEF0123", "abc1234-dirty", "0" * 40, "f" * 64, "v1", "1.4.0", "v2.0.0-rc.1", "2026.12.2+build.7"],
)
def test_revisions_are_git_hashes_or_version_tags(revision):
    assert revision_normalise(revision, label="r") == (revision.lower() if "." not in revision else revision)


BAD_INPUT = [
    (["--kind", "upgrade"], "invalid choice: 'upgrade'"),
    (["--kind", "deploy", "--from-revision", "abc1234"], "the following arguments are required: --to-revision"),
    (["--from-revision", "abc1234", "--to-revision", "def5678"], "the following arguments are required: --kind"),
    (["--kind", "deploy", "--from-revision", "", "--to-revision", "def5678"], "--from-revision is empty"),
    (["--kind", "deploy", "--from-revision", "abc12", "--to-revision", "def5678"], "neither a git commit hash"),
    (["--kind", "deploy", "--from-revision", "main", "--to-revision", "def5678"], "neither a git commit hash"),
    (["--kind", "deploy", "--from-revision", "abc1234; rm -rf /", "--to-revision", "def5678"], "neither a git"),
    (["--kind", "deploy", "--from-revision", "abc1234", "--to-revision", "v1.2\nv1.3"], "neither a git commit"),
    (["--kind", "deploy", "--from-revision", "abc1234", "--to-revision", "g" * 41], "neither a git commit hash"),
    (["--kind", "deploy", "--from-revision", "a" * 65, "--to-revision", "def5678"], "65 characters long; at most 64"),
    (["--kind", "deploy", "--from-revision", "abc1234", "--to-revision", "ABC1234"], "are the same revision"),
    (["--kind", "deploy", "--from-revision", "abc1234", "--to-revision", "def5678", "--environment", "Prod!"],
     "the environment must be"),
    (["--kind", "deploy", "--from-revision", "abc1234", "--to-revision", "def5678", "--tool", ""], "the tool must be"),
    (["--kind", "deploy", "--from-revision", "abc1234", "--to-revision", "def5678", "--note", "x" * 201],
     "the note is 201 characters long; at most 200"),
    (["--kind", "deploy", "--from-revision", "abc1234", "--to-revision", "def5678", "--note", "one\ntwo"],
     "control character"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_refused_with_status_2_and_records_nothing(args, message):
    with pytest.raises(CommandError) as refused:
        record_deployment(*args)
    assert refused.value.returncode == 2
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)  # one line, and no value echoed
    assert AuditEvent.objects.count() == 0


def test_a_revision_is_bounded_before_anything_else():
    assert REVISION_MAX_LENGTH == 64
    with pytest.raises(ValueError, match="at most 64"):
        revision_normalise("v1." + "1" * 70, label="--to-revision")


def test_a_secret_in_the_note_never_reaches_the_event():
    token = secrets.token_urlsafe(32)
    record_deployment(
        "--kind", "deploy", "--from-revision", "abc1234", "--to-revision", "def5678", "--note", f"used key {token}"
    )
    (event,) = events_of(audit.Action.DEPLOYED)
    assert token not in json.dumps(event.context) and token not in event.target_repr
    assert event.context["note"].startswith("used key ")


def run_command_line(*args: str) -> subprocess.CompletedProcess:
    """The command as an operator or the deploy tool runs it (bad input never reaches the database)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    return subprocess.run(
        [sys.executable, "manage.py", "record_deployment", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--kind", "upgrade", "--from-revision", "abc1234", "--to-revision", "def5678"],
         "record_deployment: argument --kind: invalid choice: 'upgrade' (choose from deploy, rollback) (see --help)"),
        (["--kind", "deploy", "--from-revision", "latest", "--to-revision", "def5678"],
         "CommandError: --from-revision is neither a git commit hash (7 to 40 or 64 hex digits) nor a version tag "
         "(such as v1.4.0)"),
    ],
)
def test_the_command_line_prints_one_line_and_exits_2(args, line):
    result = run_command_line(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.replace("'deploy', 'rollback'", "deploy, rollback").splitlines() == [line]


@pytest.mark.parametrize(
    ("name", "value", "error_id"),
    [
        ("MONITORING_DEPLOYMENT_ENVIRONMENT", "Production!", "monitoring.E012"),
        ("MONITORING_DEPLOYMENT_ENVIRONMENT", "", "monitoring.E012"),
        ("MONITORING_DEPLOYMENTS_SHOWN", 0, "monitoring.E001"),
        ("MONITORING_SECURITY_GATE_STALE_DAYS", -1, "monitoring.E001"),
    ],
)
def test_the_release_settings_are_checked_at_start(settings, name, value, error_id):
    from monitoring.checks import check_monitoring_settings

    assert check_monitoring_settings() == []
    setattr(settings, name, value)
    assert error_id in [error.id for error in check_monitoring_settings()]
