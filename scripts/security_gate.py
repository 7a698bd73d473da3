"""The security gate: offline checks of the code, the workflows, the secrets and the deployment files.

scripts/security-checks.sh runs this with the tools of requirements-security.txt (.venv-security);
docs/security-gate.md says what each check does. Each check prints one line, passed, failed (and its
findings, one per line below) or skipped (and why), and the run exits 1 when any check failed.
A finding is accepted only by an entry with a reason in deploy/security/accepted-findings.toml.

    scripts/security-checks.sh [--only CHECK,...]
    scripts/security-checks.sh --update-secrets-baseline
"""

from __future__ import annotations

import argparse
import base64
import datetime
import fnmatch
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(sys.executable).parent
CODE = ["config", "core", "accounts", "api", "audit", "encryption", "memories", "monitoring"]
ACCEPTED_FILE = "deploy/security/accepted-findings.toml"
SEMGREP_RULES = "deploy/security/semgrep"
SECRETS_BASELINE = ".secrets.baseline"
CONTAINERFILE = "deploy/Containerfile"
OUT = "var/security"
WORKFLOW = ".github/workflows/security.yml"
# detect-secrets never scans these (tool folders, generated files, the baseline itself).
NOT_SCANNED = {".git", ".venv", ".venv-security", "var", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}


@dataclass
class Finding:
    tool: str
    rule: str
    path: str
    line: int
    message: str
    end_line: int | None = None
    # The tool's own severity where it gives one (zizmor, trivy); otherwise high, the gate's threshold.
    severity: str = "high"

    def source(self) -> str:
        """The finding's lines of code, for the ``match`` of an acceptance."""
        try:
            lines = (ROOT / self.path).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[max(self.line - 1, 0) : self.end_line or self.line])

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where} {self.rule}: {' '.join(self.message.split())}"


@dataclass
class Acceptance:
    tool: str
    rule: str
    path: str
    reason: str
    match: str = ""
    used: bool = False

    def covers(self, finding: Finding) -> bool:
        return (
            self.tool == finding.tool
            and fnmatch.fnmatchcase(finding.rule, self.rule)
            and fnmatch.fnmatchcase(finding.path, self.path)
            and (not self.match or self.match in finding.source())
        )

    def __str__(self) -> str:
        return f"{self.tool} {self.rule} {self.path}" + (f" {self.match!r}" if self.match else "")


@dataclass
class Result:
    status: str  # passed, failed, skipped
    detail: str
    findings: list[Finding] = field(default_factory=list)
    accepted: int = 0  # findings covered by an entry of the accepted-findings file


def load_acceptances() -> list[Acceptance]:
    path = ROOT / ACCEPTED_FILE
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("accept", [])
    acceptances = []
    for number, entry in enumerate(entries, 1):
        missing = [key for key in ("tool", "rule", "path", "reason") if not str(entry.get(key, "")).strip()]
        if missing:
            raise SystemExit(f"{ACCEPTED_FILE}: entry {number} lacks {', '.join(missing)}; every entry needs a reason")
        acceptances.append(Acceptance(**{key: entry[key] for key in ("tool", "rule", "path", "reason", "match")
                                         if key in entry}))
    return acceptances


def judge(findings: list[Finding], acceptances: list[Acceptance], passed: str) -> Result:
    """Fail on every finding that no acceptance covers."""
    open_findings = []
    accepted = 0
    for finding in findings:
        covering = [acceptance for acceptance in acceptances if acceptance.covers(finding)]
        for acceptance in covering:
            acceptance.used = True
        if covering:
            accepted += 1
        else:
            open_findings.append(finding)
    note = f"; {accepted} accepted in {ACCEPTED_FILE}" if accepted else ""
    if open_findings:
        count = len(open_findings)
        return Result("failed", f"{count} finding{'s' if count != 1 else ''}{note}", open_findings, accepted)
    return Result("passed", passed + note, accepted=accepted)


