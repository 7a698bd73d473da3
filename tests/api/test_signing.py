"""Signed requests: the reference client signs, the server verifies, replays and tampering fail."""

from __future__ import annotations

import json
import threading
import time

import pytest
import time_machine
from django.db import connection
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from api import client as reference
from api import services, signing
from api.models import RequestNonce
from audit.models import AuditEvent
from memories.models import ContextShare, Memory, MemoryTag
from tests.api.conftest import signed

pytestmark = pytest.mark.django_db


@pytest.fixture
def memory(space):
    memory = Memory.objects.create(context=space.context, content="secret runbook", author=space.owner)
    MemoryTag.objects.create(memory=memory, name="ops")
    return memory


def path_of(memory) -> str:
    return f"/api/v2/memories/{memory.pk}/"


def signature_failures() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="api.request_signature_failed").order_by("pk"))


def test_a_signed_delete_from_the_reference_client_succeeds(alice, memory, issue_key, key_client):
    issued = issue_key(alice)
    path = path_of(memory)
    response = key_client(issued).delete(path, **signed(issued, "DELETE", path))
    assert response.status_code == 204, response.content
    assert not Memory.objects.filter(pk=memory.pk).exists()
    assert RequestNonce.objects.filter(api_key=issued.api_key).count() == 1


@pytest.mark.audit_coverage("api.request_signature_failed")
def test_an_unsigned_critical_request_is_refused_and_changes_nothing(alice, memory, issue_key, key_client):
    issued = issue_key(alice)
    response = key_client(issued).delete(path_of(memory))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "signature_required"
    assert Memory.objects.filter(pk=memory.pk).exists()
    [event] = signature_failures()
    assert event.context["reason"] == "signature_missing" and event.api_key_id == issued.prefix


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda h: {**h, "HTTP_X_SIGNATURE": "0" * 64}, "signature_mismatch"),
        (lambda h: {**h, "HTTP_X_SIGNATURE": "zz"}, "signature_headers_malformed"),
        (lambda h: {**h, "HTTP_X_SIGNATURE_NONCE": "short"}, "signature_headers_malformed"),
        (lambda h: {k: v for k, v in h.items() if k != "HTTP_X_SIGNATURE_NONCE"}, "signature_headers_incomplete"),
        (lambda h: {k: v for k, v in h.items() if k == "HTTP_X_SIGNATURE_TIMESTAMP"}, "signature_headers_incomplete"),
        (lambda h: {k: v for k, v in h.items() if k == "HTTP_X_SIGNATURE_NONCE"}, "signature_headers_incomplete"),
        (lambda h: {k: v for k, v in h.items() if k == "HTTP_X_SIGNATURE"}, "signature_headers_incomplete"),
        (
            lambda h: {**h, "HTTP_X_SIGNATURE_TIMESTAMP": str(int(h["HTTP_X_SIGNATURE_TIMESTAMP"]) + 1)},
            "signature_mismatch",
        ),
    ],
)
def test_a_tampered_signature_is_refused(alice, memory, issue_key, key_client, tamper, reason):
    issued = issue_key(alice)
    path = path_of(memory)
    response = key_client(issued).delete(path, **tamper(signed(issued, "DELETE", path)))
    assert response.status_code == 401
    assert Memory.objects.filter(pk=memory.pk).exists()
    assert signature_failures()[-1].context["reason"] == reason


def test_a_signature_for_another_request_is_refused(alice, memory, space, issue_key, key_client):
    issued = issue_key(alice)
    other = Memory.objects.create(context=space.context, content="other")
    # Signed for /memories/<other>/ but sent to /memories/<memory>/.
    response = key_client(issued).delete(path_of(memory), **signed(issued, "DELETE", path_of(other)))
    assert response.status_code == 401
    # Signed with another key's signing secret.
    stranger = issue_key(alice, name="second")
    headers = signed(stranger, "DELETE", path_of(memory))
    response = key_client(issued).delete(path_of(memory), **headers)
    assert response.status_code == 401
    assert Memory.objects.count() == 2


