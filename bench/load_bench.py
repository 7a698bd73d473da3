"""The loopback load test of issue #14: N simulated people for T minutes, then proof that nothing was lost.

    make bench-load                              # 200 people for 10 minutes
    make bench-load ARGS="--quick"               # 20 people for 1 minute
    .venv/bin/python bench/load_bench.py --users 100 --minutes 5 [--admins 5] [--keep]

It starts, as ``bench/e2e_bench.py`` does (and with its code), a durable PostgreSQL, Redis, and the
platform with ``config.settings.production`` under gunicorn (``deploy/gunicorn.conf.py``, 2 workers),
a real Celery worker and beat; the API's throttles keep their default rates. The platform trusts one
proxy (``AUDIT_TRUSTED_PROXY_COUNT=1``) and each simulated person comes from its own address, as
behind a reverse proxy. ``bench/load_seed.py`` makes the people; ``bench/load_locustfile.py`` is
what they do (locust, headless, in a subprocess): sign in through the real login page with a TOTP
code, read and write memories through the API with their keys, delete them with signed requests,
view the console's dashboard, alerts and audit events; one scripted burst of failed logins.

It prints requests/s and p50/p99 per kind of request and the errors (the goal: no 5xx), then checks
that nothing was lost, and exits 1 if a check fails:

- the audit events recorded during the run, per action, equal what the completed operations counted
  on the client side should have produced (``EXPECTED_EVENTS``); ``api.key_used``, recorded at most
  once a minute per key, lies between one per key used and one per key and started minute;
  anything else recorded must be background work (``BACKGROUND_ACTIONS``);
- ``manage.py audit_verify`` verifies the whole chain;
- the alerts raised during the run are exactly those the traffic should raise: one ``brute_force``
  alert on ``load-victim``, from the burst.

The traffic is paced below the detectors' thresholds for a normal person (``api_key_rate``: 100 key
uses in 5 minutes; ``bulk_read``: 200 reads in an hour; ``new_device``: each person keeps one
address and browser), so an alert beyond the burst's is a finding, not noise.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from bench import e2e_bench  # noqa: E402
from bench.e2e_bench import PYTHON, BenchError  # noqa: E402

# The API's throttle rates as api/conf.py sets them by default (tests/test_load_bench.py checks):
# the load runs with the limits a deployment has, each person on its own key and address.
DEFAULT_THROTTLE_RATES = {"api_key": "1200/min", "user": "600/min", "ip": "1800/min"}
KEY_USE_INTERVAL_SECONDS = 60  # API_KEY_LAST_USED_INTERVAL's default: one api.key_used per key and minute

# The audit events one completed operation of each kind produces (the ledger's kinds).
EXPECTED_EVENTS: dict[str, dict[str, int]] = {
    "login": {"auth.mfa_verify_succeeded": 1, "auth.login_succeeded": 1, "auth.session_created": 1},
    "read": {"memory.read": 1},
    "write": {"memory.created": 1},
    "signed_delete": {"memory.deleted": 1},
    "console_page": {},
    "failed_login": {"auth.login_failed": 1},
}
# Recorded by the platform's own work during a run, whatever the traffic: not counted per request.
BACKGROUND_ACTIONS = frozenset({"system.audit_head_published", "system.audit_verified", "system.process_started"})
# The alerts the traffic should raise: (detector, subject).
EXPECTED_ALERTS = Counter({("brute_force", "load-victim"): 1})


def expected_events(ledger: dict) -> Counter:
    """The audit events, per action, that the ledger's completed operations should have produced."""
    expected: Counter = Counter()
    for kind, entry in ledger.items():
        if kind not in EXPECTED_EVENTS:
            raise BenchError(f"the ledger has an operation kind the benchmark does not know: {kind!r}")
        for action, count in EXPECTED_EVENTS[kind].items():
            expected[action] += count * entry["ok"]
    expected["monitoring.alert_raised"] = sum(EXPECTED_ALERTS.values())  # each alert records its raising
    return expected


def compare_events(expected: Counter, observed: Counter) -> list[str]:
    """Every difference between the expected and observed events (api.key_used and background aside)."""
    problems = []
    for action in sorted(set(expected) | set(observed)):
        if action == "api.key_used" or action in BACKGROUND_ACTIONS:
            continue
        if expected[action] != observed[action]:
            problems.append(f"{action}: expected {expected[action]}, recorded {observed[action]}")
    return problems


