"""Request validation: body size (413), Content-Length (411), content type (415), JSON structure and
unknown fields (400), and rate limits per key, per user and per IP (429 with Retry-After).

Every refusal is the envelope, an audit event, and no change to the data.
"""

from __future__ import annotations

import json

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from audit.models import AuditEvent
from memories.models import Context, Memory

pytestmark = pytest.mark.django_db

MEMORIES = "/api/v2/memories/"
CONTEXTS = "/api/v2/contexts/"


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("pk")


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["request_id"] == response["X-Request-ID"]
    return body["error"]


@pytest.fixture
def session(alice):
    client = APIClient()
    client.force_login(alice)
    return client


def test_a_body_over_the_global_limit_is_413_before_it_is_read(session, space, settings):
    settings.API_MAX_BODY_BYTES = 100
    body = json.dumps({"name": "x" * 200, "scope": "personal"})
    error = assert_envelope(
        session.generic("POST", CONTEXTS, body, content_type="application/json"), 413, "payload_too_large"
    )
    assert "100" in error["message"]
    assert Context.objects.count() == 1
    event = last_event("api.request_rejected")
    assert event.context["reason"] == "body_too_large" and event.context["limit"] == 100
    assert event.actor_username == "alice"  # the session user is known; the body was never read


def test_memory_endpoints_allow_larger_bodies_and_overrides_win(session, space, settings):
    settings.API_MAX_BODY_BYTES = 100
    body = json.dumps({"context_id": space.context.pk, "content": "y" * 5000})
    assert session.generic("POST", MEMORIES, body, content_type="application/json").status_code == 201
    settings.API_BODY_LIMITS = {"api-v2:memory-list": 1000}
    response = session.generic("POST", MEMORIES, body, content_type="application/json")
    assert_envelope(response, 413, "payload_too_large")
    assert Memory.objects.count() == 1


