"""Timing normalisation of API-key authentication (OWASP ASVS 4.0.3 V2.2.1, Authentication Cheat Sheet).

An unknown key, a wrong secret for a real key, a malformed key and an expired key do the same
work (one indexed query by prefix, one HMAC, one constant-time comparison, one audit insert), so
their times must not tell them apart; and a failure must not be faster than a success by more than
the audit insert it adds. Lower quartiles of interleaved runs through the whole stack, bounded with
room for a busy CI machine.
"""

from __future__ import annotations

import statistics
import time

import pytest
from django.test import Client
from django.utils import timezone

from api.models import ApiKey

pytestmark = pytest.mark.django_db

ROUNDS = 80
PATH = "/api/v2/organizations/"  # a cheap view: the authentication dominates


def _quartile_times(clients: dict[str, Client]) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for client in clients.values():  # warm up every path once
        client.get(PATH)
    for _ in range(ROUNDS):
        for name, client in clients.items():
            started = time.perf_counter()
            client.get(PATH)
            samples[name].append(time.perf_counter() - started)
    # The lower quartile: the time the work takes, least disturbed by the rest of a busy machine
    # (garbage collection, other processes), which only ever adds time.
    return {name: statistics.quantiles(values, n=4)[0] for name, values in samples.items()}


def test_authentication_failures_take_the_same_time_whatever_is_wrong(alice, issue_key, settings):
    settings.API_THROTTLE_RATES = {}
    # Monitoring reacts to each refusal after commit (a burst of 30 raises an alert, with its own
    # writes and notifications): that is its business, not the authentication's, and 60 rounds
    # would cross the threshold at a different moment for each path. Keep it counting, silently.
    settings.MONITORING_API_ERROR_THRESHOLD = 10**9
    valid = issue_key(alice, scopes=["organizations:read"])
    expired = issue_key(alice, name="expired")
    ApiKey.objects.filter(pk=expired.api_key.pk).update(expires_at=timezone.now())
    wrong_secret = valid.key[:-6] + ("A" * 6 if not valid.key.endswith("A" * 6) else "B" * 6)
    unknown = "nvk_aaaaaaaaaaaa_" + valid.key.split("_", 2)[2]
    clients = {
        "success": Client(HTTP_AUTHORIZATION=f"Bearer {valid.key}"),
        "unknown_key": Client(HTTP_AUTHORIZATION=f"Bearer {unknown}"),
        "wrong_secret": Client(HTTP_AUTHORIZATION=f"Bearer {wrong_secret}"),
        "malformed": Client(HTTP_AUTHORIZATION="Bearer nvk_not-a-key"),
        "expired": Client(HTTP_AUTHORIZATION=f"Bearer {expired.key}"),
    }
    assert clients["success"].get(PATH).status_code == 200
    assert all(clients[name].get(PATH).status_code == 401 for name in clients if name != "success")
    times = _quartile_times(clients)
    failures = {name: value for name, value in times.items() if name != "success"}
    fastest, slowest = min(failures.values()), max(failures.values())
    report = ", ".join(f"{name} {value * 1e3:.3f} ms" for name, value in times.items())
    # The failure paths are indistinguishable: within 25 % (or 0.5 ms) of each other.
    assert slowest - fastest <= max(0.25 * fastest, 0.0005), report
    # A success is not distinguishable from a failure beyond the audit insert a failure adds:
    # both within a factor of 2 (or 2 ms) of each other.
    assert abs(times["success"] - statistics.median(failures.values())) <= max(times["success"], 0.002), report
    print(report)