def key_use_bounds(keys_used: int, seconds: float) -> tuple[int, int]:
    """At least one ``api.key_used`` per key used; at most one per key and started interval (+1 at the edges)."""
    return keys_used, keys_used * (math.ceil(seconds / KEY_USE_INTERVAL_SECONDS) + 1)


def compare_alerts(observed: Counter) -> list[str]:
    problems = []
    for key in sorted(set(EXPECTED_ALERTS) | set(observed)):
        if EXPECTED_ALERTS[key] != observed[key]:
            problems.append(f"alert {key[0]} on {key[1]}: expected {EXPECTED_ALERTS[key]}, raised {observed[key]}")
    return problems


def parse_locust_stats(text: str) -> dict[str, dict]:
    """Per request name (and "Aggregated"): requests, failures, requests/s, p50 and p99 in ms, from locust's CSV."""
    rows = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = row["Name"]
        if not name:
            continue

        def number(column: str, row=row) -> float:
            value = row.get(column, "")
            return float(value) if value not in ("", "N/A") else float("nan")

        rows[name] = {
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "rps": number("Requests/s"),
            "p50": number("50%"),
            "p99": number("99%"),
        }
    if "Aggregated" not in rows:
        raise BenchError("locust wrote no statistics (its log is in the work folder)")
    return rows


def server_errors(ledger: dict) -> int:
    """Answers of 500 and above, and connections that got no answer (status 0), over every kind."""
    return sum(
        count
        for entry in ledger.values()
        for status, count in entry["unexpected"].items()
        if int(status) >= 500 or int(status) == 0
    )


def format_stats(stats: dict[str, dict]) -> list[str]:
    lines = [f"{'request':26s} {'count':>8s} {'failed':>7s} {'req/s':>7s} {'p50 ms':>8s} {'p99 ms':>8s}"]
    for name in sorted(stats, key=lambda name: (name == "Aggregated", name)):
        row = stats[name]
        lines.append(
            f"{name:26s} {row['requests']:8d} {row['failures']:7d} {row['rps']:7.1f} "
            f"{row['p50']:8.0f} {row['p99']:8.0f}"
        )
    return lines


# --- the platform's database and broker, read from outside ---------------------------------------
def _database(app) -> str:
    return app.environment["DATABASE_URL"].replace("postgres://", "postgresql://", 1)