def run(command: list, *, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def tool(name: str) -> Path:
    return TOOLS / name


def tool_error(name: str, process: subprocess.CompletedProcess) -> Result:
    output = (process.stderr.strip() or process.stdout.strip() or "no output").splitlines()
    return Result("failed", f"{name} did not run (exit {process.returncode}): {output[-1][:300]}")


def code_targets() -> list[str]:
    return [name for name in CODE if (ROOT / name).is_dir()]


def project_python() -> Path:
    return Path(os.environ.get("PROJECT_PYTHON") or ROOT / ".venv/bin/python")


# --- the checks -------------------------------------------------------------------------------


def check_bandit(acceptances: list[Acceptance]) -> Result:
    targets = code_targets()
    if not targets:
        return Result("skipped", "no code folder to scan")
    process = run([tool("bandit"), "-r", *targets, "-f", "json", "-q"])
    try:
        report = json.loads(process.stdout)
    except ValueError:
        return tool_error("bandit", process)
    if report.get("errors"):
        error = report["errors"][0]
        return Result("failed", f"bandit could not read {error.get('filename')}: {error.get('reason')}")
    findings, below = [], {}
    for issue in report["results"]:
        if issue["issue_severity"] == "HIGH":
            findings.append(
                Finding("bandit", issue["test_id"], issue["filename"], issue["line_number"],
                        f"{issue['issue_text']} ({issue['test_name']})", issue["line_range"][-1])
            )
        else:
            below[issue["issue_severity"].lower()] = below.get(issue["issue_severity"].lower(), 0) + 1
    lines = report["metrics"]["_totals"]["loc"]
    others = ", ".join(f"{count} {severity}" for severity, count in sorted(below.items()))
    passed = f"no high-severity finding in {lines} lines of {', '.join(targets)}"
    return judge(findings, acceptances, passed + (f"; {others} below the gate's threshold" if others else ""))


def check_semgrep(acceptances: list[Acceptance]) -> Result:
    targets = code_targets() + (["templates"] if (ROOT / "templates").is_dir() else [])
    if not targets:
        return Result("skipped", "no code folder to scan")
    # Offline: the repository's rules only, no metrics, no version check (which waits ~100 s for a
    # network that is not there).
    env = {**os.environ, "SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"}
    process = run(
        [tool("semgrep"), "scan", "--metrics", "off", "--disable-version-check", "--config", SEMGREP_RULES,
         "--json", "--quiet", "--jobs", "2", *targets],
        env=env,
    )
    try:
        report = json.loads(process.stdout)
    except ValueError:
        return tool_error("semgrep", process)
    errors = [error for error in report.get("errors", []) if error.get("level") == "error"]
    if process.returncode != 0 or errors:
        message = (errors[0].get("message") or errors[0].get("type")) if errors else process.stderr.strip()[-300:]
        return Result("failed", f"semgrep did not run cleanly (exit {process.returncode}): {message}")
    findings, below = [], 0
    for result in report["results"]:
        if result["extra"].get("severity") != "ERROR":
            below += 1
            continue
        findings.append(
            Finding("semgrep", result["check_id"].rsplit(".", 1)[-1], result["path"], result["start"]["line"],
                    result["extra"]["message"].split(". ", 1)[0], result["end"]["line"])
        )
    rule_count = sum(len(_rule_ids(path)) for path in (ROOT / SEMGREP_RULES).glob("*.yml"))
    passed = f"{rule_count} rules of {SEMGREP_RULES} on {', '.join(targets)}"
    return judge(findings, acceptances, passed + (f"; {below} below ERROR" if below else ""))


def _rule_ids(path: Path) -> list[str]:
    """The rule ids of a semgrep rule file (read without a YAML library: ``  - id: NAME`` lines)."""
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("  - id:")]


def check_zizmor(acceptances: list[Acceptance]) -> Result:
    if not (ROOT / ".github/workflows").is_dir():
        return Result("skipped", "no .github/workflows")
    process = run([tool("zizmor"), "--offline", "--persona", "auditor", "--format", "json", "--no-progress",
                   ".github/workflows"])
    if process.returncode not in (0, 10, 11, 12, 13, 14):
        return tool_error("zizmor", process)
    try:
        report = json.loads(process.stdout or "[]")
    except ValueError:
        return tool_error("zizmor", process)
    findings = []
    for item in report:
        if item.get("ignored"):
            continue
        primary = next((loc for loc in item["locations"] if loc["symbolic"].get("kind") == "Primary"),
                       item["locations"][0])
        key = primary["symbolic"]["key"].get("Local", {})
        path = key.get("verbatim_path") or key.get("given_path") or ".github/workflows"
        line = primary["concrete"]["location"]["start_point"]["row"] + 1
        severity = item["determinations"]["severity"].lower()
        findings.append(Finding("zizmor", item["ident"], path, line, f"{item['desc']} ({severity})",
                                severity=severity))
    workflows = sorted(p.name for p in (ROOT / ".github/workflows").glob("*.y*ml"))
    passed = f"no finding in {', '.join(workflows)} (offline audits, auditor persona)"
    return judge(findings, acceptances, passed)