def test_the_body_is_signed(alice, space, issue_key, key_client, make_user, acquaint):
    friend = make_user("friend")
    acquaint(alice, friend)  # the API names only users who share an organization with the caller
    issued = issue_key(alice)
    path = f"/api/v2/contexts/{space.context.pk}/shares/"
    body = json.dumps({"user": "friend", "permission": "read"}).encode()
    headers = signed(issued, "POST", path, body)
    tampered = json.dumps({"user": "friend", "permission": "admin"}).encode()
    client = key_client(issued)
    response = client.generic("POST", path, tampered, content_type="application/json", **headers)
    assert response.status_code == 401
    assert not ContextShare.objects.exists()
    response = client.generic("POST", path, body, content_type="application/json", **signed(issued, "POST", path, body))
    assert response.status_code == 201, response.content
    assert ContextShare.objects.get().user == friend


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_outside_the_window_is_refused(alice, memory, issue_key, key_client, skew):
    issued = issue_key(alice)
    path = path_of(memory)
    # The clock stands still on a whole second: with a running clock, +301 s could be read by the
    # server a moment later as 300.x s away, inside the window (a flaky boundary, seen under load).
    with time_machine.travel(float(int(time.time())), tick=False):
        headers = signed(issued, "DELETE", path, timestamp=int(time.time()) + skew)
        response = key_client(issued).delete(path, **headers)
    assert response.status_code == 401
    assert signature_failures()[-1].context["reason"] == "timestamp_outside_window"


def test_the_window_follows_the_setting(alice, memory, issue_key, key_client, settings):
    settings.API_SIGNATURE_MAX_SKEW_SECONDS = 1000
    issued = issue_key(alice)
    path = path_of(memory)
    response = key_client(issued).delete(path, **signed(issued, "DELETE", path, timestamp=int(time.time()) - 900))
    assert response.status_code == 204


def test_a_replayed_request_is_refused(alice, space, issue_key, key_client):
    issued = issue_key(alice)
    first = Memory.objects.create(context=space.context, content="a")
    headers = signed(issued, "DELETE", path_of(first))
    client = key_client(issued)
    assert client.delete(path_of(first), **headers).status_code == 204
    # The same nonce again (even for a new object at the same path would need a new signature).
    replay = client.delete(path_of(first), **headers)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "signature_invalid"
    assert signature_failures()[-1].context["reason"] == "nonce_replayed"


def test_sessions_need_no_signature(alice, memory):
    client = APIClient()
    client.force_login(alice)
    assert client.delete(path_of(memory)).status_code == 204


@pytest.mark.parametrize(
    "method, path_template, body",
    [
        ("DELETE", "/api/v2/contexts/{context}/", None),
        ("POST", "/api/v2/contexts/{context}/transfer/", {"user": "alice"}),
        ("POST", "/api/v2/teams/{team}/members/", {"user": "bob", "role": "viewer"}),
        ("PUT", "/api/v2/teams/{team}/members/{alice}/", {"role": "owner"}),
        ("DELETE", "/api/v2/teams/{team}/members/{alice}/", None),
        ("DELETE", "/api/v1/memories/1/", None),
    ],
)
def test_every_critical_operation_needs_a_signature(
    alice, space, make_user, issue_key, key_client, method, path_template, body
):
    make_user("bob")
    path = path_template.format(context=space.context.pk, team=space.team.pk, alice=alice.pk)
    client = key_client(issue_key(alice))
    response = client.generic(method, path, json.dumps(body) if body else "", content_type="application/json")
    assert response.status_code == 401, (path, response.content)
    assert response.json()["error"]["code"] == "signature_required"


# --- the nonce store works across processes --------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_database_nonce_store_lets_exactly_one_of_concurrent_requests_through(alice, issue_key):
    issued = issue_key(alice)
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def consume():
        try:
            barrier.wait()
            results.append(services.request_nonce_consume(api_key=issued.api_key, nonce="the-same-nonce-123"))
        finally:
            connection.close()

    threads = [threading.Thread(target=consume) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]


