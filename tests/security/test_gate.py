"""The security gate (scripts/security-checks.sh): it passes on the repository and fails on planted findings.

The planted cases copy only what the gate needs into a temporary folder and run one check there,
with the tools already installed (.venv-security). The gate touches no database: it runs in the
SQLite half of ``make test`` only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent.parent
GATE = ROOT / "scripts" / "security-checks.sh"
TOOLS = Path(os.environ.get("SECURITY_TOOLS_VENV") or ROOT / ".venv-security").resolve()
NOT_RUN = (
    "dependency vulnerability scan: not run (no vulnerability database offline; "
    "runs in .github/workflows/security.yml)"
)


@pytest.fixture(autouse=True)
def _sqlite_half_only():
    if connection.vendor == "postgresql":
        pytest.skip("the gate touches no database; it runs in the SQLite half of make test")


def run_gate(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SECURITY_TOOLS_VENV": str(TOOLS), "PROJECT_PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(root / "scripts" / "security-checks.sh"), *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=900,
    )


def copy_gate(tmp_path: Path, *folders: str) -> Path:
    """The gate's own files and ``folders`` of the repository, in a folder that is not a git checkout."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("security-checks.sh", "security_gate.py"):
        shutil.copy2(ROOT / "scripts" / name, root / "scripts" / name)
    for name in ("requirements-security.txt", ".secrets.baseline"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(ROOT / "deploy" / "security", root / "deploy" / "security")
    for folder in folders:
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def gate_module():
    spec = importlib.util.spec_from_file_location("security_gate", ROOT / "scripts" / "security_gate.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gate_passes_on_the_repository_and_says_what_it_did_not_run():
    result = run_gate(ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for label in ("bandit", "semgrep", "zizmor", "detect-secrets", "SBOM (CycloneDX)", "django check --deploy"):
        assert re.search(rf"^{re.escape(label)}: passed \(", result.stdout, re.MULTILINE), output
    for label in ("hadolint", "trivy config"):
        assert re.search(rf"^{re.escape(label)}: (passed \(|skipped: )", result.stdout, re.MULTILINE), output
    if not (ROOT / "deploy" / "Containerfile").exists():
        assert "hadolint: skipped: no Containerfile (deploy/Containerfile)" in result.stdout
    assert NOT_RUN in result.stdout.splitlines()
    assert "no known vulnerabilities" not in output.lower()
    assert result.stdout.rstrip().splitlines()[-1].startswith("security gate: passed")
    assert (ROOT / "var" / "security" / "sbom-runtime.cdx.json").exists()
    # The full run's result for the dashboard (tests/security/test_gate_result.py tests it in detail).
    document = json.loads(gate_module().result_path().read_text())
    assert document["passed"] is True and document["open_findings"] == 0
    if (ROOT / ".git").exists():
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        assert document["revision"] == head


def test_bandit_fails_the_gate_on_a_shell_command_and_names_it(tmp_path):
    root = copy_gate(tmp_path, "core")
    clean = run_gate(root, "--only", "bandit")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    (root / "core" / "planted.py").write_text(
        "import subprocess\n\n\ndef run(command):\n    return subprocess.call(command, shell=True)\n"
    )
    planted = run_gate(root, "--only", "bandit")
    assert planted.returncode == 1, planted.stdout + planted.stderr
    assert "bandit: failed (1 finding)" in planted.stdout
    assert re.search(r"^    core/planted\.py:5 B602: .*shell=True", planted.stdout, re.MULTILINE), planted.stdout
    assert planted.stdout.rstrip().splitlines()[-1].startswith("security gate: FAILED (bandit;")


def test_detect_secrets_fails_the_gate_on_an_aws_key_outside_the_baseline(tmp_path):
    root = copy_gate(tmp_path)
    key = "AKIA" + "Z7Q2R4T6V8X0B3D5"  # built here, so this file holds no key
    (root / "deploy" / "settings.env").write_text(f"AWS_ACCESS_KEY_ID={key}\n")
    result = run_gate(root, "--only", "detect-secrets")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "detect-secrets: failed (1 finding)" in result.stdout
    assert "    deploy/settings.env:1 AWS Access Key: not in .secrets.baseline" in result.stdout


# One sample per semgrep rule (the line each must be reported on), and the safe form beside it.
PLANTED_CODE = '''\
import os
import pickle
import subprocess

import yaml
from django.db import connection
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import csrf_exempt

DEBUG = True


def page(request, name, table):
    markup = mark_safe(request.GET["bio"])
    fine = mark_safe("<br>")
    link = format_html(f"<a>{name}</a>")
    good = format_html("<a>{}</a>", name)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM memories WHERE title = '{name}'")
        cursor.execute("SELECT * FROM memories WHERE title = %s", [name])
    subprocess.run(name, shell=True)
    subprocess.run(["ls", name])
    data = pickle.loads(request.body)
    config = yaml.load(request.body)
    safe = yaml.safe_load(request.body)
    os.environ.get("X")
    return markup, fine, link, good, data, config, safe


@csrf_exempt
def hook(request):
    return None


@NAME@ = "Zq8#mW2vLp9xTk4R"
RESET_URL_TOKEN = "set-password"
'''.replace("@NAME@", "SIGNING_" + "KEY")  # so this file holds no secret-looking assignment
EXPECTED = {
    "debug-true": [11],
    "mark-safe-non-literal": [15],
    "format-html-preformatted": [17],
    "raw-sql-string-formatting": [20],
    "subprocess-shell": [22],
    "unsafe-deserialisation": [24, 25],
    "csrf-exempt": [31],
    "hard-coded-secret": [36],
    "template-autoescape-off": [1, 2],
}


def test_semgrep_rules_report_each_planted_misuse_and_not_the_safe_forms(tmp_path):
    root = copy_gate(tmp_path)
    (root / "core").mkdir()
    (root / "core" / "planted.py").write_text(PLANTED_CODE)
    (root / "templates").mkdir()
    (root / "templates" / "planted.html").write_text("{% autoescape off %}{{ a }}{% endautoescape %}\n{{ b|safe }}\n")
    (root / "templates" / "mail.txt").write_text("{% autoescape off %}{{ a }}{% endautoescape %}\n")
    result = run_gate(root, "--only", "semgrep")
    assert result.returncode == 1, result.stdout + result.stderr
    reported: dict[str, list[int]] = {}
    for path, line, rule in re.findall(r"^    (\S+):(\d+) ([\w-]+): ", result.stdout, re.MULTILINE):
        reported.setdefault(rule, []).append(int(line))
        assert path in ("core/planted.py", "templates/planted.html"), result.stdout
    assert {rule: sorted(lines) for rule, lines in reported.items()} == EXPECTED, result.stdout


def test_the_gate_checks_production_settings_with_every_variable_the_settings_tests_set():
    from tests.config.test_settings import PRODUCTION_ENV

    assert set(gate_module().production_env()) == set(PRODUCTION_ENV)


def test_an_accepted_finding_without_a_reason_stops_the_gate(tmp_path):
    root = copy_gate(tmp_path)
    accepted = root / "deploy" / "security" / "accepted-findings.toml"
    accepted.write_text(accepted.read_text() + '\n[[accept]]\ntool = "bandit"\nrule = "B602"\npath = "core/x.py"\n')
    result = run_gate(root, "--only", "zizmor")
    assert result.returncode != 0
    assert "lacks reason; every entry needs a reason" in result.stdout + result.stderr


def test_hadolint_and_trivy_config_check_a_containerfile_once_there_is_one(tmp_path):
    root = copy_gate(tmp_path)
    (root / "deploy" / "Containerfile").write_text(
        "FROM localhost/base:1\nRUN apt-get update && apt-get install -y curl\nADD . /app\nUSER root\n"
    )
    result = run_gate(root, "--only", "hadolint,trivy-config")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "    deploy/Containerfile:3 DL3020: Use COPY instead of ADD" in result.stdout
    assert "    deploy/Containerfile:4 DS-0002: Image user should not be 'root' (HIGH)" in result.stdout