def scanned_files() -> list[str]:
    """The files detect-secrets reads: git's tracked and untracked-but-not-ignored files, or every file."""
    try:
        process = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        inside_git = process.returncode == 0 and (ROOT / ".git").exists()
    except OSError:
        inside_git = False
    if inside_git:
        names = [name for name in process.stdout.split("\0") if name]
    else:
        names = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [name for name in dirs if name not in NOT_SCANNED]
            names += [os.path.relpath(os.path.join(folder, name), ROOT) for name in files]
    return sorted(
        name for name in names
        if name != SECRETS_BASELINE and name.split("/", 1)[0] not in NOT_SCANNED and (ROOT / name).is_file()
    )


def check_detect_secrets(acceptances: list[Acceptance]) -> Result:
    from detect_secrets import SecretsCollection
    from detect_secrets.core import baseline

    baseline_path = ROOT / SECRETS_BASELINE
    if not baseline_path.exists():
        return Result("failed", f"no {SECRETS_BASELINE}: run scripts/security-checks.sh --update-secrets-baseline")
    files = scanned_files()
    cwd = os.getcwd()
    os.chdir(ROOT)  # detect-secrets names files as given, relative to the repository
    try:
        known = baseline.load(baseline.load_from_file(SECRETS_BASELINE), filename=SECRETS_BASELINE)
        found = SecretsCollection()
        found.scan_files(*files, num_processors=2)
    finally:
        os.chdir(cwd)
    audited = {(secret.filename, secret.secret_hash, secret.type): secret.is_secret for _name, secret in known}
    findings, baseline_entries = [], []
    for filename, secret in found:
        state = audited.get((filename, secret.secret_hash, secret.type), "new")
        if state == "new":
            findings.append(Finding("detect-secrets", secret.type, filename, secret.line_number,
                                    f"not in {SECRETS_BASELINE}"))
        elif state is None:
            findings.append(Finding("detect-secrets", secret.type, filename, secret.line_number,
                                    f"in {SECRETS_BASELINE} but not audited (detect-secrets audit {SECRETS_BASELINE})"))
        elif state is True:
            findings.append(Finding("detect-secrets", secret.type, filename, secret.line_number,
                                    f"audited as a real secret in {SECRETS_BASELINE}: remove and rotate it"))
        else:
            baseline_entries.append(Finding("detect-secrets", secret.type, filename, secret.line_number,
                                            f"audited in {SECRETS_BASELINE}, but {ACCEPTED_FILE} gives no reason"))
    # An audited entry passes only with a reason in the accepted-findings file; a new secret never.
    result = judge(baseline_entries, acceptances, "")
    findings += result.findings
    if findings:
        return Result("failed", f"{len(findings)} finding{'s' if len(findings) != 1 else ''}", findings,
                      result.accepted)
    return Result("passed", f"{len(files)} files; no secret outside {SECRETS_BASELINE} "
                            f"({len(baseline_entries)} audited entries, each with a reason)",
                  accepted=result.accepted)


def update_secrets_baseline() -> int:
    """Rescan into .secrets.baseline, keeping the audit labels; then audit the new entries by hand."""
    from detect_secrets import SecretsCollection
    from detect_secrets.core import baseline

    os.chdir(ROOT)
    old = baseline.load(baseline.load_from_file(SECRETS_BASELINE), filename=SECRETS_BASELINE)
    new = SecretsCollection()
    new.scan_files(*scanned_files(), num_processors=1)
    new.merge(old)
    baseline.save_to_file(new, SECRETS_BASELINE)
    unaudited = sum(1 for _name, secret in new if secret.is_secret is None)
    audit = os.path.relpath(TOOLS / "detect-secrets", ROOT)
    print(f"{SECRETS_BASELINE}: {sum(1 for _ in new)} entries, {unaudited} to audit: {audit} audit {SECRETS_BASELINE}")
    return 0


