"""The container image (deploy/Containerfile), built and run as a hardened deployment runs it.

The module builds the image with ``scripts/build-image.sh`` (the cached base and wheels reused
when present), then runs the one-shot migration job, the web server, the worker and beat from the
one image, each ``--read-only --tmpfs /tmp --cap-drop=ALL --security-opt no-new-privileges
--user 10001:10001``, with production settings, throwaway secrets generated into a temporary
folder and mounted read-only (``SECRET_KEY_FILE``, ``API_KEY_HASH_KEY_FILE``, the key rings in
``ENCRYPTION_KEYS_DIR``; nothing is baked in), and ``VAR_DIR`` on a folder the four share (the
filesystem broker). The database is the half's own: the embedded SQLite default under ``VAR_DIR``
in the SQLite half of ``make test``; in the PostgreSQL half, a fresh database on the suite's
server, reached over the host's network, so the image's psycopg and its bundled libpq meet a real
server. podman runs with the harness settings of ``scripts/podman.sh`` (runc, deploy/containers.conf).

Skipped, with the reason, only where podman cannot run at all.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection

from audit.actions import Action
from encryption.keyring import PURPOSES, format_key, generate_key_material
from tests.support.servers import PROJECT_DIR, free_port

pytestmark = pytest.mark.container

PODMAN = PROJECT_DIR / "scripts" / "podman.sh"
APP_UID = 10001
HOST = "console.example.org"
SECRETS_IN_CONTAINER = "/run/secrets/ninaivalaigal"
VAR_IN_CONTAINER = "/var/lib/ninaivalaigal"
# What the allow-list of .containerignore lets into /app, and what the build adds (static, byte code).
APP_ENTRIES = {
    "accounts", "api", "audit", "config", "core", "deploy", "docs", "encryption", "manage.py", "memories",
    "monitoring", "requirements.txt", "static", "templates", "__pycache__",
}  # fmt: skip
POSTURE_ACTION = "system.process_started"
STYLESHEET = re.compile(r'href="/static/(accounts/accounts\.[0-9a-f]{12}\.css)"')


def podman(*arguments: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``scripts/podman.sh ARGUMENTS``; fail with its output when ``check`` and it fails."""
    result = subprocess.run([str(PODMAN), *arguments], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(arguments[:3])} ... exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def podman_unavailable() -> str | None:
    """Why podman cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/install-system-deps.sh installs podman, runc and mmdebstrap)"
    if os.geteuid() != 0:
        return "the image is built and run by root's podman (mmdebstrap's root mode, a folder owned by uid 10001)"
    result = subprocess.run([str(PODMAN), "info"], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return f"podman cannot run on this machine: {result.stderr.strip()[-500:]}"
    return None


@dataclass
class Image:
    reference: str
    id: str
    revision: str
    build_seconds: float
    inspect: dict


@dataclass
class Stack:
    image: Image
    run_options: list[str]
    port: int
    containers: dict[str, str] = field(default_factory=dict)
    first_probe: dict = field(default_factory=dict)
    database: str = "sqlite"

    def exec(self, role: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return podman("exec", self.containers[role], *command, check=check)

    def get(self, path: str, headers: dict | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            client.request("GET", path, headers={"Host": HOST, **(headers or {})})
            response = client.getresponse()
            return response, response.read()
        finally:
            client.close()


@pytest.fixture(scope="module")
def image() -> Image:
    """The image as ``make image`` builds it; how long the build took is in ``build_seconds``."""
    reason = podman_unavailable()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "scripts/build-image.sh"],
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, f"scripts/build-image.sh failed:\n{result.stderr[-4000:]}"
    seconds = time.monotonic() - started
    reference = result.stdout.strip().splitlines()[-1]
    [inspect] = json.loads(podman("image", "inspect", reference).stdout)
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_DIR, capture_output=True, text=True).stdout
    sys.stderr.write(f"\nimage {reference}: {inspect['Size'] // 1_000_000} MB, built in {seconds:.0f} s\n")
    # Containers run from the image id: a build elsewhere that moves the tag changes nothing here.
    return Image(reference, inspect["Id"], revision.strip() + ("-dirty" if dirty.strip() else ""), seconds, inspect)


def _write_secret(path: Path, value: str) -> None:
    path.write_text(value + "\n")
    os.chown(path, APP_UID, APP_UID)
    path.chmod(0o400)


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory) -> Path:
    """Throwaway secrets, readable by uid 10001 alone, mounted read-only into every container."""
    folder = tmp_path_factory.mktemp("image-secrets")
    (folder / "encryption").mkdir()
    _write_secret(folder / "secret_key", secrets.token_urlsafe(50))
    _write_secret(folder / "api_key_hash_key", secrets.token_urlsafe(48))
    for purpose in PURPOSES:
        _write_secret(folder / "encryption" / purpose, format_key(f"image-test-{purpose}", generate_key_material()))
    for directory in (folder, folder / "encryption"):
        os.chown(directory, APP_UID, APP_UID)
        directory.chmod(0o500)
    return folder


@pytest.fixture(scope="module")
def database_url():
    """The embedded SQLite default under VAR_DIR, or a fresh database on the suite's PostgreSQL server."""
    if connection.vendor != "postgresql":
        yield "sqlite", f"sqlite:///{VAR_IN_CONTAINER}/db.sqlite3"
        return
    import psycopg

    server = connection.settings_dict
    name = f"ninaivalaigal_image_{secrets.token_hex(4)}"
    address = {"host": server["HOST"], "port": server["PORT"], "user": server["USER"], "password": server["PASSWORD"]}
    with psycopg.connect(dbname="postgres", autocommit=True, **address) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            "postgresql",
            f"postgres://{server['USER']}:{server['PASSWORD']}@{server['HOST']}:{server['PORT']}/{name}",
        )
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **address) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def stack(image, secrets_dir, database_url, tmp_path_factory):
    """migrate, then web alone (probed once before any worker runs), then the worker and beat."""
    vendor, url = database_url
    var_dir = tmp_path_factory.mktemp("image-var")
    os.chown(var_dir, APP_UID, APP_UID)
    var_dir.chmod(0o700)
    port = free_port()
    environment = {
        "DATABASE_URL": url,
        "ALLOWED_HOSTS": HOST,
        # The test reads /readyz's details (checks, posture), shown only to /metrics' callers.
        "MONITORING_METRICS_ALLOWED_NETWORKS": "0.0.0.0/0,::/0",
        "SECRET_KEY_FILE": f"{SECRETS_IN_CONTAINER}/secret_key",
        "API_KEY_HASH_KEY_FILE": f"{SECRETS_IN_CONTAINER}/api_key_hash_key",
        "ENCRYPTION_KEY_PROVIDER": "file",
        "ENCRYPTION_KEYS_DIR": f"{SECRETS_IN_CONTAINER}/encryption",
        # The test stands in for the TLS proxy: it sends X-Forwarded-Proto.
        "SECURE_PROXY_SSL": "true",
        # django-celery-beat writes beat's last run to the database every 3 minutes: /readyz
        # still reports beat, but only the worker's heartbeat (which beat's schedule triggers) is
        # waited for.
        "MONITORING_READINESS_CHECKS": "database,cache,broker,worker",
        "WEB_CONCURRENCY": "2",
    }
    network = ["--network", "host"] if vendor == "postgresql" else []
    if network:
        environment["WEB_BIND"] = f"127.0.0.1:{port}"
    hardening = ["--read-only", "--tmpfs", "/tmp", "--cap-drop=ALL", "--security-opt", "no-new-privileges",
                 "--user", f"{APP_UID}:{APP_UID}"]  # fmt: skip
    options = [
        *hardening,
        *network,
        "--volume", f"{secrets_dir}:{SECRETS_IN_CONTAINER}:ro",
        "--volume", f"{var_dir}:{VAR_IN_CONTAINER}",
        *[option for name, value in environment.items() for option in ("--env", f"{name}={value}")],
    ]  # fmt: skip
    running = Stack(image=image, run_options=options, port=port, database=vendor)
    prefix = f"ninaivalaigal-test-{secrets.token_hex(3)}"
    try:
        migrate = podman("run", "--rm", *options, image.id, "migrate", timeout=300, check=False)
        assert migrate.returncode == 0, f"the migration job failed:\n{migrate.stderr[-3000:]}"

        publish = [] if network else ["--publish", f"127.0.0.1:{port}:8000"]
        running.containers["web"] = f"{prefix}-web"
        podman("run", "--detach", "--name", running.containers["web"], *publish, *options, image.id, "web")
        _wait_for(lambda: _status(running, "/healthz") == 200, 60, "the web server to answer /healthz", running)
        running.first_probe = _health(running, "web")

        for role in ("worker", "beat", "sealer"):
            running.containers[role] = f"{prefix}-{role}"
            podman("run", "--detach", "--name", running.containers[role], *options, image.id, role)
        yield running
    finally:
        for name in running.containers.values():
            podman("rm", "--force", "--time", "5", name, check=False, timeout=60)
        shutil.rmtree(var_dir, ignore_errors=True)


