"""Cost of the API security layer, measured side by side in one run.

    .venv/bin/python bench/api_bench.py                      # SQLite
    scripts/with-postgres.sh .venv/bin/python bench/api_bench.py   # PostgreSQL
    .venv/bin/python bench/api_bench.py --requests 5000      # more samples

It creates a throwaway database (Django's test-database machinery), runs, prints, and drops it.

1. A memory read, ``GET /api/v2/memories/<id>/`` — the real view, which also records the
   ``memory.read`` audit event — through the whole Django stack (test client → middleware → DRF →
   service → database), in variants that differ only in the security layer:

   - ``base``: the layer off — the project's other middleware, a no-cost authentication (the user
     is already known), ``IsAuthenticated`` only, no throttles;
   - ``+key auth``: API-key authentication (one indexed query, one HMAC, constant-time compare,
     last-used check) with the scope and signature permissions;
   - ``+limits``: the API middleware (credentials in URL, sunset, body size, content type,
     deprecation look-up) and the three throttles (per key, user, IP; two cache operations each);
   - ``+headers``: CSP (django-csp) and the security-headers middleware;
   - ``full``: all of it (what production serves);
   - ``session auth`` for reference: the base with Django's session authentication instead.

   Variants run interleaved in rounds (so drift hits all alike); each figure is the median of
   ``--requests`` requests. The ratio is against ``base``.
2. Audit: the last-used write (one conditional UPDATE and one ``api.key_used`` event, at most
   once a minute per key) and the deprecated-call count (per call on a deprecated endpoint).
3. Signature verification per request: canonical form + HMAC-SHA256 + constant-time compare, and
   the nonce insert into the database store.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ.setdefault("TEST_VAR_DIR", tempfile.mkdtemp(prefix="api-bench-"))
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    # Events are sealed by the periodic task, not in the request: the view's own audit write
    # stays, and no sealer thread competes for SQLite's write lock while we time requests.
    os.environ.setdefault("AUDIT_SEAL_MODE", "periodic")
    import django

    django.setup()
    import logging

    logging.disable(logging.WARNING)


LAYER_MIDDLEWARE = {
    "core.middleware.ContentSecurityPolicyMiddleware",
    "core.middleware.SecurityHeadersMiddleware",
    "api.middleware.ApiRequestMiddleware",
}
HEADER_MIDDLEWARE = {"core.middleware.ContentSecurityPolicyMiddleware", "core.middleware.SecurityHeadersMiddleware"}


def _views(user):
    """The memory detail view with each combination of the layer's DRF parts."""
    from rest_framework.authentication import BaseAuthentication, SessionAuthentication
    from rest_framework.parsers import JSONParser
    from rest_framework.permissions import IsAuthenticated

    from api.authentication import ApiKeyAuthentication
    from api.parsers import LimitedJSONParser
    from api.permissions import ApiKeyScopes, SignedRequest
    from api.throttling import ApiKeyThrottle, IPThrottle, UserThrottle
    from memories.api.views import MemoryDetailV2View

    class KnownUser(BaseAuthentication):
        """The layer off: the user is already known (no query, no hashing)."""

        def authenticate(self, request):
            return (user, None)

    def variant(*, key: bool, limits: bool, session: bool = False):
        authentication = [ApiKeyAuthentication] if key else [SessionAuthentication] if session else [KnownUser]
        permissions = [IsAuthenticated, ApiKeyScopes, SignedRequest] if key else [IsAuthenticated]
        return type(
            "BenchView",
            (MemoryDetailV2View,),
            {
                "authentication_classes": authentication,
                "permission_classes": permissions,
                "throttle_classes": [ApiKeyThrottle, UserThrottle, IPThrottle] if limits else [],
                "parser_classes": [LimitedJSONParser] if limits else [JSONParser],
            },
        ).as_view()

    return {
        "base": variant(key=False, limits=False),
        "key": variant(key=True, limits=False),
        "limits": variant(key=False, limits=True),
        "headers": variant(key=False, limits=False),
        "full": variant(key=True, limits=True),
        "session": variant(key=False, limits=False, session=True),
    }


