"""URL-path versions and the deprecation registry: RFC 9745/8594 headers, counts per key, 410 after sunset."""

from __future__ import annotations

import datetime
from email.utils import parsedate_to_datetime

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from api.models import DeprecatedCall
from api.versioning import DEFAULT_REGISTRY
from audit.models import AuditEvent
from memories.models import Memory, MemoryTag

pytestmark = pytest.mark.django_db


@pytest.fixture
def memory(space):
    memory = Memory.objects.create(context=space.context, content="hello", author=space.owner)
    MemoryTag.objects.create(memory=memory, name="ops")
    return memory


def deprecation(*, deprecated_days_ago=1, sunset_in_days=30) -> list[dict]:
    now = timezone.now()
    return [
        {
            "path_prefix": "/api/v1/memories/",
            "deprecated_at": (now - datetime.timedelta(days=deprecated_days_ago)).isoformat(),
            "sunset_at": (now + datetime.timedelta(days=sunset_in_days)).isoformat(),
            "successor": "/api/v2/memories/",
            "notes_anchor": "v1-memories",
        }
    ]


# --- the two versions --------------------------------------------------------------------------
def test_v2_memories_have_context_id_and_tag_objects(alice, memory, key_client, issue_key):
    client = key_client(issue_key(alice))
    v2 = client.get(f"/api/v2/memories/{memory.pk}/").json()
    v1 = client.get(f"/api/v1/memories/{memory.pk}/").json()
    assert v2["context_id"] == memory.context_id and "context" not in v2
    assert v2["tags"] == [{"name": "ops"}]
    assert v1["context"] == memory.context_id and v1["tags"] == ["ops"]
    created = client.post(
        "/api/v2/memories/", {"context_id": memory.context_id, "content": "x", "tags": [{"name": "DB"}]}, format="json"
    )
    assert created.status_code == 201 and created.json()["tags"] == [{"name": "db"}]
    patched = client.patch(f"/api/v2/memories/{memory.pk}/", {"tags": [{"name": "a"}, {"name": "b"}]}, format="json")
    assert patched.json()["tags"] == [{"name": "a"}, {"name": "b"}]
    # v1 bodies are refused by v2 (the old field is unknown there).
    old_shape = client.post("/api/v2/memories/", {"context": memory.context_id, "content": "x"}, format="json")
    assert old_shape.status_code == 400 and "context" in old_shape.json()["error"]["fields"]


def test_unchanged_resources_are_the_same_in_both_versions(alice, space, key_client, issue_key):
    client = key_client(issue_key(alice))
    assert client.get("/api/v1/contexts/").json() == client.get("/api/v2/contexts/").json()
    assert "Deprecation" not in client.get("/api/v1/contexts/")


# --- deprecated endpoints ----------------------------------------------------------------------
def test_the_default_registry_deprecates_v1_memories_with_a_sunset_six_months_later():
    [entry] = DEFAULT_REGISTRY
    assert entry.path_prefix == "/api/v1/memories/" and entry.successor == "/api/v2/memories/"
    assert entry.sunset_at - entry.deprecated_at >= datetime.timedelta(days=180)


def test_deprecated_endpoints_announce_it_with_rfc_headers(alice, memory, key_client, issue_key, settings):
    settings.API_DEPRECATIONS = deprecation()
    response = key_client(issue_key(alice)).get(f"/api/v1/memories/{memory.pk}/")
    assert response.status_code == 200
    deprecated_at = datetime.datetime.fromisoformat(settings.API_DEPRECATIONS[0]["deprecated_at"])
    assert response["Deprecation"] == f"@{int(deprecated_at.timestamp())}"  # RFC 9745 structured date
    sunset = parsedate_to_datetime(response["Sunset"])  # RFC 8594: an HTTP-date
    assert abs(
        sunset - datetime.datetime.fromisoformat(settings.API_DEPRECATIONS[0]["sunset_at"])
    ) < datetime.timedelta(seconds=1)
    link = response["Link"]
    assert '</api/changes/#v1-memories>; rel="deprecation"' in link
    assert 'rel="sunset"' in link and '</api/v2/memories/>; rel="successor-version"' in link
    assert "Deprecation" not in key_client(issue_key(alice, name="b")).get("/api/v2/memories/")


