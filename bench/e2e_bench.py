"""The platform end to end against a minimal app, the way a user meets it (issue #17).

    make bench-e2e                        # or: .venv/bin/python bench/e2e_bench.py
    make bench-e2e ARGS="--quick"         # a short run (2 rounds of 3 s)
    .venv/bin/python bench/e2e_bench.py --rounds 6 --duration 10 --connections 4,16

It starts, in a new folder under ``var/`` (on disk: a durable database needs a real file system;
``--database sqlite`` runs both apps on the embedded default instead: SQLite files, kombu's
filesystem broker, per-process caches, no Redis):

- a PostgreSQL server with its durable defaults (``fsync``, ``synchronous_commit`` and
  ``full_page_writes`` on; printed), one database for the platform and one for the baseline;
- a Redis server (the Celery broker and result backend, the API cache, Django's cache);
- the platform with its production settings (``config.settings.production``), served by gunicorn
  with ``deploy/gunicorn.conf.py`` and 2 sync workers, a real Celery worker (default concurrency),
  Celery beat and the audit sealer process (``manage.py audit_sealer``, every process in
  ``AUDIT_SEAL_MODE=periodic``, as the compose stack runs it): nothing eager;
- the baseline in ``bench/e2e_baseline/`` (Django 5.2 + DRF, the same memory shape, header-key
  authentication, nothing else), served by gunicorn with the same server settings on the command line.

Then it loads both with ``wrk`` (Debian package), interleaved cell by cell for several rounds (the
order alternates each round so drift hits both alike): GET one 1 kB memory (v2, and v1, a
deprecated endpoint) and POST a 1 kB memory (v2), at each number of connections. It prints, per
round and cell, throughput, p50 and p99 of both and the ratios (platform / baseline), then the
median ratio per cell. Every response must be a 2xx: a cell with any other status stops the run.

The platform's throttles stay on and count every request; their limits are raised (printed) so
that a load generator on one key and one IP is not refused, which would measure 429s.

``--parts`` then runs the platform's GET with each switchable part off in turn (throttles, the
sealer, Celery hand-off to monitoring) and prints each part's share of the difference.
``--sealers`` runs the platform twice beside the baseline, interleaved: sealing in its own process
and sealing in a thread of every web worker (``AUDIT_SEAL_MODE=background``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ENCRYPTION_PURPOSES = ("field", "blind_index", "audit_chain", "backup", "audit_archive", "audit_checkpoint")
# High enough that one key and one IP at full speed are never refused; every request still counts.
BENCH_THROTTLE_RATES = {"api_key": "100000000/min", "user": "100000000/min", "ip": "100000000/min"}
CONTENT_BYTES = 1024


class BenchError(Exception):
    """A step of the set-up failed; the message says which."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BenchError(f"the process for port {port} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _run(command: list[str], *, env: dict | None = None, user: str | None = None) -> str:
    if user and os.getuid() == 0:
        command = ["runuser", "-u", user, "--", *command]
    result = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(command[:4])} ... failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


