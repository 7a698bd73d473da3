"""Start real servers for tests: Redis, moto's AWS API server, gunicorn, and Celery workers.

The workers and gunicorn share the test database."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    """Return a free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 15.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def redis_server():
    """Run a private ``redis-server`` on a free loopback port; yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs Debian's redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ninaivalaigal-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


# What boto3 needs against moto's server, and nothing that could reach AWS or this machine's own AWS
# configuration: fixed test credentials, no shared config files, and no instance metadata service
# (boto3 would otherwise ask the link-local address 169.254.169.254 for credentials).
AWS_TEST_REGION = "eu-west-1"
AWS_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing-access-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-access-key-0123456789",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Variables of boto3's chain that the tests never inherit from the machine.
AWS_INHERITED_VARIABLES = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER",
)  # fmt: skip


@contextmanager
def moto_server():
    """Run moto's AWS API server (``python -m moto.server``) on a free loopback port; yield its URL.

    A real HTTP server that speaks the AWS APIs (Secrets Manager, IAM...) with their error codes;
    ``moto_reset`` empties it between tests, ``moto_enforce_iam`` turns its IAM checks on.
    """
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in AWS_INHERITED_VARIABLES}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**env, **AWS_TEST_ENVIRONMENT},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            try:
                wait_for_port(port, timeout=60)
            except TimeoutError:
                log.seek(0)
                output = log.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"moto_server did not start: {output}") from None
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _moto_post(url: str, path: str, body: bytes = b"") -> None:
    import urllib.request

    # Not a form: moto reads the raw body, which Flask hides for form content types.
    request = urllib.request.Request(
        f"{url}{path}", data=body, method="POST", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def moto_reset(url: str) -> None:
    """Empty every store of the moto server at ``url`` and turn its IAM checks off."""
    _moto_post(url, "/moto-api/reset")
    _moto_post(url, "/moto-api/reset-auth", b"inf")


def moto_enforce_iam(url: str) -> None:
    """From now on the moto server checks every request's signature and IAM permissions."""
    _moto_post(url, "/moto-api/reset-auth", b"0")


def aws_client(url: str, service: str, **credentials: str):
    """A boto3 client of ``service`` on the moto server at ``url`` (the test credentials by default)."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=credentials.get("access_key_id", AWS_TEST_ENVIRONMENT["AWS_ACCESS_KEY_ID"]),
        aws_secret_access_key=credentials.get("secret_access_key", AWS_TEST_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"]),
        region_name=AWS_TEST_REGION,
    ).client(service, endpoint_url=url)


def test_database_url() -> str:
    """Return a DATABASE_URL naming the database the running tests use (test DB, not the real one)."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    return (
        f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST']}:"
        f"{settings_dict['PORT']}/{settings_dict['NAME']}"
    )


@contextmanager
def celery_worker(*, broker_url: str, result_backend: str, extra_env: dict | None = None):
    """Run a real ``celery worker`` process on ``broker_url`` against the test database."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": test_database_url(),
        "DATABASE_POOL": "false",
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": result_backend,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "TEST_VAR_DIR": str(settings.VAR_DIR),
        **(extra_env or {}),
    }
    log_path = Path(settings.VAR_DIR) / f"worker-{free_port()}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode not in (0, -15):
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])


def filesystem_broker(base: Path) -> tuple[str, dict]:
    """Return a filesystem broker URL and its transport options under ``base`` (folders created)."""
    folder = base / "broker"
    processed = base / "processed"
    folder.mkdir(parents=True, exist_ok=True)
    processed.mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(processed),
        "control_folder": str(base / "control"),
    }


# The test settings with the production static storage (tests/deploy/settings.py).
SERVED_SETTINGS_MODULE = "tests.deploy.settings"


def served_env(**overrides: str) -> dict:
    """The environment of a process serving the test database with ``SERVED_SETTINGS_MODULE``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SERVED_SETTINGS_MODULE,
        "DATABASE_URL": test_database_url(),
        "DATABASE_POOL": "false",
        "TEST_VAR_DIR": str(settings.VAR_DIR),
        "LOG_FORMAT": "json",
        **overrides,
    }


@dataclass
class WebServer:
    """A running gunicorn: its master process, base URL and log files (access: stdout, errors: stderr)."""

    process: subprocess.Popen
    port: int
    access_log: Path
    error_log: Path

    def access_lines(self) -> list[str]:
        return self.access_log.read_text(errors="replace").splitlines()

    def error_text(self) -> str:
        return self.error_log.read_text(errors="replace")


@contextmanager
def gunicorn_server(*, extra_env: dict | None = None, timeout: float = 30.0):
    """Run real gunicorn with deploy/gunicorn.conf.py on a free loopback port against the test database.

    The static files must be collected first (``manage.py collectstatic`` with ``served_env()``).
    """
    port = free_port()
    env = served_env(WEB_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", WEB_GRACEFUL_TIMEOUT="10",
                     **(extra_env or {}))
    access_log = Path(settings.VAR_DIR) / f"gunicorn-{port}.access.log"
    error_log = Path(settings.VAR_DIR) / f"gunicorn-{port}.error.log"
    with open(access_log, "wb") as stdout, open(error_log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_DIR / "deploy" / "gunicorn.conf.py")],
            cwd=PROJECT_DIR,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    server = WebServer(process=process, port=port, access_log=access_log, error_log=error_log)
    try:
        wait_for_port(port, timeout=timeout)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.returncode not in (0, -15):
            sys.stderr.write(server.error_text()[-4000:])
