"""Redis down where it holds the API's throttle counters and signature nonces: refused cleanly, fail closed.

Without its counters the API cannot enforce its limits, and without its nonce store it cannot
refuse a replay; it must not answer as if it had. Each request is a 503 with ``Retry-After``
(never a 500, never served unchecked), and the API works again once Redis is back.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from api import services as api_services
from memories.models import Memory
from tests.api.conftest import Issued, signed
from tests.faults.servers import RestartableRedis
from tests.memories.api_helpers import assert_error

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def redis_api_cache(settings):
    with RestartableRedis() as redis:
        settings.CACHES = {
            **settings.CACHES,
            "api": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis.url},
        }
        settings.API_SIGNATURE_NONCE_STORE = "auto"  # Redis, since the API cache is Redis
        yield redis


def test_with_the_api_cache_down_reads_and_signed_deletes_are_refused_and_nothing_changes(world, redis_api_cache):
    key = api_services.api_key_issue(
        actor=world.owner, owner=world.owner, name="cli", scopes=["memories:read", "memories:write"]
    )
    issued = Issued(api_key=key.api_key, key=key.key, signing_secret=key.signing_secret)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    memory = Memory.objects.create(context=world.team_context, content="runbook", author=world.owner)
    path = f"/api/v2/memories/{memory.pk}/"
    assert client.get(path).status_code == 200  # Redis up: counted and served

    redis_api_cache.stop()
    response = client.get(path)
    error = assert_error(response, 503, "unavailable")
    assert response["Retry-After"] == "30" and "runbook" not in response.content.decode()
    assert "Try again later" in error["message"]
    response = client.delete(path, **signed(issued, "DELETE", path))
    assert_error(response, 503, "unavailable")
    assert Memory.objects.filter(pk=memory.pk).exists()  # no delete without its replay check

    redis_api_cache.start()  # back (empty)
    assert client.delete(path, **signed(issued, "DELETE", path)).status_code == 204
    assert not Memory.objects.filter(pk=memory.pk).exists()