# A URLconf with one route per variant, under /api/v2/ so the API middleware applies.
BENCH_URLCONF = "api_bench_urls"


def _clients(issued_key: str, user):
    import types

    from django.conf import settings
    from django.test import Client, override_settings
    from django.urls import path

    views = _views(user)
    urlconf = types.ModuleType(BENCH_URLCONF)
    urlconf.urlpatterns = [path(f"api/v2/bench-{name}/memories/<int:memory_id>/", view) for name, view in views.items()]
    sys.modules[BENCH_URLCONF] = urlconf
    base_middleware = [name for name in settings.MIDDLEWARE if name not in LAYER_MIDDLEWARE]
    full_middleware = list(settings.MIDDLEWARE)
    header_middleware = [name for name in settings.MIDDLEWARE if name not in LAYER_MIDDLEWARE - HEADER_MIDDLEWARE]
    limit_middleware = [name for name in settings.MIDDLEWARE if name not in HEADER_MIDDLEWARE]
    plan = {
        "base": base_middleware,
        "key": base_middleware,
        "limits": limit_middleware,
        "headers": header_middleware,
        "full": full_middleware,
        "session": base_middleware,
    }
    clients = {}
    for name, middleware in plan.items():
        with override_settings(MIDDLEWARE=middleware, ROOT_URLCONF=BENCH_URLCONF):
            client = Client(HTTP_AUTHORIZATION=f"Bearer {issued_key}") if name in {"key", "full"} else Client()
            if name == "session":
                client.force_login(user)
            client.handler.load_middleware()  # fix the chain now, while the override holds
        clients[name] = client
    return clients


def _measure_reads(clients: dict, memory_id: int, requests: int) -> dict[str, float]:
    from django.test import override_settings

    samples: dict[str, list[float]] = {name: [] for name in clients}
    with override_settings(
        ROOT_URLCONF=BENCH_URLCONF,
        API_THROTTLE_RATES={"api_key": "1000000/min", "user": "1000000/min", "ip": "1000000/min"},
    ):
        for name, client in clients.items():  # warm-up
            for _ in range(20):
                response = client.get(f"/api/v2/bench-{name}/memories/{memory_id}/")
                assert response.status_code == 200, (name, response.status_code, response.content[:200])
        for _ in range(requests):
            for name, client in clients.items():
                url = f"/api/v2/bench-{name}/memories/{memory_id}/"
                started = time.perf_counter()
                client.get(url)
                samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def _measure_audit(issued, user, memory_id: int, rounds: int) -> list[tuple[str, str]]:
    from django.test import Client, override_settings

    from api import services
    from api.models import ApiKey

    key = ApiKey.objects.select_related("user").get(pk=issued.api_key.pk)
    writes = []
    for _ in range(rounds):
        key.last_used_at = None
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=None)
        started = time.perf_counter()
        services.api_key_mark_used(api_key=key, client_ip="192.0.2.1")
        writes.append(time.perf_counter() - started)
    skips = []
    for _ in range(rounds):
        started = time.perf_counter()
        services.api_key_mark_used(api_key=key, client_ip="192.0.2.1")
        skips.append(time.perf_counter() - started)
    deprecation = [
        {
            "path_prefix": "/api/v1/memories/",
            "deprecated_at": "2020-01-01T00:00:00+00:00",
            "sunset_at": "2099-01-01T00:00:00+00:00",
            "successor": "/api/v2/memories/",
            "notes_anchor": "v1-memories",
        }
    ]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    rates = {"api_key": "1000000/min", "user": "1000000/min", "ip": "1000000/min"}
    timings: dict[str, list[float]] = {"deprecated": [], "current": []}
    for _ in range(rounds):
        for label, registry in (("deprecated", deprecation), ("current", [])):
            with override_settings(API_DEPRECATIONS=registry, API_THROTTLE_RATES=rates):
                started = time.perf_counter()
                client.get(f"/api/v1/memories/{memory_id}/")
                timings[label].append(time.perf_counter() - started)
    write = statistics.median(writes)
    deprecated_cost = statistics.median(timings["deprecated"]) - statistics.median(timings["current"])
    return [
        ("last-used write + api.key_used event (once a minute per key)", f"{write * 1e6:8.1f} µs per write"),
        ("  amortised at 10 requests/s per key", f"{write / 600 * 1e6:8.2f} µs per request"),
        ("last-used check when no write is due", f"{statistics.median(skips) * 1e6:8.2f} µs per request"),
        ("deprecated-call count (v1 endpoint, per call)", f"{deprecated_cost * 1e6:8.1f} µs per request"),
    ]


