"""Benchmarks of the audit trail, measured side by side in one run.

    .venv/bin/python bench/audit_bench.py                      # SQLite, small sizes
    .venv/bin/python bench/audit_bench.py --size 1000000       # the figures for the report
    scripts/with-postgres.sh .venv/bin/python bench/audit_bench.py --size 1000000   # PostgreSQL

It creates a throwaway database (Django's test-database machinery: ``test_<name>`` on
PostgreSQL, a file under a temporary folder on SQLite), runs, prints, and drops it.

1. Audited write vs plain write, in the same transaction: ``Group.objects.create()`` alone against
   ``Group.objects.create()`` + ``audit.record()`` (the budget: at most 1.5x), for each
   ``AUDIT_SEAL_MODE``, with django-auditlog measured beside it rather than inside the baseline;
   a bulk ``QuerySet.update`` of 100 rows with and without its 100 events; and a memory read and
   a memory create through the service with and without its ``record()``.
2. ``record()`` throughput with 1 and with 8 concurrent writer processes (events/s), each event
   its own transaction, then the chain sealed and verified.
3. ``audit_verify`` speed over ``--size`` events (events/s), and the sealer's speed on them.
4. Audit explorer response times with ``--size`` events (default list, each filter, a CIDR
   range, combinations, the API key filter with and without its index), through the real admin
   view, then streamed exports of the whole table as CSV and JSON Lines (rows/s, time to the
   first byte, resident memory growth while streaming).

What is measured is the audit trail's own cost: the receivers of ``event_recorded`` (monitoring's
real-time detection, which the test settings run eagerly in-process instead of on a worker) are
muted, in this process and in the writer processes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))


def _setup_django(var_dir: str | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    if var_dir:
        os.environ["TEST_VAR_DIR"] = var_dir
    os.environ.setdefault("TEST_VAR_DIR", tempfile.mkdtemp(prefix="audit-bench-"))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    import logging

    logging.getLogger("audit").setLevel(logging.WARNING)
    logging.getLogger("monitoring").setLevel(logging.ERROR)  # its slow-query log fires on bulk inserts
    _mute_event_receivers()


def _mute_event_receivers() -> None:
    """Disconnect monitoring (and any other subscriber) from ``event_recorded``: see the docstring."""
    from audit.signals import event_recorded

    event_recorded.receivers = []
    event_recorded.sender_receivers_cache.clear()


# --- worker mode (a writer process of benchmark 2) -----------------------------------------------


def writer_main(count: int, start_at: float) -> None:
    _setup_django()
    from django.db import transaction

    import audit

    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    started = time.time()
    for number in range(count):
        with transaction.atomic():
            audit.record(
                action=audit.Action.MEMORY_READ, target=("memories.memory", number), context={"context_id": number}
            )
    print(f"{started} {time.time()}")


# --- the benchmarks ------------------------------------------------------------------------------


def _median_per_operation(function, *, operations: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(operations):
            function()
        samples.append((time.perf_counter() - started) / operations)
    return statistics.median(samples)


def _interleaved(functions: dict, *, per_round: int, rounds: int) -> dict[str, float]:
    """Median milliseconds per call of each function, measured in interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():  # warm up
        _median_per_operation(function, operations=20, rounds=1)
    for _ in range(rounds):  # interleaved, so drift and neighbours' load hit every variant alike
        for name, function in functions.items():
            samples[name].append(_median_per_operation(function, operations=per_round, rounds=1))
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


def _memory_fixture(actor):
    """One personal context of ``actor`` holding one 1 kB memory, for the read benchmark."""
    from memories import services as memory_services

    context = memory_services.context_create(actor=actor, name="bench", scope="personal")
    return memory_services.memory_create(actor=actor, context=context, content="m" * 1024, kind="note")


