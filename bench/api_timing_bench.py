"""Does API-key authentication leak, by time, what is wrong with a refused key?

    .venv/bin/python bench/api_timing_bench.py                         # SQLite
    scripts/with-postgres.sh .venv/bin/python bench/api_timing_bench.py  # PostgreSQL
    .venv/bin/python bench/api_timing_bench.py --rounds 3000

An unknown key, a wrong secret, a malformed key and an expired key must take the same time
(api/authentication.py; ``tests/api/test_authentication_work.py`` checks the mechanism: the same
statements and one HMAC on every path). This benchmark measures it the way an attacker would,
through the whole stack (test client → middleware → DRF → authentication → refusal), and
decides with a statistic that a busy machine does not fool:

* **interleaved, paired samples**: each round times every path once, in a fresh random order, so
  drift and noise from other processes hit all paths alike; a path is compared with the
  reference (the unknown key) by the per-round differences;
* **a robust statistic**: the median of those differences, with a 95 % bootstrap interval;
* **a bound a real leak would exceed**: a *planted leak* arm — the unknown-key path plus one
  extra indexed query, the smallest change of work a careless implementation makes (skipping
  the dummy hash costs less; skipping the lookup or the audit insert costs more) — is measured
  alongside. The bound is half its median difference. The verdict is "leak" when a path's whole
  interval lies beyond the bound, and the run is "inconclusive" when the planted leak itself is
  not detected (the machine too noisy for this many rounds: run more).

It prints one line per path and the verdict; exit status 1 on a leak, 2 when inconclusive.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

PATH = "/api/v2/organizations/"  # a cheap view: authentication and refusal dominate
REFERENCE = "unknown key"
PLANTED = "planted leak (+1 query)"


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ.setdefault("TEST_VAR_DIR", tempfile.mkdtemp(prefix="api-timing-bench-"))
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.setdefault("AUDIT_SEAL_MODE", "periodic")
    # Detection is handed to Celery (an in-memory broker, no worker), as production hands it to
    # a worker: its cost, which grows with the trail, stays out of the timed requests.
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "false")
    import django

    django.setup()
    import logging

    logging.disable(logging.WARNING)


def bootstrap_interval(values: list[float], *, resamples: int = 2000, seed: int = 7) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median of ``values``."""
    generator = random.Random(seed)
    medians = sorted(statistics.median(generator.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def verdict(differences: dict[str, list[float]]) -> tuple[str, float, dict[str, tuple[float, float, float]]]:
    """``(verdict, bound, {path: (median, low, high)})`` from per-round differences to the reference."""
    summary = {name: (statistics.median(values), *bootstrap_interval(values)) for name, values in differences.items()}
    bound = summary[PLANTED][0] / 2
    if summary[PLANTED][1] <= bound:
        return "inconclusive", bound, summary
    leaks = [name for name, (_, low, high) in summary.items() if name != PLANTED and (low > bound or high < -bound)]
    return ("leak: " + ", ".join(leaks)) if leaks else "no leak", bound, summary


def _clients():
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from api import services
    from api.models import ApiKey

    user = get_user_model().objects.create_user(username="timing", password="timing-password-0123456789")
    valid = services.api_key_issue(actor=user, owner=user, name="valid", scopes=["organizations:read"]).key
    expired = services.api_key_issue(actor=user, owner=user, name="expired", scopes=["organizations:read"])
    ApiKey.objects.filter(pk=expired.api_key.pk).update(expires_at=timezone.now())
    secret = valid.split("_", 2)[2]
    wrong = valid[:-6] + ("A" * 6 if not valid.endswith("A" * 6) else "B" * 6)

    def bearer(key: str) -> Client:
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    return {
        REFERENCE: bearer(f"nvk_aaaaaaaaaaaa_{secret}"),
        "wrong secret": bearer(wrong),
        "malformed key": bearer("nvk_not-a-key"),
        "expired key": bearer(expired.key),
        PLANTED: Client(HTTP_AUTHORIZATION=f"Bearer nvk_aaaaaaaaaaaa_{secret}", HTTP_X_PLANTED_LEAK="1"),
    }


def _plant_leak() -> None:
    """The planted arm's authentication runs one extra indexed query, inside the request."""
    from django.contrib.auth import get_user_model

    from api.authentication import ApiKeyAuthentication

    authenticate = ApiKeyAuthentication.authenticate_credential

    def with_leak(self, request, credential):
        if request.META.get("HTTP_X_PLANTED_LEAK"):
            get_user_model().objects.filter(pk=-1).exists()
        return authenticate(self, request, credential)

    ApiKeyAuthentication.authenticate_credential = with_leak


def _measure(clients, rounds: int) -> dict[str, list[float]]:
    def timed(name: str) -> float:
        started = time.perf_counter()
        response = clients[name].get(PATH)
        elapsed = time.perf_counter() - started
        if response.status_code != 401:
            raise SystemExit(f"{name}: expected 401, got {response.status_code}")
        return elapsed

    names = list(clients)
    for name in names:  # warm every path
        timed(name)
    generator = random.Random(11)
    differences: dict[str, list[float]] = {name: [] for name in names if name != REFERENCE}
    for _ in range(rounds):
        order = names[:]
        generator.shuffle(order)
        times = {name: timed(name) for name in order}
        for name in differences:
            differences[name].append(times[name] - times[REFERENCE])
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1500, help="Interleaved rounds (each times every path once).")
    arguments = parser.parse_args()
    if arguments.rounds < 50:
        parser.error("--rounds must be at least 50")
    _setup_django()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    settings.API_THROTTLE_RATES = {}
    settings.MONITORING_API_ERROR_THRESHOLD = 10**9  # detection counts silently, the same for every path
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        eager = settings.CELERY_TASK_ALWAYS_EAGER
        print(
            f"database: {connection.vendor}  cpus: {os.cpu_count()}  rounds: {arguments.rounds}  "
            f"Celery eager: {'yes (detection inside each request)' if eager else 'no (detection queued)'}"
        )
        _plant_leak()
        differences = _measure(_clients(), arguments.rounds)
        result, bound, summary = verdict(differences)
        print(f"difference to the {REFERENCE} path, per round (median [95 % interval]); bound ±{bound * 1e6:.1f} µs")
        for name, (median, low, high) in summary.items():
            print(f"  {name:<26} {median * 1e6:+9.1f} µs  [{low * 1e6:+.1f}, {high * 1e6:+.1f}]")
        print(f"verdict: {result}")
    finally:
        connection.creation.destroy_test_db(test_name, verbosity=0)
    if result.startswith("leak"):
        sys.exit(1)
    if result == "inconclusive":
        sys.exit(2)


if __name__ == "__main__":
    main()
