"""How fast a user's security page renders with many audit events, beside the user's change page.

    .venv/bin/python bench/user_security_bench.py                          # SQLite, 100,000 events
    scripts/with-postgres.sh .venv/bin/python bench/user_security_bench.py --events 1000000

Creates a throwaway database (as ``bench/audit_bench.py``), inserts ``--events`` events over two
years with that benchmark's generator, then gives one user a long history: ``--history`` failed
logins naming them as subject and as many memory reads by them (the newest-first walks of the
page), ending ``--quiet-days`` ago (newer events of everyone else lie above it: a walk of the
plain timestamp index would have to pass them all), and a staff grant and a group.
Times ``GET /admin/accounts/user/<id>/security/`` beside ``GET /admin/accounts/user/<id>/change/``
(a plain admin page), interleaved, through Django's test client as a superuser who passed MFA.
Prints the medians, their ratio, the page's query count, and on PostgreSQL the plan of each of
the page's reads of the audit table.
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


def _history(user, count: int, quiet_days: int) -> None:
    """``count`` failed logins about ``user`` and ``count`` memory reads by them, ending ``quiet_days`` ago."""
    from django.contrib.auth.models import Group
    from django.utils import timezone

    import audit
    from audit.chain import CONTENT_FIELDS, content_mac
    from audit.models import AuditEvent
    from audit.services import build_event, write_held_events
    from core.context import acting_as

    with acting_as(None):
        user.is_staff = True
        user.save()
        user.groups.add(Group.objects.get_or_create(name="bench operators")[0])
    write_held_events()
    end = timezone.now() - datetime.timedelta(days=quiet_days)
    events = []
    for number in range(count):
        at = end - datetime.timedelta(seconds=count - number)
        failed = build_event(
            action=audit.Action.LOGIN_FAILED, outcome="failure", subject=user, context={"reason": "wrong_password"}
        )
        read = build_event(
            action=audit.Action.MEMORY_READ,
            actor=user,
            target=("memories.memory", number),
            context={"context_id": number},
        )
        for event in (failed, read):
            event.timestamp = at
            event.content_mac, event.content_key_id = content_mac(
                {name: getattr(event, name) for name in CONTENT_FIELDS}, with_key_id=True
            )
            events.append(event)
    AuditEvent.objects.bulk_create(events, batch_size=5000)


def bench(events: int, history: int, quiet_days: int, rounds: int) -> list[tuple[str, str]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.testing import login_with_mfa
    from audit.models import AuditEvent

    results = []
    started = time.perf_counter()
    _generate(events)
    target = get_user_model().objects.create_user(username="bench-target", password="b" * 20)
    _history(target, history, quiet_days)
    results.append(("generate", f"{events + 2 * history} events in {time.perf_counter() - started:.1f} s"))
    _print(results[-1:])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE audit_auditevent")
    admin_user = get_user_model().objects.create_superuser(username="bench-admin", password="a" * 20)
    client = Client()
    login_with_mfa(client, admin_user)
    pages = {
        "security page": f"/admin/accounts/user/{target.pk}/security/",
        "change page": f"/admin/accounts/user/{target.pk}/change/",
    }
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
        client.get(pages["security page"])
    for label, median in medians.items():
        results.append((label, f"median {median:.0f} ms over {rounds}"))
    results.append(("security page / change page", f"{medians['security page'] / medians['change page']:.2f}x"))
    results.append(("security page queries", str(len(queries))))
    _print(results[-4:])
    if connection.vendor == "postgresql":
        table = AuditEvent._meta.db_table
        reads = [query["sql"] for query in queries.captured_queries if table in query["sql"]]
        # The planner's choice depends on random_page_cost: the server default (4, spinning
        # disks) and the usual setting for SSDs (1.1), side by side.
        for page_cost in ("DEFAULT", "1.1"):
            with connection.cursor() as cursor:
                cursor.execute(f"SET random_page_cost = {page_cost}")
                for sql in reads:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) " + sql)
                    plan = [row[0] for row in cursor.fetchall()]
                    scans = [line.strip().split("  (")[0] for line in plan if "Scan" in line]
                    total = next((line for line in plan if line.startswith("Execution Time")), "")
                    print(f"  random_page_cost {page_cost}: {'; '.join(scans)[:110]}  {total}")
                cursor.execute("RESET random_page_cost")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="Audit events over two years.")
    parser.add_argument("--history", type=int, default=20_000, help="Events about and by the page's user (each).")
    parser.add_argument("--quiet-days", type=int, default=365, help="Days since the page's user was last active.")
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
        bench(arguments.events, arguments.history, arguments.quiet_days, arguments.rounds)
    finally:
        from audit.sealing import background_sealer

        background_sealer.stop()
        connection.close()
        connection.creation.destroy_test_db(test_name, verbosity=0)


if __name__ == "__main__":
    main()