def _query(app, sql: str, parameters: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(_database(app), autocommit=True) as connection:
        return connection.execute(sql, parameters).fetchall()


def settle(app, redis_url: str, *, since_sql: str = "now()", timeout: float = 600.0) -> None:
    """Wait until the worker has drained the broker and a detection sweep begun after ``since_sql`` has finished."""
    import redis

    client = redis.Redis.from_url(f"{redis_url}/0")
    started = _query(app, f"SELECT {since_sql}")[0][0]
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        busy = client.llen("celery") or client.hlen("unacked")
        swept = _query(
            app,
            "SELECT count(*) FROM monitoring_jobrun WHERE task_name = 'monitoring.detection_sweep' "
            "AND started_at > %s AND finished_at IS NOT NULL",
            (started,),
        )[0][0]
        if busy or not swept:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2.0:
            return
        time.sleep(1.0)
    raise BenchError(f"the worker did not catch up within {timeout:.0f} s (queue or sweep)")


def snapshot(app) -> dict:
    audit_id, alert_id = _query(
        app,
        "SELECT coalesce(max(id), 0) FROM audit_auditevent UNION ALL SELECT coalesce(max(id), 0) FROM monitoring_alert",
    )
    return {"audit_id": audit_id[0], "alert_id": alert_id[0]}


def recorded_since(app, mark: dict) -> tuple[Counter, Counter, int]:
    """(events per action, alerts per (detector, subject), keys used) after ``mark``."""
    events = Counter(
        dict(
            _query(
                app, "SELECT action, count(*) FROM audit_auditevent WHERE id > %s GROUP BY action", (mark["audit_id"],)
            )
        )  # fmt: skip
    )
    alerts = Counter(
        {
            (detector, subject): count
            for detector, subject, count in _query(
                app,
                "SELECT detector, subject, count(*) FROM monitoring_alert WHERE id > %s GROUP BY detector, subject",
                (mark["alert_id"],),
            )
        }  # fmt: skip
    )
    keys = _query(
        app,
        "SELECT count(DISTINCT api_key_id) FROM audit_auditevent WHERE id > %s AND action = 'api.key_used'",
        (mark["audit_id"],),
    )[0][0]
    return events, alerts, keys


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# --- the run ---------------------------------------------------------------------------------------
def run_locust(app, arguments, workdir: Path, users_file: Path) -> tuple[dict, dict, int]:
    ledger_file, prefix = workdir / "ledger.json", workdir / "locust"
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_"))},
        "PYTHONPATH": str(PROJECT_DIR),
        "LOAD_USERS_FILE": str(users_file),
        "LOAD_LEDGER_FILE": str(ledger_file),
        "LOAD_ADMINS": str(arguments.admins),
        "LOAD_BURST_AFTER_SECONDS": str(arguments.burst_after),
    }
    total = arguments.users + arguments.admins + 1  # the API people, the console users, the attacker
    command = [
        PYTHON, "-m", "locust", "-f", str(PROJECT_DIR / "bench" / "load_locustfile.py"), "--headless",
        "--users", str(total), "--spawn-rate", str(arguments.spawn_rate), "--run-time", f"{int(arguments.seconds)}s",
        "--host", f"http://127.0.0.1:{app.port}", "--csv", str(prefix), "--only-summary", "--stop-timeout", "30",
        "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]  # fmt: skip
    with open(workdir / "locust.log", "wb") as log:
        result = subprocess.run(command, cwd=PROJECT_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                check=False, timeout=arguments.seconds + 300)  # fmt: skip
    if result.returncode != 0 or not ledger_file.exists():
        tail = (workdir / "locust.log").read_text(errors="replace")[-3000:]
        raise BenchError(f"locust exited with status {result.returncode}:\n{tail}")
    stats = parse_locust_stats(Path(f"{prefix}_stats.csv").read_text())
    written = json.loads(ledger_file.read_text())
    return stats, written["operations"], written["keys_used"]


def run(arguments, workdir: Path) -> int:
    users_file = workdir / "load-users.json"
    with ExitStack() as stack:
        database_url, durability = stack.enter_context(e2e_bench.postgres_server(workdir))
        redis_url = stack.enter_context(e2e_bench.redis_server(workdir))
        print(
            f"PostgreSQL {durability['server_version']} fsync={durability['fsync']} "
            f"synchronous_commit={durability['synchronous_commit']}; Redis; cpus {os.cpu_count()}; "
            f"python {sys.version.split()[0]}"
        )
        print(
            "platform: config.settings.production, gunicorn deploy/gunicorn.conf.py with 2 workers, a Celery worker "
            "and beat on Redis (not eager); default API throttles; one trusted proxy"
        )
        first = e2e_bench.platform_env(database_url, redis_url, 0, workdir, {})
        shared = ["SECRET_KEY", "API_KEY_HASH_KEY"] + [
            f"ENCRYPTION_{p.upper()}_KEYS" for p in e2e_bench.ENCRYPTION_PURPOSES
        ]
        secrets_file = workdir / "platform-secrets.json"
        secrets_file.touch(mode=0o600)
        secrets_file.write_text(json.dumps({name: first[name] for name in shared}))
        overrides = {"API_THROTTLE_RATES": json.dumps(DEFAULT_THROTTLE_RATES), "AUDIT_TRUSTED_PROXY_COUNT": "1"}
        seed = ["-m", "bench.load_seed", str(arguments.users), str(arguments.admins), str(users_file)]
        started = time.monotonic()
        app = stack.enter_context(
            e2e_bench.platform(database_url, redis_url, workdir, overrides, "platform", seed, pages=True)
        )
        print(f"seeded {arguments.users} API users, {arguments.admins} console users and load-victim; "
              f"platform up in {time.monotonic() - started:.0f} s")  # fmt: skip
        settle(app, redis_url)
        mark = snapshot(app)
        print(
            f"load: locust, {arguments.users} API users + {arguments.admins} console users + 1 attacker, "
            f"{arguments.seconds / 60:g} min (spawn {arguments.spawn_rate}/s), "
            f"burst after {arguments.burst_after:g} s; load average before {load_average()}",
            flush=True,
        )
        began = time.monotonic()
        stats, ledger, keys_used = run_locust(app, arguments, workdir, users_file)
        elapsed = time.monotonic() - began
        print(f"load average at the end {load_average()}\n")
        print("\n".join(format_stats(stats)))
        print(f"\nrequests/s over the run: {stats['Aggregated']['requests'] / elapsed:.1f} ({elapsed:.0f} s)")
        print("completed operations (client side): " + ", ".join(f"{k} {v['ok']}" for k, v in sorted(ledger.items())))
        unexpected = {kind: entry["unexpected"] for kind, entry in ledger.items() if entry["unexpected"]}
        errors = server_errors(ledger)
        print(f"unexpected statuses: {unexpected or 'none'}; server errors (5xx or no answer): {errors}")

        caught_up = time.monotonic()
        settle(app, redis_url)
        print(f"worker caught up {time.monotonic() - caught_up:.0f} s after the load (queue drained, a sweep since)")
        events, alerts, keys = recorded_since(app, mark)
        problems = compare_events(expected_events(ledger), events)
        low, high = key_use_bounds(keys_used, elapsed)
        if not low <= events["api.key_used"] <= high or keys != keys_used:
            problems.append(
                f"api.key_used: {events['api.key_used']} recorded for {keys} keys, expected {low}..{high} for "
                f"the {keys_used} keys that completed a request"
            )
        unknown = sorted(set(events) - set(expected_events(ledger)) - BACKGROUND_ACTIONS - {"api.key_used"})
        problems += [f"{action}: {events[action]} recorded, produced by no operation" for action in unknown]
        problems += compare_alerts(alerts)
        print("\naudit events recorded during the run, per action (expected from the client's counts):")
        expected = expected_events(ledger)
        for action in sorted(set(events) | set(expected)):
            want = "background" if action in BACKGROUND_ACTIONS else (
                f"{low}..{high}" if action == "api.key_used" else str(expected[action]))  # fmt: skip
            print(f"  {action:32s} {events[action]:8d}  (expected {want})")
        print(
            "alerts raised during the run: " + (", ".join(f"{d} on {s} x{n}" for (d, s), n in alerts.items()) or "none")
        )
        verify = subprocess.run([PYTHON, "manage.py", "audit_verify", "--no-publish", "--no-progress"], cwd=PROJECT_DIR,
                                env=app.environment, capture_output=True, text=True, check=False)  # fmt: skip
        print(f"audit_verify: exit {verify.returncode}: {(verify.stdout + verify.stderr).strip().splitlines()[-1:]}")
        if verify.returncode != 0:
            problems.append("audit_verify failed")
        if errors:
            problems.append(f"{errors} server errors")
        print(
            "\n"
            + ("NOTHING LOST: every check passed" if not problems else "CHECKS FAILED:\n  " + "\n  ".join(problems))
        )
        return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200, help="Simulated API users (default 200).")
    parser.add_argument("--minutes", type=float, default=10.0, help="Length of the load (default 10).")
    parser.add_argument("--admins", type=int, default=None, help="Console users (default: users / 20, at least 1).")
    parser.add_argument(
        "--spawn-rate", type=float, default=None, help="People started per second (default: all in 30 s)."
    )
    parser.add_argument("--burst-after", type=float, default=None, help="Seconds before the burst (default: a third).")
    parser.add_argument("--quick", action="store_true", help="20 users for 1 minute (a smoke run).")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder (logs) after the run.")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.users, arguments.minutes = 20, 1.0
    if arguments.users < 1 or arguments.minutes <= 0:
        parser.error("--users must be 1 or more and --minutes more than 0")
    arguments.admins = max(1, arguments.users // 20) if arguments.admins is None else arguments.admins
    arguments.seconds = arguments.minutes * 60
    arguments.spawn_rate = arguments.spawn_rate or max(1.0, round((arguments.users + arguments.admins + 1) / 30, 1))
    arguments.burst_after = arguments.seconds / 3 if arguments.burst_after is None else arguments.burst_after
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (Debian package 'redis-server'; make bench-load installs it).")
    var = PROJECT_DIR / "var"
    var.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-", dir=var))
    os.chmod(workdir, 0o755)  # noqa: S103 - the postgres user runs the server in a subfolder; secrets are 0600
    try:
        status = run(arguments, workdir)
    except BenchError as error:
        sys.exit(f"bench-load: {error} (logs in {workdir})")
    finally:
        if not arguments.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
