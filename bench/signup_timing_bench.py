"""Sign-up timing: a registered address against a new one, interleaved (the pen-test's oracle).

    .venv/bin/python bench/signup_timing_bench.py [--rounds 30]     # SQLite in a temporary folder
    scripts/with-postgres.sh .venv/bin/python bench/signup_timing_bench.py

Each round posts the sign-up form twice through the Django test client with the real Argon2id
hasher, once with an address that has an account and once with a new one, in a random order
(so drift of the machine falls on both alike). It prints both medians, their difference, the
median cost of one Argon2id hash, and the share of rounds in which the new address was slower
(about half when nothing leaks). Verdict: a leak if the medians differ by more than half a hash
— the work the two paths differed by before the fix; exit status 1 then.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

os.environ.setdefault("TEST_VAR_DIR", tempfile.mkdtemp(prefix="signup-bench-"))
_settings = types.ModuleType("signup_bench_settings")
exec("from config.settings.test import *", _settings.__dict__)  # noqa: S102 - our own settings module
_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
_settings.AUDIT_SEAL_MODE = "periodic"
_settings.ACCOUNTS_SIGNUP_RATE_PER_IP = _settings.ACCOUNTS_SIGNUP_RATE_PER_ADDRESS = ""  # the limits would answer early
_settings.LOGGING = {"version": 1, "disable_existing_loggers": True, "root": {"level": "ERROR"}}
sys.modules["signup_bench_settings"] = _settings
os.environ["DJANGO_SETTINGS_MODULE"] = "signup_bench_settings"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

PASSWORD = "bench passphrase 12345 !"


def _post(client: Client, username: str, email: str) -> float:
    started = time.perf_counter()
    response = client.post(
        "/accounts/signup/",
        {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 302:
        raise SystemExit(f"sign-up answered {response.status_code}, expected 302")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    old_config = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        get_user_model().objects.create_user(username="owner", email="owner@example.org", password=PASSWORD)
        client = Client()
        _post(client, "warm-new", "warm-new@example.org")  # first request loads templates, URLs
        _post(client, "warm-taken", "owner@example.org")
        registered: list[float] = []
        new: list[float] = []
        new_slower = 0
        for index in range(rounds):
            pair = [
                ("registered", f"taken-{index}", "owner@example.org"),
                ("new", f"new-{index}", f"new-{index}@example.org"),
            ]
            random.shuffle(pair)
            times = {kind: _post(client, username, email) for kind, username, email in pair}
            registered.append(times["registered"])
            new.append(times["new"])
            new_slower += times["new"] > times["registered"]
        hashes = []
        for _ in range(max(5, rounds // 3)):
            started = time.perf_counter()
            make_password(PASSWORD)
            hashes.append(time.perf_counter() - started)
    finally:
        connection.creation.destroy_test_db(old_config, verbosity=0)
    median_registered = statistics.median(registered) * 1000
    median_new = statistics.median(new) * 1000
    median_hash = statistics.median(hashes) * 1000
    difference = median_new - median_registered
    print(f"database: {connection.vendor}; {rounds} interleaved rounds, Argon2id")
    print(f"registered address: median {median_registered:.1f} ms")
    print(f"new address:        median {median_new:.1f} ms")
    print(f"difference:         {difference:+.1f} ms; one Argon2id hash: median {median_hash:.1f} ms")
    print(f"rounds where the new address was slower: {new_slower}/{rounds}")
    leak = abs(difference) > median_hash / 2
    print("verdict:", "LEAK: the paths differ by more than half a hash" if leak else "no timing oracle")
    sys.exit(1 if leak else 0)


if __name__ == "__main__":
    main()