@pytest.mark.redis
def test_the_redis_nonce_store_is_shared_between_processes(alice, issue_key, settings):
    from django.core.cache.backends.redis import RedisCache

    from tests.support.servers import redis_server

    issued = issue_key(alice)
    with redis_server() as url:
        settings.CACHES = {
            **settings.CACHES,
            "api": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url},
        }
        settings.API_SIGNATURE_NONCE_STORE = "cache"
        from api.checks import check_nonce_store

        assert check_nonce_store() == []
        # Two independent clients stand for two processes: the second sees the first's nonce.
        other_process = RedisCache(url, {})
        assert services.request_nonce_consume(api_key=issued.api_key, nonce="shared-nonce-0001")
        assert other_process.get(f"api:nonce:{issued.api_key.pk}:shared-nonce-0001") == 1
        assert not services.request_nonce_consume(api_key=issued.api_key, nonce="shared-nonce-0001")
        assert not RequestNonce.objects.exists()


def test_old_nonces_are_purged(alice, issue_key, time_machine):
    from django.utils import timezone

    time_machine.move_to(timezone.now(), tick=False)
    issued = issue_key(alice)
    services.request_nonce_consume(api_key=issued.api_key, nonce="old-nonce-000001")
    time_machine.shift(2 * 60 * 60 - 1)  # kept 2 h (API_SIGNATURE_NONCE_RETENTION_SECONDS): not yet
    assert services.request_nonces_purge() == 0
    time_machine.shift(2)
    services.request_nonce_consume(api_key=issued.api_key, nonce="new-nonce-000001")
    assert services.request_nonces_purge() == 1
    assert list(RequestNonce.objects.values_list("nonce", flat=True)) == ["new-nonce-000001"]


def test_nonces_are_kept_twice_the_window_when_that_is_longer_than_the_retention(settings):
    settings.API_SIGNATURE_NONCE_RETENTION_SECONDS = 60
    settings.API_SIGNATURE_MAX_SKEW_SECONDS = 300
    assert services.nonce_retention_seconds() == 600
    settings.API_SIGNATURE_NONCE_RETENTION_SECONDS = 7200
    assert services.nonce_retention_seconds() == 7200


# --- the reference client and the server agree on the canonical form -------------------------
class _FakeRequest:
    def __init__(self, method, path, query, body, headers):
        self.method = method
        self.path = path
        self.body = body
        self.META = {"QUERY_STRING": query, **headers}


class _FakeKey:
    prefix = "abcdefghijkl"
    signing_secret = "nvs_" + "s" * 43


_path_segment = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), max_size=8)
_query_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="&=#"), max_size=6)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    segments=st.lists(_path_segment, max_size=4),
    query=st.lists(st.tuples(_query_text, _query_text), max_size=4),
    body=st.binary(max_size=64),
)
def test_the_server_verifies_what_the_reference_client_signs(method, segments, query, body):
    from urllib.parse import quote, urlencode

    raw_path = "/api/" + "/".join(quote(segment, safe="") for segment in segments)
    query_string = urlencode(query)
    headers = reference.signature_headers(
        key=f"nvk_{_FakeKey.prefix}_" + "k" * 43,
        signing_secret=_FakeKey.signing_secret,
        method=method,
        path=raw_path + ("?" + query_string if query_string else ""),
        body=body,
    )
    from urllib.parse import unquote

    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    # The server sees the decoded path (PATH_INFO) and the raw query string, as WSGI gives them.
    request = _FakeRequest(method, unquote(raw_path), query_string, body, meta)
    assert signing.verify(request, api_key=_FakeKey()) == headers["X-Signature-Nonce"]
    # Query order does not matter; a changed value does.
    if len(query) > 1:
        request.META["QUERY_STRING"] = urlencode(list(reversed(query)))
        assert signing.verify(request, api_key=_FakeKey())