def _status(stack: Stack, path: str) -> int | None:
    try:
        return stack.get(path)[0].status
    except OSError:
        return None


def _wait_for(condition, seconds: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    logs = "\n".join(
        f"--- {role}\n{podman('logs', '--tail', '20', name, check=False).stderr[-2000:]}"
        for role, name in stack.containers.items()
    )
    pytest.fail(f"gave up waiting {seconds:.0f} s for {what}\n{logs}")


def _health(stack: Stack, role: str) -> dict:
    """Run the image's HEALTHCHECK in ``role``'s container; its exit status and what it said."""
    result = podman("healthcheck", "run", stack.containers[role], check=False)
    [state] = json.loads(podman("inspect", stack.containers[role]).stdout)
    log = (state["State"].get("Health") or state["State"].get("Healthcheck") or {}).get("Log") or [{}]
    return {"exit": result.returncode, "output": log[-1].get("Output", "").strip()}


def _readyz(stack: Stack) -> dict:
    return json.loads(stack.get("/readyz")[1])


# --- the image -----------------------------------------------------------------------------------
def test_image_is_labelled_with_its_revision_and_version_and_carries_its_posture(image):
    config, labels = image.inspect["Config"], image.inspect["Labels"]
    version = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.revision"] == image.revision
    assert labels["org.opencontainers.image.version"] == version
    assert "org.opencontainers.image.source" in labels
    environment = dict(item.split("=", 1) for item in config["Env"])
    assert environment["IMAGE_REVISION"] == image.revision
    assert {name: environment[name] for name in ("DJANGO_SETTINGS_MODULE", "VAR_DIR", "STATIC_ROOT", "WEB_BIND")} == {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "VAR_DIR": VAR_IN_CONTAINER,
        "STATIC_ROOT": "/app/static",
        "WEB_BIND": "0.0.0.0:8000",
    }
    # No secret is baked in: no variable of the image so much as names one.
    assert not [name for name in environment if re.search(r"SECRET|PASSWORD|TOKEN|KEY", name)]
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--", "/app/deploy/container/entrypoint.sh"]
    assert config["Cmd"] == ["web"]
    healthcheck = image.inspect["Healthcheck"]
    assert healthcheck["Test"] == ["CMD", "python3", "/app/deploy/container/healthcheck.py"]
    assert (healthcheck["Interval"], healthcheck["StartPeriod"]) == (30 * 10**9, 120 * 10**9)  # nanoseconds


@pytest.fixture(scope="module")
def inventory(image) -> dict:
    """What the image itself holds: tests/deploy/image_inventory.py, run in a fresh container with no mount."""
    script = (Path(__file__).parent / "image_inventory.py").read_text()
    result = podman("run", "--rm", "--network", "none", "--entrypoint", "python3", image.id, "-c", script)
    return json.loads(result.stdout)


def test_image_holds_no_compiler_pip_history_git_tests_env_database_or_private_key(inventory):
    assert inventory["compilers"] == []
    assert inventory["pip"] == [] and inventory["pip_cache"] == []
    for kind in ("git", "history", "env", "databases", "private_keys", "tests"):
        assert inventory[kind] == [], kind
    assert set(inventory["app"]) == APP_ENTRIES
    # uid and gid 10001 own the data folder alone, never the code.
    assert inventory["owned_by_app"] == [VAR_IN_CONTAINER]


def test_image_has_debian_python_and_exactly_the_runtime_requirements(inventory):
    assert inventory["python"].startswith("3.11.")
    installed = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in inventory["packages"]}
    for requirement in (PROJECT_DIR / "requirements.txt").read_text().splitlines():
        requirement = requirement.split("#")[0].strip()
        if requirement:
            name, version = requirement.split("==")
            assert installed[name.split("[")[0].lower()] == version, requirement
    # Nothing of requirements-dev.txt that requirements.txt does not bring.
    assert not {"pytest", "ruff", "playwright", "django-axes", "hypothesis"} & set(installed)


