"""Start real servers for tests: Redis, and Celery workers and gunicorn that share the test database."""

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