def test_the_canonical_form_is_the_documented_one():
    canonical = signing.canonical_request(
        method="delete",
        path="/api/v2/memories/42/",
        query_string="b=2&a=1&a=0&s=x y",
        timestamp="1764338000",
        nonce="q0D1r0v6mYx0Yk3tJ8dH4w",
        key_prefix="k3x9q2mwa7bd",
        body=b"",
    )
    assert canonical == (
        b"NV1-HMAC-SHA256\nDELETE\n/api/v2/memories/42/\na=0&a=1&b=2&s=x%20y\n1764338000\n"
        b"q0D1r0v6mYx0Yk3tJ8dH4w\nk3x9q2mwa7bd\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


# --- the cheap path (issue #17): the secret kept briefly, nonces in Redis when Redis is there ---
def test_the_signing_secret_is_loaded_once_and_a_wrong_signature_is_still_refused(alice, space, issue_key, key_client):
    from django.test.utils import CaptureQueriesContext

    issued = issue_key(alice)
    client = key_client(issued)
    memories = [Memory.objects.create(context=space.context, content=f"m{n}") for n in range(3)]
    assert client.delete(path_of(memories[0]), **signed(issued, "DELETE", path_of(memories[0]))).status_code == 204
    with CaptureQueriesContext(connection) as queries:
        response = client.delete(path_of(memories[1]), **signed(issued, "DELETE", path_of(memories[1])))
    assert response.status_code == 204
    assert not [query for query in queries.captured_queries if "signing_secret" in query["sql"]]
    # Kept or not, the secret decides: a signature made with another secret is refused.
    forged = signed(issued, "DELETE", path_of(memories[2]))
    signature_header = next(name for name in forged if name.endswith("SIGNATURE"))
    forged[signature_header] = "0" * 64
    assert client.delete(path_of(memories[2]), **forged).status_code == 401
    assert Memory.objects.filter(pk=memories[2].pk).exists()


def test_without_the_secret_cache_the_secret_is_loaded_every_time(alice, space, issue_key, key_client, settings):
    from django.test.utils import CaptureQueriesContext

    settings.API_SIGNATURE_SECRET_CACHE_SECONDS = 0
    issued = issue_key(alice)
    client = key_client(issued)
    memories = [Memory.objects.create(context=space.context, content=f"m{n}") for n in range(2)]
    assert client.delete(path_of(memories[0]), **signed(issued, "DELETE", path_of(memories[0]))).status_code == 204
    with CaptureQueriesContext(connection) as queries:
        client.delete(path_of(memories[1]), **signed(issued, "DELETE", path_of(memories[1])))
    assert [query for query in queries.captured_queries if "signing_secret" in query["sql"]]


def test_the_default_nonce_store_is_the_database_without_redis(alice, issue_key):
    from api import conf

    assert conf.get("API_SIGNATURE_NONCE_STORE") == "auto"
    issued = issue_key(alice)
    assert services.request_nonce_consume(api_key=issued.api_key, nonce="local-nonce-00001")
    assert RequestNonce.objects.filter(nonce="local-nonce-00001").exists()


@pytest.mark.redis
def test_with_redis_the_default_nonce_store_is_redis_and_refuses_a_replay_from_another_process(
    alice, space, issue_key, key_client, settings
):
    from django.core.cache.backends.redis import RedisCache

    from tests.support.servers import redis_server

    issued = issue_key(alice)
    memory = Memory.objects.create(context=space.context, content="x")
    with redis_server() as url:
        settings.CACHES = {
            **settings.CACHES,
            "api": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url},
        }
        headers = signed(issued, "DELETE", path_of(memory))
        nonce = next(value for name, value in headers.items() if name.endswith("NONCE"))
        # Another process saw this nonce first (its own Redis client): this one refuses it.
        other_process = RedisCache(url, {})
        assert other_process.add(f"api:nonce:{issued.api_key.pk}:{nonce}", 1, timeout=600)
        replay = key_client(issued).delete(path_of(memory), **headers)
        assert replay.status_code == 401 and signature_failures()[-1].context["reason"] == "nonce_replayed"
        assert Memory.objects.filter(pk=memory.pk).exists()
        fresh = signed(issued, "DELETE", path_of(memory))
        assert key_client(issued).delete(path_of(memory), **fresh).status_code == 204
        assert not RequestNonce.objects.exists()  # nothing written to the database store


# --- edges the mutation run (make mutation, docs/mutation.md) found unpinned ---------------------
@pytest.mark.parametrize("skew", [-300, 300])
def test_a_timestamp_exactly_at_the_edge_of_the_window_is_accepted(alice, memory, issue_key, key_client, skew):
    """Refused is *more than* ``API_SIGNATURE_MAX_SKEW_SECONDS`` away (docs/decisions/request-signing.md)."""
    issued = issue_key(alice)
    path = path_of(memory)
    with time_machine.travel(float(int(time.time())), tick=False):
        headers = signed(issued, "DELETE", path, timestamp=int(time.time()) + skew)
        response = key_client(issued).delete(path, **headers)
    assert response.status_code == 204, response.content
    assert not signature_failures()