@pytest.mark.audit_coverage("api.deprecated_endpoint_called")
def test_deprecated_calls_are_counted_per_key_and_audited_once_a_day(alice, memory, key_client, issue_key, settings):
    settings.API_DEPRECATIONS = deprecation()
    first = issue_key(alice, name="first")
    second = issue_key(alice, name="second")
    for _ in range(3):
        key_client(first).get("/api/v1/memories/")
    key_client(first).get(f"/api/v1/memories/{memory.pk}/")
    key_client(second).get("/api/v1/memories/")
    session = APIClient()
    session.force_login(alice)
    session.get("/api/v1/memories/")
    counts = {(row.caller, row.endpoint): row.count for row in DeprecatedCall.objects.all()}
    assert counts == {
        (f"key:{first.api_key.pk}", "GET /api/v1/memories/"): 3,
        (f"key:{first.api_key.pk}", "GET /api/v1/memories/<int:memory_id>/"): 1,
        (f"key:{second.api_key.pk}", "GET /api/v1/memories/"): 1,
        (f"user:{alice.pk}", "GET /api/v1/memories/"): 1,
    }
    audited = AuditEvent.objects.filter(action="api.deprecated_endpoint_called")
    assert audited.count() == 4  # the first call per caller and endpoint each day
    assert set(audited.exclude(api_key_id=None).values_list("api_key_id", flat=True)) == {first.prefix, second.prefix}


def test_an_announced_future_deprecation_sends_headers_but_counts_nothing(
    alice, memory, key_client, issue_key, settings
):
    settings.API_DEPRECATIONS = deprecation(deprecated_days_ago=-10, sunset_in_days=200)
    response = key_client(issue_key(alice)).get("/api/v1/memories/")
    assert response.status_code == 200 and response["Deprecation"].startswith("@")
    assert not DeprecatedCall.objects.exists()


def test_after_the_sunset_the_endpoint_is_gone_with_a_pointer(alice, memory, key_client, issue_key, settings):
    settings.API_DEPRECATIONS = deprecation(deprecated_days_ago=200, sunset_in_days=-1)
    response = key_client(issue_key(alice)).delete(f"/api/v1/memories/{memory.pk}/")
    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "gone" and "/api/v2/memories/" in error["message"]
    assert 'rel="successor-version"' in response["Link"]
    assert Memory.objects.filter(pk=memory.pk).exists()
    event = AuditEvent.objects.get(action="api.deprecated_endpoint_called", outcome="denied")
    assert event.context["reason"] == "sunset" and event.context["status"] == 410


def test_the_schema_marks_deprecated_operations(tmp_path):
    path = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(path))
    import json

    schema = json.loads(path.read_text())
    assert schema["paths"]["/api/v1/memories/"]["get"]["deprecated"] is True
    assert "deprecated" not in schema["paths"]["/api/v2/memories/"]["get"]
    assert "deprecated" not in schema["paths"]["/api/v1/contexts/"]["get"]


def test_the_migration_notes_are_served_where_the_links_point(client):
    response = client.get("/api/changes/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert '<a id="v1-memories"></a>' in text and "## Migration paths" in text


def test_the_count_row_reads_back_through_the_orm(alice, memory, key_client, issue_key, settings):
    settings.API_DEPRECATIONS = deprecation()
    client = key_client(issue_key(alice))
    client.get("/api/v1/memories/")
    client.get("/api/v1/memories/")
    row = DeprecatedCall.objects.get()
    assert row.count == 2 and row.day == timezone.now().date()
    assert row.first_at <= row.last_at <= timezone.now()
    assert row.last_at.tzinfo is not None


# --- with the API cache on Redis: counted in Redis, flushed to the rows, nothing lost ----------
@pytest.fixture
def redis_api_cache(settings):
    from tests.support.servers import redis_server

    with redis_server() as url:
        settings.CACHES = {
            **settings.CACHES,
            "api": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url},
        }
        yield url