def _measure_components(issued, user, memory_id: int, rounds: int) -> list[tuple[str, str]]:
    """Each piece of the layer timed on its own, in-process (less noise than whole requests)."""
    from django.http import JsonResponse
    from django.test import RequestFactory, override_settings
    from rest_framework.request import Request

    from api.authentication import ApiKeyAuthentication
    from api.middleware import ApiRequestMiddleware
    from api.throttling import ApiKeyThrottle, IPThrottle, UserThrottle
    from core.middleware import ContentSecurityPolicyMiddleware, SecurityHeadersMiddleware
    from memories.api.views import MemoryDetailV2View

    factory = RequestFactory()
    path = f"/api/v2/memories/{memory_id}/"

    def request():
        django_request = factory.get(path, HTTP_AUTHORIZATION=f"Bearer {issued.key}")
        django_request.client_ip = "192.0.2.1"
        django_request.user = user
        return django_request

    response_body = {"id": memory_id, "content": "x" * 200}
    api_middleware = ApiRequestMiddleware(lambda r: JsonResponse(response_body))
    headers_middleware = ContentSecurityPolicyMiddleware(
        SecurityHeadersMiddleware(lambda r: JsonResponse(response_body))
    )
    view = MemoryDetailV2View()
    throttles = [ApiKeyThrottle(), UserThrottle(), IPThrottle()]
    authentication = ApiKeyAuthentication()

    def time_it(function) -> float:
        for _ in range(20):
            function()
        values = []
        for _ in range(rounds):
            started = time.perf_counter()
            function()
            values.append(time.perf_counter() - started)
        return statistics.median(values)

    def authenticate():
        authentication.authenticate(Request(request()))

    def throttle():
        drf_request = Request(request())
        drf_request._user, drf_request._auth = user, issued.api_key
        for throttle_ in throttles:
            throttle_.allow_request(drf_request, view)

    def api_checks():
        django_request = request()
        api_middleware.process_view(django_request, view, (), {})
        api_middleware(django_request)

    def headers():
        headers_middleware(request())

    def bare_request():
        request()

    rates = {"api_key": "1000000/min", "user": "1000000/min", "ip": "1000000/min"}
    with override_settings(API_THROTTLE_RATES=rates):
        baseline = time_it(bare_request)  # building the test request, subtracted below
        rows = [
            ("key auth: query by prefix + HMAC + compare + checks", time_it(authenticate)),
            ("limits: 3 throttles (incr + get each, API cache)", time_it(throttle)),
            ("limits: API middleware (URL, sunset, size, type, deprecation)", time_it(api_checks)),
            ("headers: CSP + Permissions-Policy + no-store", time_it(headers)),
        ]
    return [(label, f"{max(0.0, value - baseline) * 1e6:8.1f} µs per request") for label, value in rows]


