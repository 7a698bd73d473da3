"""The dashboard's release cards: the newest deployments and the security gate's last result.

The gate's result file is written here as ``scripts/security_gate.py`` writes it (its own
``gate_result`` and ``write_result``), then read by the page: passed, failed, stale, missing and
unreadable files each say what they are, and nothing of an unreadable file reaches the page.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
import secrets
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

import audit
from accounts.roles import SECURITY_ADMINISTRATOR, SECURITY_AUDITOR
from accounts.testing import login_with_mfa
from monitoring.security_gate import MAX_BYTES, ResultUnreadable, result_parse, security_gate_result
from tests.monitoring.conftest import record

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent.parent


def gate_module():
    spec = importlib.util.spec_from_file_location("security_gate_script", ROOT / "scripts" / "security_gate.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GATE = gate_module()


def section(html: str, name: str) -> str:
    match = re.search(rf'<section[^>]*id="dash-{name}".*?</section>', html, re.S)
    assert match, f"section {name} missing"
    return match.group(0)


def metric_row(html: str) -> str:
    match = re.search(r"<tr>\s*<th scope=\"row\">Open high-severity findings of the security gate.*?</tr>", html, re.S)
    assert match
    return match.group(0)


@pytest.fixture
def console(make_user):
    client = Client()
    login_with_mfa(client, make_user("sec-admin", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def result_file(tmp_path, settings):
    path = tmp_path / "gate" / "gate-result.json"
    settings.MONITORING_SECURITY_GATE_RESULT_FILE = str(path)
    return path


def write_gate_result(path: Path, *, failed_bandit: bool = False, finished: datetime.datetime | None = None,
                      secret: str = "") -> dict:
    """A result as the gate writes it: bandit (failed with one finding, or passed), detect-secrets, hadolint."""
    finding = GATE.Finding("bandit", "B602", "core/planted.py", 5, f"shell=True with {secret}")
    results = {
        "bandit": GATE.Result("failed", "1 finding", [finding]) if failed_bandit else GATE.Result("passed", "ok"),
        "detect-secrets": GATE.Result("passed", "ok", accepted=3),
        "hadolint": GATE.Result("skipped", "no Containerfile"),
    }
    finished = finished or timezone.now() - datetime.timedelta(hours=2)
    document = GATE.gate_result(results, finished_at=finished.isoformat(), duration=12.5,
                                revision="94e7e02" + "0" * 33, modified=False)
    GATE.write_result(document, path)
    return document


def test_deployments_are_listed_newest_first_with_kind_revisions_and_environment(console, settings):
    settings.MONITORING_DEPLOYMENTS_SHOWN = 2
    now = timezone.now()
    for hours, action, before, after in [
        (30, audit.Action.DEPLOYED, "v1.3.0", "v1.4.0"),
        (20, audit.Action.DEPLOYED, "v1.4.0", "5a7cb64"),
        (10, audit.Action.ROLLED_BACK, "5a7cb64", "v1.4.0"),
    ]:
        record(action, at=now - datetime.timedelta(hours=hours), target=("system.release", after),
               context={"from_revision": before, "to_revision": after, "environment": "production",
                        "tool": "bluegreen"})
    html = section(console.get("/admin/").content.decode(), "deployments")
    rows = re.findall(r"<tr><td>.*?</tr>", html, re.S)
    assert len(rows) == 2  # MONITORING_DEPLOYMENTS_SHOWN
    assert "<strong>rollback</strong>" in rows[0] and "<code>5a7cb64</code></td><td><code>v1.4.0</code>" in rows[0]
    assert "(10 h 0 min ago)" in rows[0] and "production (bluegreen)" in rows[0]
    assert "deploy" in rows[1] and "<code>v1.4.0</code></td><td><code>5a7cb64</code>" in rows[1]
    assert "v1.3.0" not in html


def test_deployments_recorded_by_the_command_show_up(console):
    call_command("record_deployment", "--kind", "deploy", "--from-revision", "abc1234", "--to-revision", "def5678")
    html = section(console.get("/admin/").content.decode(), "deployments")
    assert "<code>abc1234</code></td><td><code>def5678</code>" in html and "production (manual)" in html


def test_no_deployment_says_so(console):
    assert "None recorded" in section(console.get("/admin/").content.decode(), "deployments")


def test_without_a_result_file_the_metric_and_the_card_say_so(console, result_file):
    html = console.get("/admin/").content.decode()
    assert "no result of the security gate here" in metric_row(html)
    assert "not known" in metric_row(html)
    assert "No result here." in section(html, "security-gate")


def test_a_passed_result_meets_the_target_and_lists_each_check(console, result_file):
    write_gate_result(result_file)
    html = console.get("/admin/").content.decode()
    row = metric_row(html)
    assert '<td class="dash-figure">0</td>' in row and "✔ met" in row
    assert "on revision 94e7e0200000" in row and "every check passed" in row
    card = section(html, "security-gate")
    assert "<strong>passed</strong>, 0 open finding(s)" in card and "2 h 0 min ago" in card
    assert "<tr><td>detect-secrets</td><td>passed</td>" in card and "<td>3</td></tr>" in card
    assert "<tr><td>hadolint</td><td>skipped</td>" in card
    assert "Not run by this gate: dependency vulnerability scan; image vulnerability scan." in card


def test_a_failed_result_shows_the_open_findings_by_check_and_severity_and_no_finding_text(console, result_file):
    secret = secrets.token_urlsafe(24)
    document = write_gate_result(result_file, failed_bandit=True, secret=secret)
    assert secret not in result_file.read_text() and "planted" not in result_file.read_text()
    assert document["checks"]["bandit"] == {
        "status": "failed", "open_findings": 1, "open_by_severity": {"high": 1}, "accepted_findings": 0,
    }
    html = console.get("/admin/").content.decode()
    row = metric_row(html)
    assert '<td class="dash-figure">1</td>' in row and "✘ not met" in row and "failed checks: bandit" in row
    card = section(html, "security-gate")
    assert "<strong>FAILED</strong>, 1 open finding(s)" in card
    assert "<tr><td>bandit</td><td><strong>failed</strong></td>\n        <td>1 (1 high)</td>" in card
    assert secret not in html


def test_a_failed_check_without_findings_does_not_meet_the_target(result_file):
    results = {"semgrep": GATE.Result("failed", "semgrep did not run cleanly"), "bandit": GATE.Result("passed", "")}
    GATE.write_result(GATE.gate_result(results, finished_at=timezone.now().isoformat(), duration=1.0,
                                       revision="unknown", modified=True), result_file)
    from monitoring.dashboard import dashboard_context

    metric = next(m for m in dashboard_context(now=timezone.now())["metrics"] if "security gate" in m["label"])
    assert metric["value"] == 0 and metric["met"] is False
    assert metric["detail"] == "failed checks: semgrep" and "with local changes" in metric["how"]


def test_a_stale_result_is_called_stale_and_proves_nothing(console, result_file, settings):
    settings.MONITORING_SECURITY_GATE_STALE_DAYS = 3
    write_gate_result(result_file, finished=timezone.now() - datetime.timedelta(days=4))
    html = console.get("/admin/").content.decode()
    row = metric_row(html)
    assert "stale, older than 3 days" in row and "not known" in row
    assert "<strong>stale: older than 3 days</strong>" in section(html, "security-gate")
    write_gate_result(result_file, finished=timezone.now() - datetime.timedelta(days=2))
    assert "stale" not in metric_row(console.get("/admin/").content.decode())


def valid_document() -> dict:
    results = {"bandit": GATE.Result("passed", "")}
    return GATE.gate_result(results, finished_at="2026-12-02T08:00:00+00:00", duration=1, revision="unknown",
                            modified=False)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: "[1, 2", "not JSON"),
        (lambda d: [d], "not a JSON object"),
        (lambda d: {**d, "format": 2}, "not the result layout 1"),
        (lambda d: {**d, "finished_at": "yesterday"}, "finished_at is not an ISO 8601 time"),
        (lambda d: {**d, "finished_at": "2026-12-02T08:00:00"}, "finished_at has no time zone"),
        (lambda d: {**d, "revision": "<script>"}, "revision is not a commit hash"),
        (lambda d: {**d, "passed": "yes"}, "passed or revision_modified is not true or false"),
        (lambda d: {**d, "checks": {}}, "no checks"),
        (lambda d: {**d, "checks": {"bandit": {**d["checks"]["bandit"], "status": "ok"}}}, "has no status"),
        (lambda d: {**d, "checks": {"bandit": {**d["checks"]["bandit"], "open_findings": -1}}}, "is not a count"),
        (lambda d: {**d, "passed": False}, "passed disagrees with the checks"),
    ],
)
def test_a_result_that_is_not_one_is_refused_with_the_reason(change, problem):
    changed = change(valid_document())
    with pytest.raises(ResultUnreadable, match=re.escape(problem)):
        result_parse(changed if isinstance(changed, str) else json.dumps(changed))


def test_an_unreadable_file_is_named_so_and_its_content_never_shown(console, result_file):
    secret = secrets.token_urlsafe(24)
    result_file.parent.mkdir(parents=True)
    result_file.write_text(json.dumps({**valid_document(), "revision": secret}))
    html = console.get("/admin/").content.decode()
    assert "the gate&#x27;s result file cannot be read: revision is not a commit hash" in metric_row(html)
    assert "<strong>The result file cannot be read:</strong> revision is not a commit hash." in html
    assert secret not in html
    result_file.write_bytes(b"{" + b" " * MAX_BYTES + b"}")
    assert security_gate_result(now=timezone.now())["problem"] == f"larger than {MAX_BYTES} bytes"
    result_file.write_bytes(b"\xff\xfe")
    assert security_gate_result(now=timezone.now())["problem"] == "not UTF-8 text"
    result_file.unlink()
    result_file.mkdir()
    assert security_gate_result(now=timezone.now())["problem"].startswith("cannot be opened (")
    assert console.get("/admin/").status_code == 200


def test_the_default_result_file_is_under_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.MONITORING_SECURITY_GATE_RESULT_FILE = ""
    write_gate_result(tmp_path / "security" / "gate-result.json")
    assert security_gate_result(now=timezone.now())["state"] == "present"


@pytest.mark.parametrize("role", [SECURITY_AUDITOR, SECURITY_ADMINISTRATOR])
def test_both_security_roles_see_the_release_cards_and_nothing_there_to_act_on(role, make_user, result_file):
    user = make_user(f"role-{len(role)}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    write_gate_result(result_file, failed_bandit=True)
    call_command("record_deployment", "--kind", "rollback", "--from-revision", "def5678", "--to-revision", "abc1234")
    client = Client()
    login_with_mfa(client, user)
    html = client.get("/admin/").content.decode()
    for name in ("security-gate", "deployments"):
        card = section(html, name)
        assert "<form" not in card and "<button" not in card  # read-only for every role
    assert "<strong>FAILED</strong>" in section(html, "security-gate")
    assert "<strong>rollback</strong>" in section(html, "deployments")