@pytest.mark.parametrize(
    "tamper, code",
    [
        (lambda h: {k: v for k, v in h.items() if not k.endswith("SIGNATURE")}, "signature_required"),
        (lambda h: {k: v for k, v in h.items() if not k.endswith("TIMESTAMP")}, "signature_required"),
        (lambda h: {**h, "HTTP_X_SIGNATURE_TIMESTAMP": "soon"}, "signature_invalid"),
        (lambda h: {**h, "HTTP_X_SIGNATURE_NONCE": "n" * 65}, "signature_invalid"),
        (lambda h: {**h, "HTTP_X_SIGNATURE": "0" * 64}, "signature_invalid"),
    ],
)
def test_incomplete_headers_ask_for_a_signature_and_bad_ones_are_invalid(
    alice, memory, issue_key, key_client, tamper, code
):
    """Clients tell "sign this" (``signature_required``) from "your signature is wrong" by the code."""
    issued = issue_key(alice)
    path = path_of(memory)
    response = key_client(issued).delete(path, **tamper(signed(issued, "DELETE", path)))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    [failure] = signature_failures()  # recorded once, and not again as a refused key by the error handler
    assert failure.context["status"] == 401  # the trail records what was answered
    assert not AuditEvent.objects.filter(action="api.key_refused").exists()
    assert Memory.objects.filter(pk=memory.pk).exists()


def test_a_signature_in_upper_case_hex_is_accepted(alice, memory, issue_key, key_client):
    issued = issue_key(alice)
    path = path_of(memory)
    headers = signed(issued, "DELETE", path)
    headers["HTTP_X_SIGNATURE"] = headers["HTTP_X_SIGNATURE"].upper()
    assert key_client(issued).delete(path, **headers).status_code == 204


class _CountingKey:
    """A key whose signing secret counts how often it is loaded (a query and a decryption)."""

    def __init__(self, pk: int):
        self.pk = pk
        self.prefix = f"prefix{pk:06d}"
        self._secret = "nvs_secret"
        self.loads = 0

    @property
    def signing_secret(self) -> str:
        self.loads += 1
        return self._secret


def test_the_kept_secret_is_loaded_again_once_its_lifetime_is_over(settings, monkeypatch):
    settings.API_SIGNATURE_SECRET_CACHE_SECONDS = 60
    clock = [1000.0]
    monkeypatch.setattr(signing.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(signing, "_SECRETS", {})
    key = _CountingKey(1)
    assert signing.signing_secret(key) == "nvs_secret" and key.loads == 1
    clock[0] += 59.9
    assert signing.signing_secret(key) == "nvs_secret" and key.loads == 1
    clock[0] += 0.1  # exactly the lifetime: no longer kept
    assert signing.signing_secret(key) == "nvs_secret" and key.loads == 2
    clock[0] += 61  # well past the second lifetime
    assert signing.signing_secret(key) == "nvs_secret" and key.loads == 3
    # A key that has never been saved (no id) is never kept.
    unsaved = _CountingKey(2)
    unsaved.pk = None
    signing.signing_secret(unsaved)
    signing.signing_secret(unsaved)
    assert unsaved.loads == 2


def test_at_most_the_bound_of_secrets_is_kept_in_memory(settings, monkeypatch):
    """The cache is bounded: a flood of keys cannot grow the process without limit."""
    settings.API_SIGNATURE_SECRET_CACHE_SECONDS = 60
    monkeypatch.setattr(signing, "_SECRETS", {})
    monkeypatch.setattr(signing, "_SECRETS_MAX", 3)
    keys = [_CountingKey(n) for n in range(1, 5)]
    for key in keys[:3]:
        signing.signing_secret(key)
    assert len(signing._SECRETS) == 3
    signing.signing_secret(keys[3])  # the fourth empties the cache first, then keeps itself
    assert len(signing._SECRETS) == 1
    signing.signing_secret(keys[3])
    assert keys[3].loads == 1
    # Two threads can both pass the check before either adds its key, leaving one more than the
    # bound: the next new key still empties the cache.
    monkeypatch.setattr(signing, "_SECRETS", {(n, f"x{n}"): ("s", float("inf")) for n in range(4)})
    signing.signing_secret(keys[0])
    assert len(signing._SECRETS) == 1