# What a runtime dependency tree looks like from inside the project's venv: name, version, requirements.
_DISTRIBUTIONS = (
    "import importlib.metadata as m, json\n"
    "print(json.dumps({d.metadata['Name']: [d.version, d.requires or []] for d in m.distributions()}))"
)


def runtime_closure(python: Path) -> tuple[list[str], list[str]]:
    """requirements.txt and everything it pulls in, as installed in the project's venv: (pins, problems)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    process = run([python, "-c", _DISTRIBUTIONS])
    if process.returncode != 0:
        return [], [f"{python} cannot list its packages: {process.stderr.strip()[-200:]}"]
    installed = {canonicalize_name(name): (name, version, requires)
                 for name, (version, requires) in json.loads(process.stdout).items()}
    wanted: list[tuple[Requirement, frozenset]] = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            wanted.append((requirement, frozenset(requirement.extras)))
    pins, problems, seen = {}, [], set()
    while wanted:
        requirement, extras = wanted.pop()
        key = canonicalize_name(requirement.name)
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        if key not in installed:
            problems.append(f"{requirement.name} is not installed in {python.parent.parent}")
            continue
        name, version, requires = installed[key]
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{name} {version} is installed, requirements ask for {requirement.specifier}")
        pins[key] = f"{name}=={version}"
        for text in requires:
            dependency = Requirement(text)
            environments = [{"extra": extra} for extra in extras | {""}]
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in environments):
                wanted.append((dependency, frozenset(dependency.extras)))
    return sorted(pins.values(), key=str.lower), problems


def check_sbom(acceptances: list[Acceptance]) -> Result:
    python = project_python()
    if not python.exists():
        return Result("failed", f"no project venv at {python.parent.parent}: make venv")
    pins, problems = runtime_closure(python)
    if problems:
        return Result("failed", "; ".join(problems[:5]))
    out = ROOT / OUT
    out.mkdir(parents=True, exist_ok=True)
    frozen = out / "runtime-requirements.txt"
    frozen.write_text("# requirements.txt and its dependencies as installed; written by the security gate\n"
                      + "\n".join(pins) + "\n")
    sbom = out / "sbom-runtime.cdx.json"
    process = run([tool("cyclonedx-py"), "requirements", "--of", "JSON", "--output-reproducible",
                   "--pyproject", "pyproject.toml", "--mc-type", "application", "-o", sbom, frozen])
    if process.returncode != 0:
        return tool_error("cyclonedx-py", process)
    document = json.loads(sbom.read_text())
    components = len(document.get("components", []))
    return Result("passed", f"{OUT}/{sbom.name}: CycloneDX {document.get('specVersion')}, {components} components "
                            f"(requirements.txt and their dependencies)")


def production_env() -> dict:
    """Production settings with every variable set to a throwaway value (as tests/config/test_settings.py)."""

    def key(purpose: str) -> str:
        return f"{purpose}-gate:{base64.b64encode(secrets.token_bytes(32)).decode()}"

    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "console.example.org",
        "ACCOUNTS_SITE_URL": "https://console.example.org",
        "DATABASE_URL": f"postgres://gate:{secrets.token_hex(8)}@db.example.org:5432/ninaivalaigal",
        "ENCRYPTION_FIELD_KEYS": key("field"),
        "ENCRYPTION_BLIND_INDEX_KEYS": key("index"),
        "ENCRYPTION_AUDIT_CHAIN_KEYS": key("chain"),
        "ENCRYPTION_BACKUP_KEYS": key("backup"),
        "ENCRYPTION_AUDIT_ARCHIVE_KEYS": key("archive"),
        "ENCRYPTION_AUDIT_CHECKPOINT_KEYS": key("checkpoint"),
    }


def check_django_deploy(acceptances: list[Acceptance]) -> Result:
    python = project_python()
    if not python.exists():
        return Result("failed", f"no project venv at {python.parent.parent}: make venv")
    keep = {name: value for name, value in os.environ.items() if name in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    with tempfile.TemporaryDirectory(prefix="security-gate-") as var_dir:
        env = {**keep, **production_env(), "VAR_DIR": var_dir, "DJANGO_SETTINGS_MODULE": "config.settings.production"}
        process = run([python, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env)
    output = process.stdout + process.stderr
    findings = []
    for line in output.splitlines():
        head, _, message = line.partition(": (")
        if message and ")" in message:
            check_id, _, text = message.partition(") ")
            findings.append(Finding("django-deploy", check_id, "config/settings/production.py", 0, f"{head}: {text}"))
    if process.returncode != 0 and not findings:
        return tool_error("manage.py check --deploy", process)
    return judge(findings, acceptances,
                 "manage.py check --deploy --fail-level WARNING: no issue on production settings")


def check_hadolint(acceptances: list[Acceptance]) -> Result:
    if not (ROOT / CONTAINERFILE).exists():
        return Result("skipped", f"no Containerfile ({CONTAINERFILE})")
    process = run([tool("hadolint"), "--no-color", "--format", "json", CONTAINERFILE])
    try:
        report = json.loads(process.stdout or "[]")
    except ValueError:
        return tool_error("hadolint", process)
    findings, below = [], 0
    for item in report:
        if item["level"] == "error":
            findings.append(Finding("hadolint", item["code"], CONTAINERFILE, item["line"], item["message"]))
        else:
            below += 1
    return judge(findings, acceptances,
                 f"no error in {CONTAINERFILE}" + (f"; {below} warning/info below the threshold" if below else ""))


def check_trivy_config(acceptances: list[Acceptance]) -> Result:
    cache = ROOT / OUT / "trivy-cache"
    process = run([tool("trivy"), "config", "--skip-check-update", "--quiet", "--format", "json",
                   "--cache-dir", cache, "deploy"])
    if process.returncode != 0:
        return tool_error("trivy config", process)
    try:
        report = json.loads(process.stdout)
    except ValueError:
        return tool_error("trivy config", process)
    results = report.get("Results") or []
    if not results:
        return Result("skipped", "nothing in deploy/ that trivy checks (no Containerfile, Kubernetes, Compose, "
                                 "Helm or Terraform file)")
    findings, below, passed = [], 0, 0
    for target in results:
        path = f"deploy/{target['Target']}"
        passed += (target.get("MisconfSummary") or {}).get("Successes", 0)
        for item in target.get("Misconfigurations") or []:
            if item.get("Status") != "FAIL":
                continue
            if item["Severity"] in ("HIGH", "CRITICAL"):
                line = (item.get("CauseMetadata") or {}).get("StartLine") or 0
                message = f"{item['Title']} ({item['Severity']})"
                findings.append(Finding("trivy-config", item["ID"], path, line, message,
                                        severity=item["Severity"].lower()))
            else:
                below += 1
    targets = ", ".join(f"deploy/{target['Target']}" for target in results)
    return judge(findings, acceptances,
                 f"{targets}: {passed} checks passed" + (f"; {below} low/medium below the threshold" if below else ""))


CHECKS: dict[str, tuple[str, Callable[[list[Acceptance]], Result]]] = {
    "bandit": ("bandit", check_bandit),
    "semgrep": ("semgrep", check_semgrep),
    "zizmor": ("zizmor", check_zizmor),
    "detect-secrets": ("detect-secrets", check_detect_secrets),
    "sbom": ("SBOM (CycloneDX)", check_sbom),
    "django-deploy": ("django check --deploy", check_django_deploy),
    "hadolint": ("hadolint", check_hadolint),
    "trivy-config": ("trivy config", check_trivy_config),
}
NOT_RUN = [
    "dependency vulnerability scan: not run (no vulnerability database offline; runs in " + WORKFLOW + ")",
    "image vulnerability scan: not run (no vulnerability database offline; runs in " + WORKFLOW
    + ", on the image make image builds)",
]


RESULT_FORMAT = 1  # the version of the result file's layout (monitoring/security_gate.py reads it)
RESULT_NAME = "gate-result.json"


def result_path() -> Path:
    """Where a full run writes its result: MONITORING_SECURITY_GATE_RESULT_FILE, else VAR_DIR/security/.

    The console reads the same variable (monitoring/conf.py), so both sides agree on one file.
    """
    chosen = os.environ.get("MONITORING_SECURITY_GATE_RESULT_FILE", "").strip()
    if chosen:
        return Path(chosen)
    var_dir = Path(os.environ.get("VAR_DIR", "").strip() or "var")
    return (var_dir if var_dir.is_absolute() else ROOT / var_dir) / "security" / RESULT_NAME


def source_revision() -> tuple[str, bool]:
    """The checked-out commit and whether tracked files differ from it; ``unknown`` outside git."""
    if not (ROOT / ".git").exists():
        return "unknown", False
    try:
        head = run(["git", "rev-parse", "--verify", "HEAD"], timeout=30)
        status = run(["git", "status", "--porcelain", "--untracked-files=no"], timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    revision = head.stdout.strip()
    if head.returncode != 0 or not revision:
        return "unknown", False
    return revision, bool(status.stdout.strip())


def gate_result(results: dict[str, Result], *, finished_at: str, duration: float, revision: str,
                modified: bool) -> dict:
    """The run's result as the console shows it: counts only, per check, severity and tool.

    No finding's text, path, rule or detail line goes in: a finding may quote the very secret it
    found (detect-secrets, a hard-coded key), and a tool's error may quote anything.
    """
    checks, by_severity = {}, {}
    for name, result in results.items():
        severities: dict[str, int] = {}
        for finding in result.findings:
            severities[finding.severity] = severities.get(finding.severity, 0) + 1
            by_severity[finding.severity] = by_severity.get(finding.severity, 0) + 1
        checks[name] = {
            "status": result.status,
            "open_findings": len(result.findings),
            "open_by_severity": dict(sorted(severities.items())),
            "accepted_findings": result.accepted,
        }
    return {
        "format": RESULT_FORMAT,
        "finished_at": finished_at,
        "duration_seconds": round(duration, 1),
        "revision": revision,
        "revision_modified": modified,
        "passed": all(result.status != "failed" for result in results.values()),
        "open_findings": sum(check["open_findings"] for check in checks.values()),
        "open_by_severity": dict(sorted(by_severity.items())),
        "checks": checks,
        "not_run": [line.split(":", 1)[0] for line in NOT_RUN],
    }


def write_result(document: dict, path: Path) -> None:
    """Write ``document`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".gate-result-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(document, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated checks: " + ", ".join(CHECKS))
    parser.add_argument("--update-secrets-baseline", action="store_true", help="rescan into " + SECRETS_BASELINE)
    parser.add_argument("--accepted-ids", metavar="TOOL",
                        help="print the rules accepted for TOOL, one a line (pip-audit, trivy-image: the workflow)")
    args = parser.parse_args(argv)
    if args.accepted_ids:
        for acceptance in load_acceptances():
            if acceptance.tool == args.accepted_ids:
                print(acceptance.rule)
        return 0
    if args.update_secrets_baseline:
        return update_secrets_baseline()
    selected = list(CHECKS)
    if args.only:
        selected = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in selected if name not in CHECKS]
        if unknown:
            parser.error(f"unknown check {', '.join(unknown)}; the checks are {', '.join(CHECKS)}")
    acceptances = load_acceptances()
    failed = []
    results: dict[str, Result] = {}
    started = time.monotonic()
    for name in selected:
        label, check = CHECKS[name]
        began = time.monotonic()
        try:
            result = check([a for a in acceptances if a.tool == name])
        except Exception as error:  # a check that crashes fails; the others still run
            result = Result("failed", f"the check crashed: {type(error).__name__}: {error}")
        took = f"[{time.monotonic() - began:.1f} s]"
        if result.status == "skipped":
            print(f"{label}: skipped: {result.detail} {took}", flush=True)
        else:
            print(f"{label}: {result.status} ({result.detail}) {took}", flush=True)
        for finding in result.findings:
            print(f"    {finding}", flush=True)
        results[name] = result
        if result.status == "failed":
            failed.append(name)
    if not args.only:
        for line in NOT_RUN:
            print(line)
    ran = set(selected)
    stale = [a for a in acceptances if a.tool in ran and not a.used]
    for acceptance in stale:
        print(f"note: {ACCEPTED_FILE} accepts a finding the tools no longer report: {acceptance}")
    duration = time.monotonic() - started
    total = f"{len(selected)} check{'s' if len(selected) != 1 else ''}, {duration:.0f} s"
    if not args.only:
        # Only a run of every check says what the gate thinks of a revision; --only runs leave it be.
        revision, modified = source_revision()
        finished_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        path = result_path()
        try:
            write_result(gate_result(results, finished_at=finished_at, duration=duration, revision=revision,
                                     modified=modified), path)
            print(f"result: written to {os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else path}")
        except OSError as error:
            print(f"result: not written ({type(error).__name__}: {error.strerror or error})")
    if failed:
        print(f"security gate: FAILED ({', '.join(failed)}; {total})")
        return 1
    print(f"security gate: passed ({total})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
