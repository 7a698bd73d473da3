"""Detection under sustained API reads: the backlog of the queue over time and the time to detection (issue #17).

    make bench-detection                                   # or: .venv/bin/python bench/detection_backlog_bench.py
    .venv/bin/python bench/detection_backlog_bench.py --duration 600 --modes batched
    .venv/bin/python bench/detection_backlog_bench.py --duration 60 --rate 120 --modes batched,one-by-one

Per mode it starts, in a new folder under ``var/`` (as ``bench/e2e_bench.py`` does): a durable
PostgreSQL (its defaults; printed) with a new database, Redis (broker, caches), the platform with
the production settings (``bench/detection_settings.py``) under gunicorn with 2 workers, a real
Celery worker with its default concurrency and beat: nothing eager.

The loading user's last hour is first filled with ``--prefill`` reads per second (copies of
their first read, spread over the hour; the state after an hour of sustained reads, without
waiting an hour). Then one API key reads one memory (``GET /api/v2/memories/<id>/``) for ``--duration`` seconds
from ``--connections`` keep-alive connections, as fast as the platform answers or at ``--rate``
reads per second. Every ``--probe-every`` seconds a fresh probe user reads their own memory
``--floor`` times (the bulk-read floor of this run), which must raise a ``bulk_read`` alert.
Every second it prints the reads served and the detection backlog: messages waiting in the broker
queue and those a worker holds (reserved, not acknowledged). At the end: the time to detection
of the probes (the alert's ``detection_seconds``: created minus the read that crossed the floor),
p50 and p95, how many were not detected by then, and how long the backlog took to drain.

Modes: ``batched`` (reads counted per user and interval, windows from minute buckets: the
default) and ``one-by-one`` (``MONITORING_DETECTION_BATCHING`` off: every read handed to the
worker alone and its window re-aggregated, the path before issue #17). Not part of ``make test``
or ``make bench``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from bench.e2e_bench import (  # noqa: E402
    PYTHON,
    BenchError,
    _process,
    _run,
    free_port,
    platform_env,
    postgres_server,
    redis_server,
    wait_for_port,
)

MODES = {"batched": "true", "one-by-one": "false"}


def parse_modes(text: str) -> list[str]:
    """The modes named in ``text`` (comma-separated), in order; a clear error for any other name."""
    modes = [value.strip() for value in text.split(",") if value.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown modes: {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}")
    return modes


def percentile(samples: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` 0.95 = p95) of ``samples``."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil(n * share), at least 1
    return ordered[int(rank) - 1]


def summary_line(mode: str, detections: list[float], missed: int, backlog_peak: int, reads: int, seconds: float,
                 drained_after: float | None) -> str:  # fmt: skip
    """One line of the final table."""
    if detections:
        times = (
            f"p50 {statistics.median(detections):7.2f} s  p95 {percentile(detections, 0.95):7.2f} s  "
            f"max {max(detections):7.2f} s"
        )
    else:
        times = "no probe detected"
    drained = f"{drained_after:6.1f} s" if drained_after is not None else "not drained"
    return (
        f"{mode:11s} reads {reads / seconds:7.1f}/s  backlog peak {backlog_peak:7d}  drained after load {drained}  "
        f"time to detection {times}  ({len(detections)} detected, {missed} not)"
    )


# --- load -------------------------------------------------------------------------------------
class Reader:
    """Keep-alive GETs of one memory with one key, from several threads; counts what was served."""

    def __init__(self, port: int, key: str, memory_id: int, connections: int, rate: float | None):
        self.port, self.key, self.memory_id = port, key, memory_id
        self.connections, self.rate = connections, rate
        self.served = 0
        self.failed: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> Reader:
        for number in range(self.connections):
            thread = threading.Thread(target=self._loop, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _loop(self, number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        interval = self.connections / self.rate if self.rate else 0.0
        due = time.monotonic() + interval * number / max(self.connections, 1)
        while not self._stop.is_set():
            if interval:
                pause = due - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                due += interval
            outcome = read_once(connection, self.key, self.memory_id)
            with self._lock:
                if outcome == "200":
                    self.served += 1
                else:
                    self.failed[outcome] = self.failed.get(outcome, 0) + 1
            if outcome not in ("200",):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.close()


def read_once(connection: http.client.HTTPConnection, key: str, memory_id: int) -> str:
    """GET one memory; the status as text, or the error's class."""
    try:
        connection.request(
            "GET",
            f"/api/v2/memories/{memory_id}/",
            headers={"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https", "Accept": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        return str(response.status)
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__


def probe(port: int, user: dict, reads: int) -> None:
    """A probe user's burst: ``reads`` GETs of their memory on one connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(reads):
            status = read_once(connection, user["key"], user["memory_id"])
            if status != "200":
                raise BenchError(f"probe {user['username']}: GET answered {status}")
    finally:
        connection.close()


# --- one mode -----------------------------------------------------------------------------------
@contextmanager
def platform(mode: str, database_url: str, redis_url: str, workdir: Path, arguments):
    """The platform on its own new database, seeded, with gunicorn, a Celery worker and beat."""
    import psycopg

    name = f"detection_{mode.replace('-', '_')}"
    with psycopg.connect(f"{database_url}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=workdir))
    (folder / "var").mkdir()
    environment = platform_env(
        database_url,
        redis_url,
        port,
        folder,
        {
            "DJANGO_SETTINGS_MODULE": "bench.detection_settings",
            "DATABASE_URL": f"{database_url}/{name}",
            "BENCH_DETECTION_BATCHING": MODES[mode],
            "BENCH_BULK_READ_FLOOR": str(arguments.floor),
            "LOG_LEVEL": "WARNING",
        },
    )
    _run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=environment)
    seed = json.loads(
        _run([PYTHON, "-m", "bench.detection_seed", str(arguments.probes)], env=environment).strip().splitlines()[-1]
    )
    with ExitStack() as processes:
        worker = processes.enter_context(
            _process([PYTHON, "-m", "celery", "-A", "config", "worker", "--loglevel=WARNING"], env=environment,
                     log=folder / "worker.log")
        )  # fmt: skip
        processes.enter_context(
            _process([PYTHON, "-m", "celery", "-A", "config", "beat", "--loglevel=WARNING",
                      f"--schedule={folder / 'beat-schedule'}"], env=environment, log=folder / "beat.log")
        )  # fmt: skip
        web = processes.enter_context(
            _process([PYTHON, "-m", "gunicorn", "-c", str(PROJECT_DIR / "deploy" / "gunicorn.conf.py")],
                     env=environment, log=folder / "web.log")
        )  # fmt: skip
        wait_for_port(port, process=web)
        if worker.poll() is not None:
            raise BenchError(f"the Celery worker exited: {(folder / 'worker.log').read_text()[-2000:]}")
        yield port, seed, f"{database_url}/{name}"


def backlog(client) -> tuple[int, int]:
    """(messages waiting in the broker's queue, messages a worker holds unacknowledged)."""
    return client.llen("celery"), client.hlen("unacked")


def detection_times(database: str, usernames: list[str]) -> dict[str, float]:
    import psycopg

    with psycopg.connect(database) as connection:
        rows = connection.execute(
            "SELECT subject, detection_seconds FROM monitoring_alert"
            " WHERE detector = 'bulk_read' AND subject = ANY(%s)",
            [usernames],
        ).fetchall()
    return {subject: seconds for subject, seconds in rows}


def prefill(database: str, username: str, per_second: float) -> int:
    """Copies of the user's first read, spread over the hour before now: an hour of sustained reads.

    The copies carry negative sequence numbers, so the sealer leaves them alone (their chain is
    not what this measures); the detectors count them like any read. Returns how many.
    """
    import psycopg

    count = int(per_second * 3600)
    if count <= 0:
        return 0
    with psycopg.connect(database) as connection:
        columns = [
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_auditevent'"
                " AND column_name NOT IN ('id', 'uuid', 'sequence', 'timestamp') ORDER BY ordinal_position"
            ).fetchall()
        ]
        names = ", ".join(f'"{column}"' for column in columns)
        copied = ", ".join(f'e."{column}"' for column in columns)
        connection.execute(
            f"INSERT INTO audit_auditevent ({names}, uuid, sequence, timestamp)"  # noqa: S608 (names from the catalogue)
            f" SELECT {copied}, gen_random_uuid(), -g, now() - (g * 3600.0 / %s) * interval '1 second'"
            " FROM audit_auditevent e, generate_series(1, %s) g"
            " WHERE e.id = (SELECT min(id) FROM audit_auditevent WHERE action = 'memory.read' AND actor_username = %s)",
            [count, count, username],
        )
        connection.execute("ANALYZE audit_auditevent")
    return count


def run_mode(mode: str, database_url: str, redis_url: str, workdir: Path, arguments) -> str:
    import redis

    client = redis.Redis.from_url(f"{redis_url}/0")
    client.flushdb()  # the broker's queue of an earlier mode
    with platform(mode, database_url, redis_url, workdir, arguments) as (port, seed, database):
        load = seed["load"]
        status = read_once(http.client.HTTPConnection("127.0.0.1", port, timeout=30), load["key"], load["memory_id"])
        if status != "200":
            raise BenchError(f"{mode}: the first GET answered {status}")
        if arguments.prefill:
            time.sleep(1.0)  # the first read's audit event is committed
            copies = prefill(database, load["username"], arguments.prefill)
            print(f"\n{mode}: prefilled {copies:,} reads of the loading user over the last hour "
                  f"({arguments.prefill:g}/s, as after an hour of sustained reads)")  # fmt: skip
        print(f"\n== {mode}: {arguments.connections} connections, "
              f"{f'{arguments.rate:g} reads/s' if arguments.rate else 'as fast as served'}, {arguments.duration:g} s, "
              f"a probe of {arguments.floor} reads every {arguments.probe_every:g} s")  # fmt: skip
        print(f"{'t (s)':>6s} {'reads':>8s} {'reads/s':>8s} {'queued':>8s} {'held':>6s}")
        reader = Reader(port, load["key"], load["memory_id"], arguments.connections, arguments.rate).start()
        started = time.monotonic()
        probes, peak, last_served = [], 0, 0
        next_probe = started + arguments.probe_every / 2
        try:
            while (now := time.monotonic()) - started < arguments.duration:
                if now >= next_probe and len(probes) < len(seed["probes"]):
                    user = seed["probes"][len(probes)]
                    threading.Thread(target=probe, args=(port, user, arguments.floor), daemon=True).start()
                    probes.append(user["username"])
                    next_probe += arguments.probe_every
                time.sleep(1.0)
                queued, held = backlog(client)
                peak = max(peak, queued + held)
                served = reader.served
                print(f"{time.monotonic() - started:6.0f} {served:8d} {served - last_served:8d} {queued:8d} {held:6d}",
                      flush=True)  # fmt: skip
                last_served = served
        finally:
            reader.stop()
        seconds = time.monotonic() - started
        if reader.failed:
            print(f"   responses other than 200: {reader.failed}")
        stopped, drained_after = time.monotonic(), None
        while time.monotonic() - stopped < arguments.drain_timeout:
            queued, held = backlog(client)
            if queued + held == 0:
                drained_after = time.monotonic() - stopped
                break
            time.sleep(0.5)
        time.sleep(min(arguments.drain_timeout, 3.0))  # the last batch tasks are due an interval later
        found = detection_times(database, probes)
        detections = [found[name] for name in probes if name in found]
        missed = len(probes) - len(detections)
        return summary_line(mode, detections, missed, peak, reader.served, seconds, drained_after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds of sustained reads per mode (60).")
    parser.add_argument("--connections", type=int, default=4, help="Keep-alive connections of the load (4).")
    parser.add_argument("--rate", type=float, default=None, help="Reads per second in all (default: as served).")
    parser.add_argument("--modes", default="batched,one-by-one", help="Of batched, one-by-one (both).")
    parser.add_argument("--floor", type=int, default=20, help="The bulk-read floor, a probe's reads (20).")
    parser.add_argument("--probe-every", type=float, default=10.0, help="Seconds between probes (10).")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="Seconds to wait for the backlog (120).")
    parser.add_argument(
        "--prefill", type=float, default=100.0,
        help="Reads per second of the loading user already in the last hour before the load (100; 0: none).",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="Keep the work folder (logs) after the run.")
    arguments = parser.parse_args()
    try:
        modes = parse_modes(arguments.modes)
    except ValueError as error:
        parser.error(str(error))
    if arguments.duration <= 0 or arguments.connections < 1 or arguments.floor < 1 or arguments.probe_every <= 0:
        parser.error("--duration, --probe-every, --connections and --floor must be positive")
    if arguments.rate is not None and arguments.rate <= 0:
        parser.error("--rate must be positive")
    if arguments.prefill < 0:
        parser.error("--prefill must be 0 or more")
    arguments.probes = int(arguments.duration // arguments.probe_every) + 1
    var = PROJECT_DIR / "var"
    var.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-detection-", dir=var))
    os.chmod(workdir, 0o755)  # noqa: S103  (the 'postgres' user runs the server in a subfolder)
    try:
        with ExitStack() as stack:
            database_url, durability = stack.enter_context(postgres_server(workdir))
            redis_url = stack.enter_context(redis_server(workdir))
            print(
                f"PostgreSQL {durability['server_version']} fsync={durability['fsync']} "
                f"synchronous_commit={durability['synchronous_commit']}; Redis; cpus {os.cpu_count()}; "
                "platform: production settings, gunicorn (2 workers), a Celery worker (default concurrency) "
                "and beat (not eager)"
            )
            lines = [run_mode(mode, database_url, redis_url, workdir, arguments) for mode in modes]
        print("\nsummary (time to detection: alert created minus the probe's read that crossed the floor)")
        for line in lines:
            print(line)
    except BenchError as error:
        sys.exit(f"bench-detection: {error} (logs in {workdir})")
    finally:
        if not arguments.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