def test_every_native_library_of_the_virtual_environment_resolves(inventory):
    """The wheels bring their own (psycopg_binary.libs holds libpq): ldd finds every dependency."""
    assert inventory["shared_objects"] > 10
    assert inventory["unresolved"] == []


def test_an_unknown_command_is_refused_with_the_usage(image):
    result = podman("run", "--rm", "--network", "none", image.id, "serve", check=False)
    assert result.returncode == 64
    assert "usage: web | worker | beat | sealer | migrate | manage" in result.stderr


def _base_image(option: str, lock: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "deploy/base-image.sh", option],
        cwd=PROJECT_DIR,
        env={**os.environ, "BASE_IMAGE_LOCK": str(lock)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_locked_base_build_refuses_versions_that_differ_from_the_lock_until_it_is_updated(image, tmp_path):
    lock = (PROJECT_DIR / "deploy" / "base-image.lock").read_text()
    planted = re.sub(r"^python3=.*$", "python3=0.0-planted", lock, count=1, flags=re.MULTILINE)
    assert planted != lock
    copy = tmp_path / "base-image.lock"
    copy.write_text(planted)

    refused = _base_image("--locked", copy)
    assert refused.returncode == 1
    assert "< python3=0.0-planted" in refused.stderr
    assert "--locked: refusing this base" in refused.stderr

    assert _base_image("--update-lock", copy).returncode == 0
    assert "python3=0.0-planted" not in copy.read_text()
    accepted = _base_image("--locked", copy)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip().startswith("localhost/ninaivalaigal-base:")


# --- the running containers ----------------------------------------------------------------------
def test_every_process_runs_as_uid_10001_without_capabilities_or_new_privileges(stack):
    assert stack.exec("web", "id", "-u").stdout.strip() == str(APP_UID)
    for role in ("web", "worker", "beat", "sealer"):
        statuses = stack.exec(role, "sh", "-c", "cat /proc/[0-9]*/status").stdout
        processes = statuses.split("Name:")[1:]
        assert len(processes) >= 2, role  # tini and the process it started (and gunicorn's workers)
        for process in processes:
            fields = dict(re.findall(r"^(\w+):\s*(.*)$", process, flags=re.MULTILINE))
            assert fields["Uid"].split() == [str(APP_UID)] * 4, (role, process.split()[0])
            assert fields["CapEff"] == fields["CapPrm"] == fields["CapBnd"] == "0000000000000000"
            assert fields["NoNewPrivs"] == "1"


def test_the_root_file_system_is_read_only_and_only_tmp_and_var_dir_are_writable(stack):
    for path in ("/probe", "/app/probe", "/opt/venv/probe", "/etc/probe"):
        result = stack.exec("web", "sh", "-c", f"echo x > {path}", check=False)
        assert result.returncode != 0, path
        assert "Read-only file system" in result.stderr, path
    assert stack.exec("web", "sh", "-c", "echo x > /tmp/probe && rm /tmp/probe").returncode == 0
    probe = f"{VAR_IN_CONTAINER}/probe"
    assert stack.exec("web", "sh", "-c", f"echo x > {probe} && rm {probe}").returncode == 0


def test_readyz_turns_ready_with_the_worker_heartbeat_and_the_healthcheck_follows(stack):
    """Before any worker runs, the HEALTHCHECK fails naming it; beat, the broker and the worker make it healthy."""
    assert stack.first_probe["exit"] == 1
    assert stack.first_probe["output"] == "unhealthy: /readyz answered 503, failing: worker"

    _wait_for(lambda: _status(stack, "/readyz") == 200, 180, "/readyz to answer 200", stack)
    checks = _readyz(stack)["checks"]
    assert all(checks[name]["ok"] for name in ("database", "cache", "broker", "worker")), checks
    assert checks["database"]["vendor"] == stack.database
    # Reported, not required here (see the fixture): NeverRan until beat's first save.
    assert checks["beat"]["required"] is False
    sys.stderr.write(f"\n/readyz on {stack.database}: {json.dumps(checks)}\n")

    assert _health(stack, "web") == {"exit": 0, "output": "healthy: /readyz answered 200"}
    worker = _health(stack, "worker")
    assert worker["exit"] == 0
    assert worker["output"].startswith("healthy: the worker process runs")


def test_pages_and_static_files_are_served_behind_the_tls_proxy_and_probes_are_not_redirected(stack):
    plain, _ = stack.get("/accounts/login/")
    assert plain.status == 301
    assert plain.getheader("Location") == f"https://{HOST}/accounts/login/"
    assert _status(stack, "/healthz") == 200  # SECURE_REDIRECT_EXEMPT: probes speak plain HTTP

    page, body = stack.get("/accounts/login/", {"X-Forwarded-Proto": "https"})
    assert page.status == 200
    assert "max-age=31536000" in page.getheader("Strict-Transport-Security")
    stylesheet = STYLESHEET.search(body.decode()).group(1)
    asset, asset_body = stack.get(f"/static/{stylesheet}", {"X-Forwarded-Proto": "https"})
    assert asset.status == 200 and asset_body
    assert "immutable" in asset.getheader("Cache-Control")


def test_the_posture_event_was_recorded_by_each_web_worker(stack):
    """Hook for the runtime posture (system.process_started): active once that action exists."""
    if POSTURE_ACTION not in Action.values:
        pytest.skip(f"{POSTURE_ACTION} is not an audit action in this tree yet")
    code = (
        "import json; from audit.models import AuditEvent; "
        f"print(json.dumps([e.context for e in AuditEvent.objects.filter(action={POSTURE_ACTION!r})]))"
    )
    events = json.loads(stack.exec("web", "python3", "/app/manage.py", "shell", "-c", code).stdout.splitlines()[-1])
    web = [event for event in events if event.get("role") == "web"]
    assert web, events
    for event in web:
        assert event["uid"] == APP_UID
        assert event["root_fs_writable"] is False
        assert event["cap_effective"] == [] and event["cap_bounding"] == []
        assert event["no_new_privs"] is True
        assert event["revision"] == stack.image.revision


def test_sighup_reaches_gunicorn_through_tini_and_reloads_its_workers(stack):
    def booted() -> int:
        return podman("logs", stack.containers["web"]).stderr.count("Booting worker with pid")

    before = booted()
    podman("kill", "--signal", "HUP", stack.containers["web"])
    _wait_for(lambda: booted() >= before + 2, 30, "gunicorn to boot new workers after SIGHUP", stack)
    assert _status(stack, "/healthz") == 200


def test_sigterm_stops_web_worker_beat_and_the_sealer_with_exit_status_0(stack):
    """tini forwards the stop signal, and each process (exec'd by the entrypoint) exits cleanly."""
    for role in ("sealer", "beat", "worker", "web"):
        started = time.monotonic()
        podman("stop", "--time", "30", stack.containers[role], timeout=60)
        [state] = json.loads(podman("inspect", stack.containers[role]).stdout)
        assert state["State"]["ExitCode"] == 0, role
        assert time.monotonic() - started < 25, role


# --- the HEALTHCHECK's choices, without a container -----------------------------------------------
def _healthcheck_module():
    spec = importlib.util.spec_from_file_location("image_healthcheck", PROJECT_DIR / "deploy/container/healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_asks_the_first_allowed_host_on_the_port_of_web_bind(monkeypatch):
    healthcheck = _healthcheck_module()
    monkeypatch.setenv("ALLOWED_HOSTS", "*.example.org, .console.example.org,other.example.org")
    monkeypatch.setenv("WEB_BIND", "0.0.0.0:9000,unix:/run/web.sock")
    assert healthcheck.probe_host() == "console.example.org"
    assert healthcheck.probe_address() == ("127.0.0.1", 9000)
    monkeypatch.setenv("WEB_BIND", "unix:/run/web.sock")
    with pytest.raises(ValueError, match="not a TCP address"):
        healthcheck.probe_address()
    monkeypatch.delenv("ALLOWED_HOSTS")
    monkeypatch.delenv("WEB_BIND")
    assert (healthcheck.probe_host(), healthcheck.probe_address()) == ("localhost", ("127.0.0.1", 8000))