def bench_write_ratio(iterations: int) -> list[tuple[str, str]]:
    """Audited against plain writes and reads, interleaved in one run (the issue's budget: <= 1.5x).

    "plain" is the write with no auditing at all: django-auditlog's diff (registered on Group) is
    switched off with its own ``disable_auditlog()``, so it is measured on its own line instead of
    hiding inside the baseline.
    """
    from auditlog.context import disable_auditlog
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction
    from django.db.models import F, Value
    from django.db.models.functions import Concat

    import audit
    from audit.sealing import background_sealer, seal_pending
    from memories import services as memory_services

    actor = get_user_model().objects.create_user(username="bench-actor", password="b" * 20)
    counter = iter(range(10**9))

    def plain_write():
        with disable_auditlog(), transaction.atomic():
            Group.objects.create(name=f"g{next(counter)}")

    def plain_write_plus_second_insert():
        with disable_auditlog(), transaction.atomic():
            Group.objects.create(name=f"g{next(counter)}")
            Group.objects.create(name=f"g{next(counter)}")

    def audited_write():
        with disable_auditlog(), transaction.atomic():
            group = Group.objects.create(name=f"g{next(counter)}")
            audit.record(action=audit.Action.ADMIN_ADDED, actor=actor, target=group, context={"object": "group"})

    def auditlog_write():
        with transaction.atomic():
            Group.objects.create(name=f"g{next(counter)}")

    def audited_and_auditlog_write():
        with transaction.atomic():
            group = Group.objects.create(name=f"g{next(counter)}")
            audit.record(action=audit.Action.ADMIN_ADDED, actor=actor, target=group, context={"object": "group"})

    # Bulk: one QuerySet.update over 100 rows, plain against the same with one event per row.
    with disable_auditlog():
        bulk_ids = [Group.objects.create(name=f"bulk{number}").pk for number in range(100)]
    bulk = Group.objects.filter(pk__in=bulk_ids)

    def plain_bulk_update():
        with transaction.atomic():
            bulk.update(name=Concat(F("name"), Value("")))

    def audited_bulk_update():
        with transaction.atomic():
            bulk.update(name=Concat(F("name"), Value("")))
            audit.record_many(
                {
                    "action": audit.Action.ADMIN_CHANGED,
                    "actor": actor,
                    "target": ("auth.group", pk),
                    "context": {"fields": ["name"]},
                }
                for pk in bulk_ids
            )

    # A real memory read through the service (permission check, decryption, record()), against the
    # same call with record() replaced by a no-op.
    memory = _memory_fixture(actor)

    def audited_memory_create():
        memory_services.memory_create(actor=actor, context=memory.context, content="n" * 1024, kind="note")

    def unaudited_memory_create():
        real = audit.record
        audit.record = _no_op
        try:
            memory_services.memory_create(actor=actor, context=memory.context, content="n" * 1024, kind="note")
        finally:
            audit.record = real

    def audited_memory_read():
        memory_services.memory_read(actor=actor, memory_id=memory.pk)

    def unaudited_memory_read():
        real = audit.record
        audit.record = _no_op
        try:
            memory_services.memory_read(actor=actor, memory_id=memory.pk)
        finally:
            audit.record = real

    rounds = 9
    per_round = max(iterations // rounds, 20)
    results = []
    settings.AUDIT_SEAL_MODE = "periodic"
    floor = _interleaved(
        {
            "plain": plain_write,
            "plain + 2nd INSERT": plain_write_plus_second_insert,
            "audited (record)": audited_write,
            "django-auditlog alone": auditlog_write,
            "record + django-auditlog": audited_and_auditlog_write,
        },
        per_round=per_round,
        rounds=rounds,
    )
    results.append(("write: Group.create in a transaction", _ratios(floor, "plain")))
    bulk_rounds = max(per_round // 10, 5)
    timed = _interleaved(
        {"plain": plain_bulk_update, "audited": audited_bulk_update}, per_round=bulk_rounds, rounds=rounds
    )
    results.append(("bulk: update of 100 rows + 100 events", _ratios(timed, "plain")))
    reads = _interleaved(
        {"plain": unaudited_memory_read, "audited": audited_memory_read}, per_round=per_round, rounds=rounds
    )
    results.append(("memory read through the service (autocommit)", _ratios(reads, "plain")))
    creates = _interleaved(
        {"plain": unaudited_memory_create, "audited": audited_memory_create}, per_round=per_round, rounds=rounds
    )
    results.append(("memory create through the service (1 kB)", _ratios(creates, "plain")))
    # The same write with the sealer running after each commit, as deployed (background) and as
    # the test suite runs it (inline: the caller's thread seals before returning).
    seal_pending()
    for mode in ("background", "inline"):
        settings.AUDIT_SEAL_MODE = mode
        timed = _interleaved({"plain": plain_write, "audited": audited_write}, per_round=per_round, rounds=rounds)
        results.append((f"write, seal {mode} (after commit)", _ratios(timed, "plain")))
        background_sealer.stop()
        seal_pending()
    return results


def _no_op(**_kwargs) -> None:
    return None


def _ratios(timings: dict[str, float], base: str) -> str:
    return ", ".join(f"{name} {value:.3f} ms ({value / timings[base]:.2f}x)" for name, value in timings.items())


def bench_throughput(events_per_writer: int, writer_counts: list[int]) -> list[tuple[str, str]]:
    from django.conf import settings

    from audit.models import AuditEvent
    from audit.sealing import seal_pending
    from audit.verification import verify_chain
    from tests.support.servers import test_database_url

    results = []
    rates = {}
    for writers in writer_counts:
        before = AuditEvent.objects.count()
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "DATABASE_POOL": "false",
            "TEST_VAR_DIR": str(settings.VAR_DIR),
            "AUDIT_SEAL_MODE": "background",
            "AUDIT_CHAIN_KEY": settings.AUDIT_CHAIN_KEY,
            "ENCRYPTION_AUDIT_CHAIN_KEYS": settings.ENCRYPTION_AUDIT_CHAIN_KEYS,
        }
        start_at = time.time() + 3.0
        processes = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(events_per_writer), str(start_at)],
                cwd=PROJECT_DIR,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(writers)
        ]
        spans = []
        for process in processes:
            out, err = process.communicate(timeout=3600)
            if process.returncode != 0:
                raise SystemExit(err[-3000:])
            first, last = (float(value) for value in out.split())
            spans.append((first, last))
        elapsed = max(last for _, last in spans) - min(first for first, _ in spans)
        total = writers * events_per_writer
        rates[writers] = total / elapsed
        seal_pending()
        unsealed = AuditEvent.objects.unsealed().count()
        report = verify_chain()
        lost = before + total - AuditEvent.objects.count()
        results.append(
            (
                f"record() {writers} writer process(es)",
                f"{total} events in {elapsed:.2f} s = {rates[writers]:,.0f} events/s; "
                f"lost {lost}, unsealed {unsealed}, chain {'verified' if report.ok else 'BROKEN'}",
            )
        )
    if len(rates) == 2:
        low, high = sorted(rates)
        results.append((f"throughput {high} vs {low} writers", f"{rates[high] / rates[low]:.2f}x"))
    return results