@contextmanager
def _process(command: list[str], *, env: dict | None, log: Path, user: str | None = None):
    """Start ``command`` in its own process group; stop the group on exit."""
    if user and os.getuid() == 0:
        command = ["runuser", "-u", user, "--", *command]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command, cwd=PROJECT_DIR, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def postgres_server(workdir: Path):
    """A durable PostgreSQL (its defaults: fsync, synchronous_commit, full_page_writes on); yield (url, settings)."""
    bindirs = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: [int(x) for x in p.parent.name.split(".")]
    )
    if not bindirs:
        raise BenchError("PostgreSQL server binaries not found (Debian package 'postgresql').")
    bindir = bindirs[-1]
    folder = workdir / "postgres"
    folder.mkdir()
    password = secrets.token_hex(16)
    (folder / "pwfile").write_text(password + "\n")
    if os.getuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(folder / "pwfile", "postgres", "postgres")
    _run(
        [str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "postgres", f"--pwfile={folder / 'pwfile'}",
         "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"],
        user="postgres",
    )  # fmt: skip
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c max_connections=100"
    _run([str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "server.log"), "-w", "-t", "60",
          "-o", options, "start"], user="postgres")  # fmt: skip
    try:
        import psycopg

        admin = {"host": "127.0.0.1", "port": port, "user": "postgres", "password": password}
        with psycopg.connect(dbname="postgres", autocommit=True, **admin) as connection:
            for name in ("platform", "baseline"):
                connection.execute(f'CREATE DATABASE "{name}"')
            durability = {
                name: connection.execute(f"SHOW {name}").fetchone()[0]
                for name in ("fsync", "synchronous_commit", "full_page_writes", "server_version")
            }
        yield f"postgres://postgres:{password}@127.0.0.1:{port}", durability
    finally:
        _run([str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop"], user="postgres")


@contextmanager
def redis_server(workdir: Path):
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed (Debian package 'redis-server').")
    port = free_port()
    folder = workdir / "redis"
    folder.mkdir()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]
    with _process(command, env=None, log=workdir / "redis.log") as process:
        wait_for_port(port, process=process)
        yield f"redis://127.0.0.1:{port}"


def database_of(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the PostgreSQL server, or of the file ``name``.sqlite3 in the folder."""
    return f"{server_url}/{name}.sqlite3" if server_url.startswith("sqlite:") else f"{server_url}/{name}"


@contextmanager
def sqlite_folder(workdir: Path):
    """The embedded default's databases: SQLite files (WAL, the platform's own settings) in one folder."""
    folder = workdir / "sqlite"
    folder.mkdir()
    yield f"sqlite:///{folder}", {"server_version": f"SQLite {sqlite3.sqlite_version}"}


def platform_env(database_url: str, redis_url: str, port: int, workdir: Path, overrides: dict) -> dict:
    """The production settings, every secret made for this run."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "CELERY_", "API_", "AUDIT_", "MONITORING_", "ENCRYPTION_"))
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_of(database_url, "platform"),
            "API_KEY_HASH_KEY": secrets.token_urlsafe(48),
            "ENCRYPTION_KEY_PROVIDER": "environment",
            "VAR_DIR": str(workdir / "var"),
            # wrk speaks plain HTTP to gunicorn as a TLS proxy would, saying so in X-Forwarded-Proto.
            "SECURE_PROXY_SSL": "true",
            "API_THROTTLE_RATES": json.dumps(BENCH_THROTTLE_RATES),
            "WEB_CONCURRENCY": "2",
            "WEB_BIND": f"127.0.0.1:{port}",
            "PYTHONPATH": str(PROJECT_DIR),
        }
    )
    if redis_url:  # else the embedded default: kombu's filesystem broker and per-process caches
        environment.update(
            {"CELERY_BROKER_URL": f"{redis_url}/0", "API_CACHE_URL": f"{redis_url}/1", "CACHE_URL": f"{redis_url}/2"}
        )
    for purpose in ENCRYPTION_PURPOSES:
        key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        environment[f"ENCRYPTION_{purpose.upper()}_KEYS"] = f"{purpose}-1:{key}"
    environment.update(overrides)
    return environment


def baseline_env(database_url: str) -> dict:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_"))}
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.e2e_baseline.settings",
            "DATABASE_URL": database_of(database_url, "baseline"),
            "PYTHONPATH": str(PROJECT_DIR),
        }
    )
    return environment


def gunicorn_baseline_command(port: int) -> list[str]:
    """The baseline under the server settings of deploy/gunicorn.conf.py, given on the command line."""
    return [
        PYTHON, "-m", "gunicorn", "bench.e2e_baseline.wsgi:application", "--workers", "2", "--worker-class", "sync",
        "--bind", f"127.0.0.1:{port}", "--chdir", str(PROJECT_DIR), "--timeout", "30", "--graceful-timeout", "30",
        "--no-sendfile", "--worker-tmp-dir", "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
        "--forwarded-allow-ips", "", "--access-logfile", "-", "--error-logfile", "-",
    ]  # fmt: skip


class App:
    def __init__(self, name: str, port: int, key: str, memory_id: int, context_id: int):
        self.name, self.port, self.key, self.memory_id, self.context_id = name, port, key, memory_id, context_id
        self.environment: dict = {}