def test_a_body_without_content_length_is_411(session, space):
    response = session.generic("POST", CONTEXTS, b"", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked")
    assert_envelope(response, 411, "length_required")
    assert last_event("api.request_rejected").context["reason"] == "length_required"


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_a_body_that_is_not_json_is_415(session, space, content_type):
    response = session.generic("POST", CONTEXTS, b'{"name": "n", "scope": "personal"}', content_type=content_type)
    assert_envelope(response, 415, "unsupported_media_type")
    assert Context.objects.count() == 1
    event = last_event("api.request_rejected")
    assert event.context["reason"] == "content_type"


def test_json_with_a_charset_is_accepted(session, space):
    response = session.generic(
        "POST", CONTEXTS, b'{"name": "n", "scope": "personal"}', content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "document, message",
    [
        ({"name": "n", "scope": "personal", "x": [[[[[[1]]]]]]}, "nested deeper than 5"),
        ({"name": "n", "scope": "personal", "x": list(range(11))}, "more than 10 items"),
        ({"name": "n", "scope": "personal", **{f"k{i}": i for i in range(11)}}, "more than 10 keys"),
    ],
)
def test_json_structure_limits_are_400(session, space, settings, document, message):
    settings.API_JSON_MAX_DEPTH = 5
    settings.API_JSON_MAX_ARRAY_LENGTH = 10
    settings.API_JSON_MAX_OBJECT_KEYS = 10
    error = assert_envelope(session.post(CONTEXTS, document, format="json"), 400, "invalid")
    assert message in error["message"]
    assert Context.objects.count() == 1
    assert last_event("api.request_rejected").context["reason"] == "json_limits"


def test_unknown_fields_are_400_naming_them_and_recorded(session, space):
    response = session.post(CONTEXTS, {"name": "n", "scope": "personal", "owner_user": 1}, format="json")
    error = assert_envelope(response, 400, "invalid")
    assert error["fields"] == {"owner_user": ["Unknown field."]}
    event = last_event("api.request_rejected")
    assert event.context["reason"] == "invalid" and event.context["fields"] == ["owner_user"]
    assert event.actor_username == "alice"


def test_v2_tags_reject_unknown_fields_inside_objects(session, space):
    response = session.post(
        MEMORIES,
        {"context_id": space.context.pk, "content": "x", "tags": [{"name": "a", "colour": "red"}]},
        format="json",
    )
    error = assert_envelope(response, 400, "invalid")
    assert "tags" in error["fields"]
    assert not Memory.objects.exists()


# --- throttling ----------------------------------------------------------------------------------
def test_each_key_is_limited_and_told_when_to_retry(alice, issue_key, key_client, settings):
    settings.API_THROTTLE_RATES = {"api_key": "3/min", "user": "100/min", "ip": "100/min"}
    issued = issue_key(alice, scopes=["memories:read"])
    client = key_client(issued)
    assert [client.get(MEMORIES).status_code for _ in range(3)] == [200, 200, 200]
    response = client.get(MEMORIES)
    assert_envelope(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    event = last_event("api.rate_limited")
    assert event.context["scope"] == "api_key" and event.api_key_id == issued.prefix
    # Another key of the same user has its own budget.
    other = key_client(issue_key(alice, name="other", scopes=["memories:read"]))
    assert other.get(MEMORIES).status_code == 200


def test_each_user_is_limited_across_keys_and_sessions(alice, issue_key, key_client, session, settings):
    settings.API_THROTTLE_RATES = {"api_key": "100/min", "user": "2/min", "ip": "100/min"}
    client = key_client(issue_key(alice, scopes=["memories:read"]))
    assert client.get(MEMORIES).status_code == 200
    assert session.get(MEMORIES).status_code == 200
    response = session.get(MEMORIES)
    assert_envelope(response, 429, "throttled")
    assert last_event("api.rate_limited").context["scope"] == "user"


@pytest.mark.audit_coverage("api.rate_limited")
def test_each_client_ip_is_limited(api_client, alice, settings):
    settings.API_THROTTLE_RATES = {"ip": "2/min"}
    api_client.force_authenticate(alice)
    assert api_client.get(MEMORIES, REMOTE_ADDR="192.0.2.1").status_code == 200
    assert api_client.get(MEMORIES, REMOTE_ADDR="192.0.2.1").status_code == 200
    assert_envelope(api_client.get(MEMORIES, REMOTE_ADDR="192.0.2.1"), 429, "throttled")
    assert api_client.get(MEMORIES, REMOTE_ADDR="192.0.2.2").status_code == 200
    event = last_event("api.rate_limited")
    assert event.context["scope"] == "ip" and event.client_ip == "192.0.2.1"


def test_the_window_slides(alice, issue_key, key_client, settings, time_machine):
    import time

    time_machine.move_to(1_800_000_000, tick=False)  # the start of a 60 s window
    settings.API_THROTTLE_RATES = {"api_key": "2/min"}
    client = key_client(issue_key(alice, scopes=["memories:read"]))
    assert client.get(MEMORIES).status_code == 200
    assert client.get(MEMORIES).status_code == 200
    assert client.get(MEMORIES).status_code == 429
    time_machine.shift(60 + 45)  # next window, 3/4 through: the previous window weighs 1/4
    assert time.time() % 60 == 45
    assert client.get(MEMORIES).status_code == 200
    time_machine.shift(120)  # two windows later, the old counts no longer weigh
    assert [client.get(MEMORIES).status_code for _ in range(2)] == [200, 200]


# --- throttles on a real Redis: one round trip per request, enforced across processes ---------
_OTHER_PROCESS = """
import os, sys
import django
django.setup()
from django.test import RequestFactory
from rest_framework.request import Request
from api.throttling import ApiKeyThrottle, IPThrottle, UserThrottle
from memories.api.views import MemoryListV2View

allowed = []
for _ in range(int(sys.argv[1])):
    request = RequestFactory().get("/api/v2/memories/")
    request.client_ip = "198.51.100.7"
    drf_request = Request(request)
    drf_request._user, drf_request._auth = None, None
    throttles = (ApiKeyThrottle, UserThrottle, IPThrottle)
    allowed.append(all(t().allow_request(drf_request, MemoryListV2View) for t in throttles))
print(",".join("allowed" if value else "refused" for value in allowed))
"""


@pytest.fixture
def redis_api_cache(settings):
    """The API cache on a private real Redis server, as in production (API_CACHE_URL)."""
    from tests.support.servers import redis_server

    with redis_server() as url:
        settings.CACHES = {
            **settings.CACHES,
            "api": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url},
        }
        yield url


def _command_calls(url: str) -> dict[str, int]:
    import redis

    stats = redis.Redis.from_url(url).info("commandstats")
    # Less this reader's own connection and question.
    return {
        name.removeprefix("cmdstat_"): value["calls"]
        for name, value in stats.items()
        if name not in {"cmdstat_hello", "cmdstat_info"}
    }


@pytest.mark.redis
def test_on_redis_the_three_throttles_cost_one_round_trip_and_still_refuse(
    alice, issue_key, key_client, settings, redis_api_cache
):
    settings.API_THROTTLE_RATES = {"api_key": "3/min", "user": "100/min", "ip": "100/min"}
    client = key_client(issue_key(alice, scopes=["memories:read"]))
    assert client.get(MEMORIES).status_code == 200  # loads the script once (EVALSHA, then EVAL)
    kept = caches["api"]._api_throttle_counters
    before = _command_calls(redis_api_cache)
    assert client.get(MEMORIES).status_code == 200
    after = _command_calls(redis_api_cache)
    assert caches["api"]._api_throttle_counters is kept  # one client for the cache's life, not one per call
    issued = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    # One script call per request; inside it one INCR and one GET per throttle. Django's own
    # incr() would have sent EXISTS + INCRBY and a GET: 9 round trips.
    assert issued == {"evalsha": 1, "incr": 3, "get": 3}, issued
    assert client.get(MEMORIES).status_code == 200
    response = client.get(MEMORIES)
    assert_envelope(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert last_event("api.rate_limited").context["scope"] == "api_key"


@pytest.mark.redis
def test_on_redis_a_limit_is_shared_by_every_process(api_client, alice, settings, redis_api_cache):
    """Another process (its own interpreter, its own Redis client) spends the same IP's budget."""
    import os
    import subprocess
    import sys

    from tests.support.servers import PROJECT_DIR

    settings.API_THROTTLE_RATES = {"ip": "5/min"}
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "API_CACHE_URL": redis_api_cache,
        "API_THROTTLE_RATES": '{"ip": "5/min"}',
    }
    other = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, "3"],
        cwd=PROJECT_DIR, env=environment, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert other.stdout.strip().splitlines()[-1] == "allowed,allowed,allowed"
    api_client.force_authenticate(alice)
    statuses = [api_client.get(MEMORIES, REMOTE_ADDR="198.51.100.7").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert api_client.get(MEMORIES, REMOTE_ADDR="198.51.100.8").status_code == 200
