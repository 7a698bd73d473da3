"""API key authentication at its edges (api/authentication.py): allowlists and the compared hash.

test_keys.py shows each refusal; these pin what it leaves open: an allowlisted key with no known
client address, allowlist entries that did not come through the service, and that an unknown
key is compared against a hash as long as a real one.
"""

from __future__ import annotations

import hmac

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from api import authentication
from api.authentication import ApiKeyAuthentication
from api.exceptions import KeyRefused
from api.models import ApiKey
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

MEMORIES = "/api/v2/memories/"


def _last_refusal() -> AuditEvent:
    return AuditEvent.objects.filter(action="api.key_refused").order_by("pk").last()


def test_an_allowlisted_key_is_refused_when_the_client_address_is_unknown(alice, issue_key, key_client):
    issued = issue_key(alice, allowed_networks=["203.0.113.0/24"])
    response = key_client(issued).get(MEMORIES, REMOTE_ADDR="")
    assert response.status_code == 401
    refusal = _last_refusal()
    # The event records the status answered, as every refusal does.
    assert (refusal.context["reason"], refusal.context["status"]) == ("network_not_allowed", 401)


def test_allowlist_entries_written_straight_to_the_database_are_read_safely(alice, issue_key, key_client):
    """A malformed entry is skipped (no error page), and a network with host bits means its network."""
    issued = issue_key(alice)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(allowed_networks=["not-a-network", "203.0.113.9/24"])
    client = key_client(issued)
    assert client.get(MEMORIES, REMOTE_ADDR="203.0.113.77").status_code == 200
    assert client.get(MEMORIES, REMOTE_ADDR="198.51.100.7").status_code == 401
    assert _last_refusal().context["reason"] == "network_not_allowed"


def test_an_unknown_key_is_compared_with_a_hash_as_long_as_a_real_one(alice, issue_key, monkeypatch):
    """Comparison time depends on the lengths: an unknown prefix must not compare a shorter or longer hash."""
    issued = issue_key(alice)
    secret = issued.key.split("_", 2)[2]
    wrong = issued.key[:-4] + ("AAAA" if not issued.key.endswith("AAAA") else "BBBB")
    compared, compare_digest = [], hmac.compare_digest

    def observed(presented, stored):
        compared.append((len(presented), len(stored)))
        return compare_digest(presented, stored)

    monkeypatch.setattr(authentication.hmac, "compare_digest", observed)
    for credential in [f"nvk_aaaaaaaaaaaa_{secret}", wrong]:
        with pytest.raises(KeyRefused):
            ApiKeyAuthentication().authenticate_credential(Request(RequestFactory().get(MEMORIES)), credential)
    assert len(compared) == 2 and compared[0] == compared[1] == (len(issued.api_key.secret_hash),) * 2