@contextmanager
def platform(database_url: str, redis_url: str, workdir: Path, overrides: dict, label: str,
             seed: list[str] | None = None, pages: bool = False):  # fmt: skip
    """The platform as deployed; the first start migrates and runs ``seed`` (default: bench.e2e_seed).

    ``pages``: collect the static files first (production's manifest storage cannot render a page
    without them; the API needs none).
    """
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=workdir))
    overrides = dict(overrides)
    start_worker = not overrides.pop("_NO_WORKER", "")
    # Sealing: its own process (the deployment's way), a thread in every web worker, or neither
    # (only beat's minute task seals).
    no_sealer, sealer_thread = overrides.pop("_NO_SEALER", ""), overrides.pop("_SEALER_THREAD", "")
    sealer = "none" if no_sealer else "thread" if sealer_thread else "process"
    overrides.setdefault("AUDIT_SEAL_MODE", "background" if sealer == "thread" else "periodic")
    environment = platform_env(database_url, redis_url, port, folder, overrides)
    # One set of secrets for every platform run of the benchmark: the seeded key and memory need them.
    environment.update(json.loads((workdir / "platform-secrets.json").read_text()))
    (folder / "var").mkdir()
    seeded_file = workdir / "platform-seed.json"
    if not seeded_file.exists():
        _run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=environment)
        command = [PYTHON, *(seed or ["-m", "bench.e2e_seed"])]
        seeded_file.write_text(_run(command, env=environment).strip().splitlines()[-1])
    seed = json.loads(seeded_file.read_text())
    if pages:
        _run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"], env=environment)
    with ExitStack() as processes:
        worker = None
        if start_worker:
            command = [PYTHON, "-m", "celery", "-A", "config", "worker", "--loglevel=WARNING"]
            worker = processes.enter_context(_process(command, env=environment, log=folder / "worker.log"))
        processes.enter_context(
            _process([PYTHON, "-m", "celery", "-A", "config", "beat", "--loglevel=WARNING",
                      f"--schedule={folder / 'beat-schedule'}"], env=environment, log=folder / "beat.log")
        )  # fmt: skip
        if sealer == "process":
            processes.enter_context(
                _process([PYTHON, "manage.py", "audit_sealer"], env=environment, log=folder / "sealer.log")
            )
        web = processes.enter_context(
            _process([PYTHON, "-m", "gunicorn", "-c", str(PROJECT_DIR / "deploy" / "gunicorn.conf.py")],
                     env=environment, log=folder / "web.log")
        )  # fmt: skip
        wait_for_port(port, process=web)
        if worker is not None and worker.poll() is not None:
            raise BenchError(f"the Celery worker exited: {(folder / 'worker.log').read_text()[-2000:]}")
        app = App(label, port, seed["key"], seed["memory_id"], seed["context_id"])
        app.environment = environment  # what a management command against this platform needs
        yield app


@contextmanager
def baseline(database_url: str, workdir: Path):
    port = free_port()
    environment = baseline_env(database_url)
    key = "bk_" + secrets.token_urlsafe(32)
    seed = json.loads(_run([PYTHON, "-m", "bench.e2e_baseline.seed", key], env=environment).strip().splitlines()[-1])
    with _process(gunicorn_baseline_command(port), env=environment, log=workdir / "baseline-web.log") as web:
        wait_for_port(port, process=web)
        yield App("baseline", port, key, seed["memory_id"], seed["context_id"])