def _generate(size: int) -> None:
    """Insert ``size`` unsealed events spread over two years, with valid content MACs."""
    from django.db import transaction
    from django.utils import timezone

    import audit
    from audit.chain import CONTENT_FIELDS, content_mac
    from audit.models import AuditEvent
    from audit.services import build_event

    # Each action with a context key it declares (audit/schema.py), holding the event's number.
    actions = [
        (audit.Action.MEMORY_READ, "context_id"),
        (audit.Action.LOGIN_SUCCEEDED, "method"),
        (audit.Action.LOGIN_FAILED, "reason"),
        (audit.Action.MEMORY_UPDATED, "context_id"),
        (audit.Action.PERMISSION_DENIED, "answer"),
        (audit.Action.API_KEY_USED, None),
    ]
    start = timezone.now() - datetime.timedelta(days=730)
    step = datetime.timedelta(days=730) / max(size, 1)
    batch = 5000
    for offset in range(0, size, batch):
        events = []
        for number in range(offset, min(offset + batch, size)):
            action, key = actions[number % len(actions)]
            event = build_event(
                action=action,
                outcome="failure" if number % 7 == 0 else "success",
                subject=f"user{number % 5000}",
                target=("memories.memory", number),
                context={key: number} if key else {},
            )
            event.timestamp = start + step * number
            event.request_id = f"req{number:012d}"
            event.client_ip = f"10.{(number >> 16) & 255}.{(number >> 8) & 255}.{number & 255}"
            event.actor_id, event.actor_username = str(number % 5000), f"user{number % 5000}"
            if action == audit.Action.API_KEY_USED:
                event.api_key_id = f"key{number % 100:03d}"
            values = {name: getattr(event, name) for name in CONTENT_FIELDS}
            event.content_mac, event.content_key_id = content_mac(values, with_key_id=True)
            events.append(event)
        with transaction.atomic():
            AuditEvent.objects.bulk_create(events, batch_size=batch)


