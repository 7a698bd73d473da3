"""The security gate's result file: what a full run writes for the dashboard, and what it never writes.

A real run of the gate in a temporary copy with planted findings (a shell command and a key-like
string), then the file read by the console's own reader (``monitoring.security_gate``). Like
tests/security/test_gate.py, it touches no database and runs in the SQLite half only.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from monitoring.security_gate import result_parse
from tests.security.test_gate import TOOLS, copy_gate, gate_module

RESULT_VARIABLE = "MONITORING_SECURITY_GATE_RESULT_FILE"


@pytest.fixture(autouse=True)
def _sqlite_half_only():
    if connection.vendor == "postgresql":
        pytest.skip("the gate touches no database; it runs in the SQLite half of make test")


def run_gate(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {name: value for name, value in os.environ.items() if name not in {RESULT_VARIABLE, "VAR_DIR"}}
    environment.update(SECURITY_TOOLS_VENV=str(TOOLS), PROJECT_PYTHON=sys.executable, **env)
    return subprocess.run(
        ["bash", str(root / "scripts" / "security-checks.sh"), *args],
        cwd=root, env=environment, capture_output=True, text=True, timeout=900,
    )


def test_a_full_run_writes_counts_per_check_and_severity_and_no_finding_text(tmp_path):
    root = copy_gate(tmp_path, "core")
    token = "AKIA" + secrets.token_hex(8).upper()  # an AWS-key-like string, made here so no file holds one
    (root / "core" / "planted.py").write_text(
        f'import subprocess\n\nLABEL = "{token}"\n\n\n'
        "def run(command):\n    return subprocess.call(command, shell=True)\n"
    )
    result_file = tmp_path / "out" / "gate.json"
    result = run_gate(root, **{RESULT_VARIABLE: str(result_file)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"result: written to {result_file}" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("security gate: FAILED (")
    text = result_file.read_text()
    for secret_or_detail in (token, "planted", "B602", "shell=True", "AWS Access Key", "core/"):
        assert secret_or_detail not in text
    document = json.loads(text)
    assert document["checks"]["bandit"] == {
        "status": "failed", "open_findings": 1, "open_by_severity": {"high": 1}, "accepted_findings": 0,
    }
    assert document["checks"]["detect-secrets"]["status"] == "failed"
    assert document["checks"]["detect-secrets"]["open_findings"] >= 1
    assert document["checks"]["hadolint"]["status"] == "skipped"
    assert set(document["checks"]) == set(gate_module().CHECKS)  # every check, in a full run
    assert document["passed"] is False and document["revision"] == "unknown"  # a copy outside git
    assert document["open_findings"] == sum(check["open_findings"] for check in document["checks"].values())
    parsed = result_parse(text)  # the console reads what the gate wrote
    assert parsed["failed_checks"][:1] == ["bandit"] and parsed["open_by_severity"]["high"] >= 2


def test_an_only_run_leaves_the_result_of_the_last_full_run_alone(tmp_path):
    root = copy_gate(tmp_path, "core")
    result_file = tmp_path / "gate.json"
    result_file.write_text("the last full run's result\n")
    result = run_gate(root, "--only", "bandit", **{RESULT_VARIABLE: str(result_file)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result:" not in result.stdout
    assert result_file.read_text() == "the last full run's result\n"


def test_the_result_goes_to_the_setting_else_under_var_dir(monkeypatch, tmp_path):
    gate = gate_module()
    monkeypatch.delenv(RESULT_VARIABLE, raising=False)
    monkeypatch.delenv("VAR_DIR", raising=False)
    assert gate.result_path() == gate.ROOT / "var" / "security" / "gate-result.json"
    monkeypatch.setenv("VAR_DIR", "elsewhere")
    assert gate.result_path() == gate.ROOT / "elsewhere" / "security" / "gate-result.json"
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    assert gate.result_path() == tmp_path / "security" / "gate-result.json"
    monkeypatch.setenv(RESULT_VARIABLE, str(tmp_path / "chosen.json"))
    assert gate.result_path() == tmp_path / "chosen.json"


def test_a_result_is_written_whole_or_not_at_all(tmp_path):
    gate = gate_module()
    path = tmp_path / "gate.json"
    path.write_text("previous\n")
    with pytest.raises(TypeError):
        gate.write_result({"not serialisable": object()}, path)
    assert path.read_text() == "previous\n"
    assert [entry.name for entry in tmp_path.iterdir()] == ["gate.json"]  # no temporary file left behind
    gate.write_result({"format": 1}, path)
    assert json.loads(path.read_text()) == {"format": 1}