# --- load -----------------------------------------------------------------------------------------
def _lua(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for this text


def wrk_script(app: App, operation: str, workdir: Path) -> tuple[str, Path]:
    """The URL and the wrk Lua script of ``operation`` ("get-v2", "get-v1", "post-v2") on ``app``."""
    from bench.e2e_baseline.seed import content_of_size

    lines = [
        f'wrk.headers["Authorization"] = {_lua("Bearer " + app.key)}',
        'wrk.headers["X-Forwarded-Proto"] = "https"',
        'wrk.headers["Accept"] = "application/json"',
    ]
    if operation.startswith("get"):
        version = operation.split("-")[1]
        url = f"http://127.0.0.1:{app.port}/api/{version}/memories/{app.memory_id}/"
    else:
        url = f"http://127.0.0.1:{app.port}/api/v2/memories/"
        body = json.dumps(
            {"context_id": app.context_id, "content": content_of_size(CONTENT_BYTES), "source": "cli",
             "tags": [{"name": "bench"}, {"name": "load"}]}
        )  # fmt: skip
        lines += ['wrk.method = "POST"', f"wrk.body = {_lua(body)}", 'wrk.headers["Content-Type"] = "application/json"']
    script = workdir / f"{app.name}-{operation}.lua"
    script.write_text("\n".join(lines) + "\n")
    return url, script


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(url: str, script: Path, connections: int, duration: float) -> dict:
    threads = min(connections, 2)
    seconds = f"{max(1, round(duration))}s"
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", seconds, "--latency", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=False, timeout=duration + 60).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> dict:
    """Throughput, p50, p99 (seconds), non-2xx responses and socket errors from wrk's ``--latency`` output."""
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise BenchError(f"wrk printed no throughput:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    percentiles = dict(re.findall(r"^\s*(50|99)%\s+([\d.]+(?:us|ms|s|m))\s*$", output, re.MULTILINE))
    if set(percentiles) != {"50", "99"}:
        raise BenchError(f"wrk printed no latency distribution:\n{output}")
    return {
        "rps": float(match.group(1)),
        "p50": _seconds(percentiles["50"]),
        "p99": _seconds(percentiles["99"]),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def _probe(url: str, app: App) -> str:
    import urllib.error
    import urllib.request

    # The URL is built here, always http://127.0.0.1:PORT/...: no other scheme can reach urlopen.
    headers = {"Authorization": f"Bearer {app.key}", "X-Forwarded-Proto": "https"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return str(response.status)
    except urllib.error.HTTPError as error:
        return f"{error.code} {error.read()[:300]!r}"


def measure(apps: list[App], operations: list[str], connection_levels: list[int], rounds: int, duration: float,
            workdir: Path) -> dict:  # fmt: skip
    """Interleaved rounds; return {(operation, connections): [per-round {app name: result}]}."""
    scripts = {(app.name, op): wrk_script(app, op, workdir) for app in apps for op in operations}
    for app in apps:  # warm-up: workers import lazily, pools fill, caches warm
        for op in operations:
            url, script = scripts[(app.name, op)]
            result = run_wrk(url, script, max(connection_levels), min(duration, 2.0))
            if result["non_2xx"]:
                raise BenchError(
                    f"{app.name}: {op} answered {_probe(url, app)} ({result['non_2xx']} non-2xx in warm-up)"
                )
    table: dict = {}
    for number in range(rounds):
        order = apps if number % 2 == 0 else list(reversed(apps))
        for op in operations:
            for connections in connection_levels:
                results = {}
                for app in order:
                    url, script = scripts[(app.name, op)]
                    result = run_wrk(url, script, connections, duration)
                    if result["non_2xx"]:
                        raise BenchError(
                            f"{app.name}: {result['non_2xx']} non-2xx responses on {op} ({_probe(url, app)})"
                        )
                    results[app.name] = result
                table.setdefault((op, connections), []).append(results)
                _print_round(number + 1, op, connections, results, [app.name for app in apps])
    return table


def _print_round(number: int, op: str, connections: int, results: dict, names: list[str]) -> None:
    base, other = names[0], names[1:]
    b = results[base]
    cell = f"round {number:2d}  {op:8s} c={connections:<3d}"
    parts = [f"{cell} {base} {b['rps']:8.1f}/s p50 {b['p50'] * 1e3:6.2f} ms p99 {b['p99'] * 1e3:7.2f} ms"]
    for name in other:
        r = results[name]
        parts.append(
            f"| {name} {r['rps']:8.1f}/s p50 {r['p50'] * 1e3:6.2f} ms p99 {r['p99'] * 1e3:7.2f} ms"
            f" | throughput {r['rps'] / b['rps']:5.3f}x p50 {r['p50'] / b['p50']:5.2f}x p99 {r['p99'] / b['p99']:5.2f}x"
        )
    errors = [f"{name}: {results[name]['socket_errors']}" for name in names if results[name]["socket_errors"]]
    if errors:
        parts.append(f"(socket errors, {'; '.join(errors)})")
    print("  ".join(parts), flush=True)


def summarise(table: dict, base: str, names: list[str]) -> None:
    print("\nmedian over rounds (platform / baseline)")
    print(f"{'cell':14s} {'app':28s} {'throughput':>10s} {'p50':>6s} {'p99':>6s}   min..max throughput ratio")
    for (op, connections), rounds in table.items():
        for name in names:
            ratios = [r[name]["rps"] / r[base]["rps"] for r in rounds]
            p50 = statistics.median(r[name]["p50"] / r[base]["p50"] for r in rounds)
            p99 = statistics.median(r[name]["p99"] / r[base]["p99"] for r in rounds)
            print(
                f"{op + ' c=' + str(connections):14s} {name:28s} {statistics.median(ratios):9.3f}x {p50:5.2f}x"
                f" {p99:5.2f}x   {min(ratios):.3f}..{max(ratios):.3f}"
            )


# The switchable parts of the layer, each turned off by settings alone (``--parts``).
PARTS = {
    "throttles": {"API_THROTTLE_RATES": "{}"},
    "the sealer": {"_NO_SEALER": "1"},
    # Not a setting: the Celery worker is not started, so detections are published (LPUSH) but
    # nobody runs them on this machine's CPUs. Shows what real-time detection costs the web tier.
    "the detection worker": {"_NO_WORKER": "1"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds (default 5).")
    parser.add_argument("--duration", type=float, default=8.0, help="Seconds of load per app, cell and round.")
    parser.add_argument("--connections", default="4,16", help="Comma-separated connection counts (default 4,16).")
    parser.add_argument("--operations", default="get-v2,get-v1,post-v2", help="Of get-v2, get-v1, post-v2.")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s (a smoke run; noisier).")
    parser.add_argument(
        "--database",
        choices=["postgresql", "sqlite"],
        default="postgresql",
        help="durable PostgreSQL + Redis (default), or the embedded default: SQLite files, no Redis",
    )
    parser.add_argument("--parts", action="store_true", help="Then the GET with each switchable part off in turn.")
    parser.add_argument("--parts-only", action="store_true", help="Only the --parts runs (skip the main table).")
    parser.add_argument(
        "--sealers", action="store_true", help="Only GET and POST v2: the sealer as a process, then as a thread."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the work folder (logs) after the run.")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.rounds, arguments.duration = 2, 3.0
    try:
        connection_levels = [int(value) for value in arguments.connections.split(",") if value.strip()]
    except ValueError:
        parser.error("--connections takes comma-separated whole numbers, e.g. 4,16")
    operations = [value.strip() for value in arguments.operations.split(",") if value.strip()]
    unknown = sorted(set(operations) - {"get-v2", "get-v1", "post-v2"})
    if unknown or not operations:
        parser.error(f"unknown operations: {', '.join(unknown) or '(none)'}; choose from get-v2, get-v1, post-v2")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian package 'wrk'; make bench-e2e installs it).")
    sys.path.insert(0, str(PROJECT_DIR))
    var = PROJECT_DIR / "var"
    var.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-e2e-", dir=var))
    # Readable by the 'postgres' user, which runs the server in a subfolder; nothing secret is kept
    # at the top (the secrets file is written by this process only, and removed after the run).
    os.chmod(workdir, 0o755)  # noqa: S103
    try:
        run(arguments, workdir, connection_levels, operations)
    except BenchError as error:
        sys.exit(f"bench-e2e: {error} (logs in {workdir})")
    finally:
        if not arguments.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def run(arguments, workdir: Path, connection_levels: list[int], operations: list[str]) -> None:
    with ExitStack() as stack:
        if arguments.database == "sqlite":
            database_url, durability = stack.enter_context(sqlite_folder(workdir))
            redis_url = ""
            print(
                f"the embedded default: {durability['server_version']} files, kombu's filesystem broker, "
                f"per-process caches (no Redis); cpus {os.cpu_count()}; python {sys.version.split()[0]}"
            )
        else:
            database_url, durability = stack.enter_context(postgres_server(workdir))
            redis_url = stack.enter_context(redis_server(workdir))
            print(
                f"PostgreSQL {durability['server_version']} fsync={durability['fsync']} "
                f"synchronous_commit={durability['synchronous_commit']} "
                f"full_page_writes={durability['full_page_writes']}; "
                f"Redis; cpus {os.cpu_count()}; python {sys.version.split()[0]}"
            )
        broker = "the filesystem broker" if arguments.database == "sqlite" else "Redis"
        print(
            "platform: config.settings.production, gunicorn deploy/gunicorn.conf.py with 2 sync workers, "
            f"a Celery worker and beat on {broker} (not eager), the audit sealer process"
        )
        print(f"  throttles on, limits raised to {BENCH_THROTTLE_RATES['api_key']} per key, user and IP")
        print("baseline: bench/e2e_baseline (Django + DRF, header key), gunicorn with 2 sync workers")
        print(f"load: wrk, {arguments.rounds} rounds x {arguments.duration:g} s per app and cell, interleaved\n")
        secrets_file = workdir / "platform-secrets.json"
        first = platform_env(database_url, redis_url, 0, workdir, {})
        shared_names = ["SECRET_KEY", "API_KEY_HASH_KEY"] + [
            f"ENCRYPTION_{p.upper()}_KEYS" for p in ENCRYPTION_PURPOSES
        ]
        secrets_file.touch(mode=0o600)
        secrets_file.write_text(json.dumps({name: first[name] for name in shared_names}))
        base = stack.enter_context(baseline(database_url, workdir))
        if arguments.sealers:
            measure_sealers(arguments, base, database_url, redis_url, workdir, connection_levels)
            return
        if not arguments.parts_only:
            with ExitStack() as platform_stack:
                full = platform_stack.enter_context(platform(database_url, redis_url, workdir, {}, "platform"))
                table = measure(
                    [base, full], operations, connection_levels, arguments.rounds, arguments.duration, workdir
                )
            summarise(table, "baseline", ["platform"])
        if arguments.parts or arguments.parts_only:
            measure_parts(arguments, base, database_url, redis_url, workdir, connection_levels)


def measure_sealers(arguments, base: App, database_url: str, redis_url: str, workdir: Path, connection_levels):
    """The platform with its sealer as a process, then as a thread per web worker, each beside the baseline.

    One platform runs at a time (both share the database: a sealer process left running would
    seal the other's events), so each is compared with the baseline interleaved, and the two
    ratios are compared with each other.
    """
    print("the platform with the sealer in its own process, then in a thread of every web worker")
    medians = {}
    for label, overrides in (("sealer process", {}), ("sealer thread", {"_SEALER_THREAD": "1"})):
        with ExitStack() as stack:
            app = stack.enter_context(platform(database_url, redis_url, workdir, overrides, label.replace(" ", "-")))
            app.name = label
            table = measure(
                [base, app], ["get-v2", "post-v2"], connection_levels, arguments.rounds, arguments.duration, workdir
            )
        summarise(table, "baseline", [label])
        medians[label] = {
            cell: statistics.median(r[label]["rps"] / r["baseline"]["rps"] for r in rounds)
            for cell, rounds in table.items()
        }
    print("\nthroughput ratio to the baseline (median): sealer process vs sealer thread")
    for cell, process in medians["sealer process"].items():
        thread = medians["sealer thread"][cell]
        print(
            f"  {cell[0]} c={cell[1]}: process {process:.3f}x, thread {thread:.3f}x, "
            f"process / thread {process / thread:.2f}"
        )


def measure_parts(arguments, base: App, database_url: str, redis_url: str, workdir: Path, connection_levels) -> None:
    print("\nthe platform's GET (v2) with each switchable part off in turn (beat keeps running)")
    all_off = {key: value for part in PARTS.values() for key, value in part.items()}
    variants = {
        "platform": {},
        **{f"without {name}": settings for name, settings in PARTS.items()},
        "all parts off": all_off,
    }
    medians = {}
    for label, overrides in variants.items():
        with ExitStack() as stack:
            app = stack.enter_context(platform(database_url, redis_url, workdir, overrides, label.replace(" ", "-")))
            app.name = label
            table = measure([base, app], ["get-v2"], connection_levels, arguments.rounds, arguments.duration, workdir)
        medians[label] = {
            cell: statistics.median(r[label]["rps"] / r["baseline"]["rps"] for r in rounds)
            for cell, rounds in table.items()
        }
    print("\nthroughput ratio to the baseline (median), and each part's share of the platform's lost throughput")
    for cell in medians["platform"]:
        full, off = medians["platform"][cell], medians["all parts off"][cell]
        lost = 1.0 - full
        print(f"  {cell[0]} c={cell[1]}: platform {full:.3f}x, all parts off {off:.3f}x")
        for name in PARTS:
            gain = medians[f"without {name}"][cell] - full
            share = gain / lost if lost > 0 else 0.0
            print(f"    without {name}: {medians[f'without {name}'][cell]:.3f}x  (share of the loss {share:6.1%})")


if __name__ == "__main__":
    main()
