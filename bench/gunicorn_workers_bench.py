"""Ordinary pages through real gunicorn: threaded workers (the configuration's) beside synchronous ones.

    .venv/bin/python bench/gunicorn_workers_bench.py                    # SQLite
    scripts/with-postgres.sh .venv/bin/python bench/gunicorn_workers_bench.py

``deploy/gunicorn.conf.py`` uses threaded workers so that a response streaming longer than the
worker timeout (the audit export of a million events, about a minute) is not killed
(tests/deploy/test_gunicorn.py proves that part). This measures what the switch costs the
ordinary pages: on a scratch database, after ``migrate`` and ``collectstatic``, gunicorn with the
project's configuration and ``WEB_CONCURRENCY=2`` serves ``GET /accounts/login/`` (the whole
middleware stack, a template, a CSRF cookie) to ``--clients`` concurrent clients, first with
``--worker-class sync --threads 1`` then as configured, alternating for ``--rounds`` rounds.
Prints requests per second and the median and 95th-percentile latency of each, and the ratios threaded / synchronous.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from bench.support import scratch_database  # noqa: E402

PATH = "/accounts/login/"
KINDS = {"synchronous": "--worker-class sync --threads 1", "threaded": ""}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(port: int) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", PATH)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {PATH} answered {response.status}")
    finally:
        connection.close()
    return time.perf_counter() - started


def _serve_and_measure(env: dict, extra_args: str, *, clients: int, requests: int) -> dict:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_DIR / "deploy" / "gunicorn.conf.py")],
        cwd=PROJECT_DIR,
        env={**env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "GUNICORN_CMD_ARGS": extra_args},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(port)
                break
            except (OSError, RuntimeError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        for _ in range(20):  # warm both workers
            _get(port)
        latencies: list[float] = []
        lock = threading.Lock()
        per_client = requests // clients

        def client() -> None:
            mine = [_get(port) for _ in range(per_client)]
            with lock:
                latencies.extend(mine)

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p95": latencies[max(int(0.95 * len(latencies)) - 1, 0)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400, help="per round and kind")
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()

    description, cleanup = scratch_database("gunicorn-bench")
    var_dir = tempfile.mkdtemp(prefix="gunicorn-bench-var-")
    # This process too (the PostgreSQL scratch database's cleanup goes through Django).
    os.environ.update({"DJANGO_SETTINGS_MODULE": "config.settings.local", "VAR_DIR": var_dir})
    env = {
        **os.environ,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "LOG_LEVEL": "WARNING",
    }
    try:
        for command in (["migrate"], ["collectstatic", "--noinput"]):  # as a deployment does
            done = subprocess.run(
                [sys.executable, "manage.py", *command, "--verbosity", "0"], cwd=PROJECT_DIR, env=env,
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"{command[0]} failed: {done.stderr.strip().splitlines()[-1]}")
        results: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        for _ in range(options.rounds):
            for kind, extra_args in KINDS.items():
                results[kind].append(
                    _serve_and_measure(env, extra_args, clients=options.clients, requests=options.requests)
                )
    finally:
        cleanup()
        shutil.rmtree(var_dir, ignore_errors=True)

    print(f"GET {PATH} through gunicorn, 2 workers, {options.clients} clients, {description}")
    summary = {}
    for kind, rounds in results.items():
        summary[kind] = {key: statistics.median(r[key] for r in rounds) for key in ("rps", "p50", "p95")}
        figures = summary[kind]
        print(f"  {kind:12} {figures['rps']:7.1f} req/s   p50 {figures['p50']:6.1f} ms   p95 {figures['p95']:6.1f} ms")
    threaded, synchronous = summary["threaded"], summary["synchronous"]
    print(
        f"  threaded / synchronous: throughput {threaded['rps'] / synchronous['rps']:.2f}x, "
        f"p50 {threaded['p50'] / synchronous['p50']:.2f}x, p95 {threaded['p95'] / synchronous['p95']:.2f}x"
    )


if __name__ == "__main__":
    main()