def bench_verify_and_admin(size: int) -> list[tuple[str, str]]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from audit.sealing import seal_pending
    from audit.verification import verify_chain

    results = []
    settings.AUDIT_SEAL_MODE = "periodic"
    started = time.perf_counter()
    _generate(size)
    inserted = time.perf_counter() - started
    results.append(("generate (bulk insert)", f"{size} events in {inserted:.1f} s"))
    _print(results[-1:])
    started = time.perf_counter()
    sealed = seal_pending(batch_size=5000).sealed
    sealing = time.perf_counter() - started
    results.append(("seal", f"{sealed} events in {sealing:.1f} s = {sealed / sealing:,.0f} events/s"))
    _print(results[-1:])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE audit_auditevent")
    report = verify_chain()
    results.append(
        (
            "audit_verify",
            f"{report.checked} events in {report.elapsed_seconds:.1f} s = {report.events_per_second:,.0f} events/s "
            f"({'OK' if report.ok else 'FAILED'})",
        )
    )
    _print(results[-1:])

    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.models import TOTPDevice

    admin_user = get_user_model().objects.create_superuser(username="bench-admin", password="a" * 20)
    device = TOTPDevice.objects.create(user=admin_user, name="bench", confirmed=True, key="00" * 20)
    client = Client()
    client.force_login(admin_user)  # the console requires a session that passed MFA
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    url = reverse("admin:audit_auditevent_changelist")
    now = datetime.datetime.now(datetime.UTC)

    def ago(**delta) -> str:
        return (now - datetime.timedelta(**delta)).strftime("%Y-%m-%d %H:%M:%S")

    pages = [
        ("changelist", {}),
        ("filter action", {"action": "auth.login_failed"}),
        ("filter action area auth.*", {"action": "auth.*"}),
        ("filter outcome", {"outcome": "failure"}),
        ("filter last hour", {"last": "1h"}),
        ("filter last 7 days", {"last": "7d"}),
        ("filter from-to a year ago", {"since": ago(days=400), "until": ago(days=390)}),
        ("filter actor username prefix", {"actor": "user42"}),
        ("filter actor id", {"actor_id": "42"}),
        ("filter subject username prefix", {"subject": "user42"}),
        ("filter client IP", {"client_ip": "10.1.2.3"}),
        ("filter client IP /24", {"client_ip": "10.1.2.0/24"}),
        ("filter request id", {"request_id": f"req{size // 2:012d}"}),
        ("filter API key", {"api_key_id": "key042"}),
        ("filter auth.* + failure + 7 days", {"action": "auth.*", "outcome": "failure", "last": "7d"}),
        ("filter actor + IP /24 + a year", {"actor": "user1", "client_ip": "10.0.0.0/24", "since": ago(days=365)}),
        ("search username prefix", {"q": "user42"}),
        ("search IP", {"q": "10.1.2.3"}),
        ("search request id", {"q": f"req{size // 2:012d}"}),
        ("page 50", {"p": 50}),
    ]
    if connection.vendor == "postgresql":
        pages.append(("filter client IP /16 (PostgreSQL)", {"client_ip": "10.3.0.0/16"}))

    def timed_page(label: str, query: dict) -> None:
        client.get(url, query)  # warm up
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get(url, query)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, (label, response.status_code)
        results.append((f"admin {label}", f"median {statistics.median(samples) * 1000:.0f} ms over 5"))
        _print(results[-1:])

    for label, query in pages:
        timed_page(label, query)
    # The API key filter's partial index (migration 0006), measured by dropping it for one page.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX audit_event_api_key_ts")
        timed_page("filter API key WITHOUT its index", {"api_key_id": "key042"})
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE INDEX audit_event_api_key_ts ON audit_auditevent (api_key_id, timestamp) "
                "WHERE api_key_id IS NOT NULL"
            )
            cursor.execute("ANALYZE audit_auditevent")
    for label, format, query in (
        ("export CSV, every event", "csv", {}),
        ("export JSON lines, every event", "jsonl", {}),
        ("export CSV, auth.* of the last 30 days", "csv", {"action": "auth.*", "since": ago(days=30)}),
    ):
        results.append((label, _export(client, format, query)))
        _print(results[-1:])
    return results