@pytest.mark.redis
def test_on_redis_deprecated_calls_take_no_row_lock_and_the_flush_loses_none(
    alice, memory, key_client, issue_key, settings, redis_api_cache
):
    from api import services

    settings.API_DEPRECATIONS = deprecation()
    first, second = issue_key(alice, name="first"), issue_key(alice, name="second")
    for _ in range(3):
        assert key_client(first).get("/api/v1/memories/").status_code == 200
    key_client(second).get(f"/api/v1/memories/{memory.pk}/")
    assert not DeprecatedCall.objects.exists()  # pending in Redis, no database write per call
    assert services.deprecated_calls_flush() == 4
    key_client(first).get("/api/v1/memories/")
    assert services.deprecated_calls_flush() == 1
    assert services.deprecated_calls_flush() == 0  # nothing pending: nothing added twice
    counts = {(row.caller, row.endpoint): row.count for row in DeprecatedCall.objects.all()}
    assert counts == {
        (f"key:{first.api_key.pk}", "GET /api/v1/memories/"): 4,
        (f"key:{second.api_key.pk}", "GET /api/v1/memories/<int:memory_id>/"): 1,
    }
    row = DeprecatedCall.objects.get(caller=f"key:{first.api_key.pk}")
    assert row.api_key_id == first.api_key.pk and row.user_id == alice.pk and row.first_at <= row.last_at
    # Still one audit event per caller and endpoint a day.
    assert AuditEvent.objects.filter(action="api.deprecated_endpoint_called").count() == 2


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)  # the threads' own connections commit: flushed afterwards
def test_on_redis_calls_racing_a_flush_are_all_counted(alice, issue_key, redis_api_cache, settings):
    """Threads count while flushes run: every call ends in the row exactly once."""
    import threading

    from django.db import connection

    from api import services

    if connection.vendor == "sqlite":
        pytest.skip("concurrent writers: PostgreSQL")
    issued = issue_key(alice)
    calls_per_thread, threads = 200, 4

    def call() -> None:
        try:
            for _ in range(calls_per_thread):
                services.deprecated_call_record(
                    endpoint="GET /api/v1/memories/", api_key=issued.api_key, user=alice, client_ip="192.0.2.1"
                )
        finally:
            connection.close()  # this thread's own connection

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    flushed = 0
    while any(worker.is_alive() for worker in workers):
        flushed += services.deprecated_calls_flush()
    for worker in workers:
        worker.join()
    flushed += services.deprecated_calls_flush()
    assert flushed == calls_per_thread * threads
    assert DeprecatedCall.objects.get().count == calls_per_thread * threads


@pytest.mark.redis
def test_on_redis_a_batch_left_by_a_failed_flush_is_added_by_the_next(alice, issue_key, redis_api_cache, settings):
    from django.db import DatabaseError

    from api import services

    issued = issue_key(alice)
    for _ in range(5):
        services.deprecated_call_record(
            endpoint="GET /api/v1/memories/", api_key=issued.api_key, user=alice, client_ip=None
        )
    original = services._deprecated_calls_add

    def failing(**kwargs):
        raise DatabaseError("the database went away")

    services._deprecated_calls_add = failing
    try:
        with pytest.raises(DatabaseError):
            services.deprecated_calls_flush()
    finally:
        services._deprecated_calls_add = original
    assert not DeprecatedCall.objects.exists()
    services.deprecated_call_record(
        endpoint="GET /api/v1/memories/", api_key=issued.api_key, user=alice, client_ip=None
    )
    assert services.deprecated_calls_flush() == 6
    assert DeprecatedCall.objects.get().count == 6
