"""How fast the security dashboard renders with many audit events (budget: 300 ms at 1,000,000).

    .venv/bin/python bench/dashboard_bench.py                          # SQLite, 100,000 events
    scripts/with-postgres.sh .venv/bin/python bench/dashboard_bench.py --events 1000000

Creates a throwaway database (Django's test-database machinery, as ``bench/audit_bench.py``),
inserts ``--events`` events spread over two years with that benchmark's generator (plus failed
logins and lockouts in the last two weeks, so the charts and the 24-hour lists have data), runs
the rollup once, then times ``GET /admin/`` (the dashboard) through Django's test client as a
superuser who passed MFA, beside the audit event changelist (a plain admin page), interleaved.
Prints the median of each, the ratio, the rollup's duration and the dashboard's query count.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from bench.audit_bench import _generate, _print, _setup_django  # noqa: E402


def _recent_failures(count: int) -> None:
    """Failed logins and lockouts over the last 14 days from a few IPs against a few accounts."""
    from django.utils import timezone

    import audit
    from audit.chain import CONTENT_FIELDS, content_mac
    from audit.models import AuditEvent
    from audit.services import build_event

    now = timezone.now()
    events = []
    for number in range(count):
        action = audit.Action.ACCOUNT_LOCKED if number % 20 == 0 else audit.Action.LOGIN_FAILED
        event = build_event(action=action, outcome="failure", subject=f"user{number % 37}")
        event.timestamp = now - datetime.timedelta(seconds=(14 * 86400) * number / max(count, 1))
        event.client_ip = f"192.0.2.{number % 50}"
        event.content_mac, event.content_key_id = content_mac(
            {name: getattr(event, name) for name in CONTENT_FIELDS}, with_key_id=True
        )
        events.append(event)
    AuditEvent.objects.bulk_create(events, batch_size=5000)


def _console_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.testing import login_with_mfa

    admin_user = get_user_model().objects.create_superuser(username="bench-admin", password="a" * 20)
    client = Client()
    login_with_mfa(client, admin_user)
    return client


def bench(events: int, recent: int, rounds: int) -> list[tuple[str, str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monitoring.services.rollup import security_counts_rollup

    results = []
    started = time.perf_counter()
    _generate(events)
    _recent_failures(recent)
    results.append(("generate", f"{events + recent} events in {time.perf_counter() - started:.1f} s"))
    _print(results[-1:])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE audit_auditevent")
    started = time.perf_counter()
    security_counts_rollup()
    results.append(("rollup (today and yesterday)", f"{(time.perf_counter() - started) * 1000:.0f} ms"))
    _print(results[-1:])

    client = _console_client()
    pages = {"dashboard": "/admin/", "audit changelist": "/admin/audit/auditevent/"}
    for url in pages.values():
        assert client.get(url).status_code == 200  # warm up
    samples: dict[str, list[float]] = {label: [] for label in pages}
    for _ in range(rounds):
        for label, url in pages.items():
            started = time.perf_counter()
            response = client.get(url)
            samples[label].append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
    medians = {label: statistics.median(values) * 1000 for label, values in samples.items()}
    with CaptureQueriesContext(connection) as queries:
        client.get(pages["dashboard"])
    for label, median in medians.items():
        results.append((label, f"median {median:.0f} ms over {rounds}"))
    results.append(("dashboard / changelist", f"{medians['dashboard'] / medians['audit changelist']:.2f}x"))
    results.append(("dashboard queries", str(len(queries))))
    _print(results[-4:])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="Audit events over two years.")
    parser.add_argument("--recent", type=int, default=20_000, help="Failed logins and lockouts in the last 14 days.")
    parser.add_argument("--rounds", type=int, default=15, help="Timed requests per page.")
    arguments = parser.parse_args()
    _setup_django()
    from django.conf import settings
    from django.db import connection

    settings.AUDIT_SEAL_MODE = "periodic"
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        version = connection.cursor().connection.info.server_version if connection.vendor == "postgresql" else ""
        print(f"database: {connection.vendor} {version}  cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")
        bench(arguments.events, arguments.recent, arguments.rounds)
    finally:
        from audit.sealing import background_sealer

        background_sealer.stop()
        connection.close()
        connection.creation.destroy_test_db(test_name, verbosity=0)


if __name__ == "__main__":
    main()