def _resident_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _export(client, format: str, query: dict) -> str:
    """One streamed export through the real view: rows/s, first byte, resident memory growth."""
    from django.urls import reverse

    url = reverse("admin:audit_auditevent_export", args=[format])
    before = _resident_kib()
    highest = before
    started = time.perf_counter()
    response = client.get(url, query)
    assert response.status_code == 200 and response.streaming, response.status_code
    first_byte = None
    size = pieces = 0
    for piece in response.streaming_content:
        if first_byte is None and pieces == 1:
            first_byte = time.perf_counter() - started
        pieces += 1
        size += len(piece)
        if pieces % 25 == 0:
            highest = max(highest, _resident_kib())
    elapsed = time.perf_counter() - started
    highest = max(highest, _resident_kib())
    rows = int(response["X-Export-Rows"])
    return (
        f"{rows:,} rows, {size / 1e6:,.0f} MB in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s; "
        f"first rows after {(first_byte or elapsed) * 1000:.0f} ms; {pieces} pieces; "
        f"resident memory growth {max(highest - before, 0) / 1024:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100000, help="Events for the verify and admin runs.")
    parser.add_argument("--events-per-writer", type=int, default=1000, help="Events each writer records.")
    parser.add_argument("--writers", type=int, default=8, help="Concurrent writers compared with one.")
    parser.add_argument("--iterations", type=int, default=2000, help="Operations per write-ratio variant.")
    parser.add_argument("--skip", action="append", default=[], choices=["ratio", "throughput", "verify"])
    parser.add_argument("--worker", nargs=2, metavar=("COUNT", "START_AT"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        writer_main(int(arguments.worker[0]), float(arguments.worker[1]))
        return

    _setup_django()
    from django.db import connection

    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        vendor = connection.vendor
        version = connection.cursor().connection.info.server_version if vendor == "postgresql" else ""
        print(f"database: {vendor} {version}  cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")
        results: list[tuple[str, str]] = []
        if "ratio" not in arguments.skip:
            results += bench_write_ratio(arguments.iterations)
            _print(results)
        if "throughput" not in arguments.skip:
            more = bench_throughput(arguments.events_per_writer, [1, arguments.writers])
            _print(more)
            results += more
        if "verify" not in arguments.skip:
            bench_verify_and_admin(arguments.size)  # prints each figure as it is measured
    finally:
        from audit.sealing import background_sealer

        background_sealer.stop()
        connection.close()
        connection.creation.destroy_test_db(test_name, verbosity=0)


def _print(rows: list[tuple[str, str]]) -> None:
    width = max(max(len(label) for label, _ in rows), 28)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}", flush=True)


if __name__ == "__main__":
    main()
