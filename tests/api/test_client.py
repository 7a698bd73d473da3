"""The reference client (api/client.py, shown in docs/api.md) against the real server over HTTP."""

from __future__ import annotations

import pytest

from api.client import ApiError, Client
from memories.models import Memory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_reference_client_reads_creates_and_signs_a_delete(live_server, alice, space, issue_key):
    issued = issue_key(alice)
    client = Client(live_server.url, key=issued.key, signing_secret=issued.signing_secret)
    created = client.request(
        "POST",
        "/api/v2/memories/",
        json_body={"context_id": space.context.pk, "content": "über ✓", "tags": [{"name": "x"}]},
    )
    assert created["content"] == "über ✓"
    listed = client.request("GET", "/api/v2/memories/", query={"context": space.context.pk, "tag": "x"})
    assert [item["id"] for item in listed["results"]] == [created["id"]]
    with pytest.raises(ApiError) as refused:
        client.request("DELETE", f"/api/v2/memories/{created['id']}/")
    assert refused.value.status == 401 and refused.value.error["code"] == "signature_required"
    assert client.request("DELETE", f"/api/v2/memories/{created['id']}/", sign=True) is None
    assert not Memory.objects.filter(pk=created["id"]).exists()


def test_the_reference_client_signs_bodies_and_queries(live_server, alice, space, issue_key, make_user, acquaint):
    friend = make_user("friend")
    acquaint(alice, friend)  # the API names only users who share an organization with the caller
    issued = issue_key(alice)
    client = Client(live_server.url, key=issued.key, signing_secret=issued.signing_secret)
    share = client.request(
        "POST",
        f"/api/v2/contexts/{space.context.pk}/shares/",
        json_body={"user": "friend", "permission": "read"},
        query={"b": "2", "a": "x y/z"},
        sign=True,
    )
    assert share["user"] == "friend"


def test_errors_come_back_as_the_envelope(live_server, db):
    client = Client(live_server.url, key="nvk_aaaaaaaaaaaa_" + "A" * 43)
    with pytest.raises(ApiError) as refused:
        client.request("GET", "/api/v2/memories/")
    assert refused.value.status == 401
    assert refused.value.error["code"] == "invalid_api_key" and refused.value.error["request_id"]
