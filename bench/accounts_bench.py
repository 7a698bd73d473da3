"""Login, lockout and MFA costs, measured side by side in one run (SQLite, or PostgreSQL via DATABASE_URL).

    .venv/bin/python bench/accounts_bench.py            # SQLite in a temporary folder
    scripts/with-postgres.sh .venv/bin/python bench/accounts_bench.py
    scripts/run-benchmarks.sh accounts_bench              # both

What it prints (medians; ratios are within this run, so machines compare):

1. Full HTTP logins through the Django test client with the real Argon2id hasher: password only,
   and password + TOTP code; throughput, latency (p50/p95) and the share that is one Argon2
   verification.
2. The cost of a *failed* login beyond hashing, and of refusing an already locked-out client,
   for our counters (``accounts.services.lockout`` + audit event) and for django-axes 8 with its
   defaults (database handler) in the same process and database. To isolate the overhead, this
   part uses Django's MD5 hasher (microseconds), measures plain ``ModelBackend`` authentication
   as the baseline and subtracts it. Queries are counted too.

django-axes is not installed by the project (see ``accounts/services/lockout.py``); the bench adds
it to ``INSTALLED_APPS`` of its own settings so both run against the same database.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

os.environ.setdefault("TEST_VAR_DIR", tempfile.mkdtemp(prefix="accounts-bench-"))
_settings = types.ModuleType("accounts_bench_settings")
exec("from config.settings.test import *", _settings.__dict__)  # noqa: S102 - our own settings module
_settings.INSTALLED_APPS = [*_settings.INSTALLED_APPS, "axes"]
_settings.PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
]
# Sealing runs off the request path in production ("background"); here it is left to the
# periodic job so it does not run inside the timings.
_settings.AUDIT_SEAL_MODE = "periodic"
_settings.AXES_ENABLED = False  # switched on only while axes is measured
_settings.ACCOUNTS_NOTIFY_NEW_LOGIN = False
_settings.LOGGING = {"version": 1, "disable_existing_loggers": True, "root": {"level": "ERROR"}}
sys.modules["accounts_bench_settings"] = _settings
os.environ["DJANGO_SETTINGS_MODULE"] = "accounts_bench_settings"

import django  # noqa: E402

django.setup()

import pyotp  # noqa: E402
from django.contrib.auth import authenticate, get_user_model  # noqa: E402
from django.contrib.auth.hashers import check_password, make_password  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, RequestFactory  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402

PASSWORD = "bench passphrase 12345 !"
MD5 = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _p95_ms(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.95) - 1)] * 1000


def _time(function, repeat: int, before=None) -> list[float]:
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def _queries(function) -> int:
    with CaptureQueriesContext(connection) as captured:
        function()
    return len(captured.captured_queries)


ROUNDS = 15
ROUND_SIZE = 20
VARIANTS = {
    "counters": "lockout counters only",
    "audited": "counters + audit event",
    "monitored": "+ monitoring's real-time detectors",
}


@contextlib.contextmanager
def _variant(variant: str):
    """``counters``: audit.record muted; ``audited``: event_recorded receivers muted; ``monitored``: all on."""
    import audit
    from audit.signals import event_recorded

    record, receivers = audit.record, list(event_recorded.receivers)
    if variant == "counters":
        audit.record = lambda **kwargs: None
    if variant in {"counters", "audited"}:
        event_recorded.receivers = []
        event_recorded.sender_receivers_cache.clear()
    try:
        yield
    finally:
        audit.record = record
        event_recorded.receivers = receivers
        event_recorded.sender_receivers_cache.clear()


def main() -> None:
    from accounts.models import FailureCounter, TOTPDevice
    from accounts.services import mfa
    from accounts.services.authentication import password_check
    from accounts.totp import key_to_base32

    user_model = get_user_model()
    old_config = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        print(f"database: {connection.vendor}; logins with Argon2id (monitoring receivers muted)")
        plain = user_model.objects.create_user(username="plain", email="plain@example.org", password=PASSWORD)
        secured = user_model.objects.create_user(username="secured", email="secured@example.org", password=PASSWORD)
        device = mfa.totp_device_create(actor=secured, user=secured, name="bench")
        app = pyotp.TOTP(key_to_base32(device.bin_key))
        mfa.totp_device_confirm(actor=secured, device=device, code=app.now())

        encoded = plain.password

        def hash_once():
            check_password(PASSWORD, encoded)

        def login_plain():
            response = Client().post("/accounts/login/", {"username": "plain", "password": PASSWORD})
            assert response.status_code == 302 and "verify" not in response["Location"], response

        def login_mfa():
            client = Client()
            response = client.post("/accounts/login/", {"username": "secured", "password": PASSWORD})
            assert "/accounts/login/verify/" in response["Location"], response
            response = client.post("/accounts/login/verify/", {"code": app.now()})
            assert response.status_code == 302 and "verify" not in response["Location"], response

        def allow_reuse():  # untimed: each login spends the current step's code
            TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)

        # Interleaved: hash, login, hash, MFA login... so machine load hits all alike.
        timings = {"hash": [], "password only": [], "password + TOTP": []}
        with _variant("audited"):
            login_plain()
            for _ in range(25):
                timings["hash"] += _time(hash_once, 1)
                timings["password only"] += _time(login_plain, 1)
                timings["hash"] += _time(hash_once, 1)
                timings["password + TOTP"] += _time(login_mfa, 1, before=allow_reuse)
        hash_ms = _median_ms(timings["hash"])
        for label in ("password only", "password + TOTP"):
            median = _median_ms(timings[label])
            print(
                f"  login {label:16s} p50 {median:7.1f} ms  p95 {_p95_ms(timings[label]):7.1f} ms  "
                f"{1000 / median:6.1f} logins/s per process  one Argon2id verification = {hash_ms / median:5.1%} of it"
            )
        print(f"  one Argon2id verification p50 {hash_ms:.1f} ms (Django's default parameters)")

        # --- overhead beyond hashing: MD5 users, ModelBackend baseline, ours and axes ---------
        # Every variant runs in each of ROUNDS rounds (interleaved), so a busy machine slows
        # them alike; the medians over all rounds are compared.
        from axes.handlers.proxy import AxesProxyHandler
        from axes.models import AccessAttempt

        factory = RequestFactory()
        samples: dict[str, list[float]] = {}
        statements: dict[str, int] = {}

        def request():
            return factory.post("/accounts/login/", REMOTE_ADDR="198.51.100.20")

        def reset_counters():
            FailureCounter.objects.all().delete()

        axes_backends = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
        plain_backend = ["django.contrib.auth.backends.ModelBackend"]

        def measure(name: str, function, setup=None, per_round: int = ROUND_SIZE):
            """Time ``function`` ``per_round`` times after ``setup``; count its statements once, warm."""
            if name not in statements:
                if setup is not None:
                    setup()
                function()
                statements[name] = _queries(function)
            if setup is not None:
                setup()
            samples.setdefault(name, []).extend(_time(function, per_round))

        def reset_and_warm():
            reset_counters()
            failed_ours()  # counter rows exist, as for any account that has failed before

        def failed_ours():
            password_check(username="plain", password="wrong", client_ip="198.51.100.20")

        def refused_ours():
            password_check(username="plain", password=PASSWORD, client_ip="198.51.100.21")

        def lock_ours():
            reset_counters()
            for _ in range(5):
                password_check(username="plain", password="wrong", client_ip="198.51.100.21")

        def failed_plain():
            authenticate(request(), username="plain", password="wrong")

        def lock_axes():
            AccessAttempt.objects.all().delete()
            for _ in range(3):
                authenticate(request(), username="plain", password="wrong")

        with override_settings(PASSWORD_HASHERS=MD5):
            user_model.objects.filter(pk=plain.pk).update(password=make_password(PASSWORD))
            for _round in range(ROUNDS):
                with override_settings(AUTHENTICATION_BACKENDS=plain_backend):
                    measure("baseline", failed_plain)
                for variant in VARIANTS:
                    with _variant(variant):
                        # 1 + 3 failures per round stay below the per-IP limit (5): never locked here.
                        measure(f"failed/{variant}", failed_ours, setup=reset_and_warm, per_round=3)
                        measure(f"refused/{variant}", refused_ours, setup=lock_ours)
                with override_settings(
                    AXES_ENABLED=True, AUTHENTICATION_BACKENDS=axes_backends, AXES_FAILURE_LIMIT=1000
                ):
                    AxesProxyHandler.implementation = None
                    measure("failed/axes", failed_plain, setup=lambda: AccessAttempt.objects.all().delete())
                with override_settings(AXES_ENABLED=True, AUTHENTICATION_BACKENDS=axes_backends, AXES_FAILURE_LIMIT=3):
                    AxesProxyHandler.implementation = None
                    measure(
                        "refused/axes",
                        lambda: authenticate(request(), username="plain", password=PASSWORD),
                        setup=lock_axes,
                    )
                AxesProxyHandler.implementation = None

        base = _median_ms(samples["baseline"])
        print(
            f"cost beyond hashing ({ROUNDS} interleaved rounds; MD5 users; baseline: a plain ModelBackend "
            f"failure {base:.3f} ms, {statements['baseline']} statements)"
        )
        rows = {}
        for kind, title, subtract in (
            ("failed", "failed login", True),
            ("refused", "refused locked-out client", False),
        ):
            for variant, label in [*VARIANTS.items(), ("axes", "django-axes 8 defaults")]:
                name = f"{kind}/{variant}"
                milliseconds = _median_ms(samples[name]) - (base if subtract else 0)
                extra = statements[name] - (statements["baseline"] if subtract else 0)
                rows[name] = milliseconds
                print(f"  {title}, {label:36s} {milliseconds:7.3f} ms  {extra:+3d} statements")
        print(
            "  ratio ours (counters + audit event) / axes: "
            f"failed login {rows['failed/audited'] / rows['failed/axes']:.2f}x, "
            f"refusal {rows['refused/audited'] / rows['refused/axes']:.2f}x"
        )
    finally:
        connection.creation.destroy_test_db(old_config, verbosity=0)


if __name__ == "__main__":
    main()