def _measure_signature(issued, rounds: int) -> list[tuple[str, str]]:
    import hashlib

    from api import services, signing
    from api.client import signature_headers
    from api.models import ApiKey

    key = ApiKey.objects.get(pk=issued.api_key.pk)
    secret = key.signing_secret  # decrypted once, as the permission does per request
    body = b'{"user": "friend", "permission": "read"}'

    class Request:
        method = "POST"
        path = "/api/v2/contexts/1/shares/"
        META: dict = {}

    request = Request()
    request.body = body
    verify_times, decrypt_times, nonce_times = [], [], []
    for number in range(rounds):
        headers = signature_headers(key=issued.key, signing_secret=secret, method="POST", path=request.path, body=body)
        request.META = {"QUERY_STRING": "", **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}}
        started = time.perf_counter()
        signing.verify(request, api_key=key)
        verify_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        ApiKey.objects.only("signing_secret").get(pk=key.pk).signing_secret  # noqa: B018 - load + decrypt
        decrypt_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        services.request_nonce_consume(api_key=key, nonce=hashlib.sha256(str(number).encode()).hexdigest()[:32])
        nonce_times.append(time.perf_counter() - started)
    verify, decrypt, nonce = (statistics.median(values) for values in (verify_times, decrypt_times, nonce_times))
    return [
        ("signature: canonical form + HMAC-SHA256 + compare", f"{verify * 1e6:8.1f} µs per request"),
        ("signature: load + decrypt the signing secret", f"{decrypt * 1e6:8.1f} µs per request"),
        ("signature: nonce insert (database store)", f"{nonce * 1e6:8.1f} µs per request"),
        ("signature: total per signed request", f"{(verify + decrypt + nonce) * 1e6:8.1f} µs per request"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="Requests per variant (median reported).")
    parser.add_argument("--rounds", type=int, default=300, help="Repetitions of the audit and signature figures.")
    arguments = parser.parse_args()
    _setup_django()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        from django.contrib.auth import get_user_model

        from api import services
        from api.scopes import SCOPES
        from memories.models import Context, Memory, MemoryTag

        vendor = connection.vendor
        python = sys.version.split()[0]
        print(f"database: {vendor}  cpus: {os.cpu_count()}  python: {python}  requests/variant: {arguments.requests}")
        user = get_user_model().objects.create_user(username="bench", password="bench-password-0123456789")
        context = Context.objects.create(name="Bench", scope="personal", owner_user=user, created_by=user)
        memory = Memory.objects.create(context=context, content="a memory of moderate length " * 8, author=user)
        MemoryTag.objects.bulk_create([MemoryTag(memory=memory, name=name) for name in ("ops", "db", "deploy")])
        issued = services.api_key_issue(actor=user, owner=user, name="bench", scopes=list(SCOPES))
        clients = _clients(issued.key, user)
        medians = _measure_reads(clients, memory.pk, arguments.requests)
        base = medians["base"]
        labels = {
            "base": "base (layer off)",
            "key": "+key auth (scopes, signature check)",
            "limits": "+limits (API middleware, 3 throttles)",
            "headers": "+headers (CSP, Permissions-Policy, no-store)",
            "full": "full layer",
            "session": "reference: session auth instead of key",
        }
        rows = [("memory read GET /api/v2/memories/<id>/", "median      vs base     added")]
        for name in ("base", "key", "limits", "headers", "full", "session"):
            value = medians[name]
            rows.append(
                (f"  {labels[name]}", f"{value * 1e6:8.1f} µs  {value / base:6.3f}x  {(value - base) * 1e6:+8.1f} µs")
            )
        rows.append(("  full layer vs session-authenticated view", f"{medians['full'] / medians['session']:6.3f}x"))
        _print(rows)
        issued_info = type("Issued", (), {"api_key": issued.api_key, "key": issued.key})()
        print()
        _print([("where the time goes (each piece alone, in-process)", "median")])
        _print(_measure_components(issued_info, user, memory.pk, arguments.rounds * 10))
        print()
        _print(_measure_audit(issued_info, user, memory.pk, arguments.rounds))
        print()
        _print(_measure_signature(issued_info, arguments.rounds))
    finally:
        connection.creation.destroy_test_db(test_name, verbosity=0)


def _print(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}", flush=True)


if __name__ == "__main__":
    main()
