"""Two pen-test findings on request bodies: the metadata depth limit was off by one, duplicate JSON keys were accepted.

Metadata may nest 20 levels of objects and arrays (``METADATA_MAX_DEPTH``), a value inside the
20th included; the 21st is refused. A JSON object with a key twice is a 400 (which value counts
is ambiguous), at any depth, recorded with reason ``json_duplicate_key``; nothing is written.
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from memories import validation
from memories.models import Context, Memory
from tests.memories.api_helpers import assert_error, url

pytestmark = pytest.mark.django_db


def _nested(levels: int, *, leaf=1, container=dict):
    """``levels`` objects (or arrays) inside each other, with ``leaf`` in the innermost one."""
    document = {"leaf": leaf} if container is dict else [leaf]
    for _ in range(levels - 1):
        document = {"a": document} if container is dict else [document]
    return document


@pytest.mark.parametrize("container", [dict, list], ids=["objects", "arrays"])
def test_metadata_nested_exactly_to_the_limit_is_accepted_one_more_is_refused(container):
    limit = validation.METADATA_MAX_DEPTH
    inside = {"x": _nested(limit - 1, container=container)}  # the metadata object is level 1
    assert validation.clean_metadata(inside) == inside
    with pytest.raises(ValidationError) as raised:
        validation.clean_metadata({"x": _nested(limit, container=container)})
    assert raised.value.message_dict == {"metadata": [f"Nesting deeper than {limit} levels is not allowed."]}


def test_through_the_api_twenty_levels_are_stored_and_twenty_one_are_a_400(world, client_for):
    client = client_for(world.owner)
    limit = validation.METADATA_MAX_DEPTH
    body = {"context": world.personal_context.pk, "content": "deep"}
    accepted = client.post(url("memory-list"), {**body, "metadata": {"x": _nested(limit - 1)}}, format="json")
    assert accepted.status_code == 201, accepted.content
    refused = client.post(url("memory-list"), {**body, "metadata": {"x": _nested(limit)}}, format="json")
    assert_error(refused, 400, "invalid", fields={"metadata"})
    assert Memory.objects.count() == 1


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "Plans", "name": "Other", "scope": "personal"}',
        '{"name": "Plans", "scope": "personal", "scope": "team"}',
    ],
    ids=["top-level", "last-wins-would-change-the-scope"],
)
@pytest.mark.audit_coverage("api.request_rejected")
def test_a_body_with_a_key_twice_is_a_400_and_recorded(world, client_for, raw):
    before = Context.objects.count()
    response = client_for(world.owner).post(url("context-list"), raw, content_type="application/json")
    error = assert_error(response, 400, "invalid")
    assert "same key twice" in error["message"]
    assert Context.objects.count() == before
    rejected = AuditEvent.objects.filter(action="api.request_rejected").last()
    assert rejected is not None and rejected.context["reason"] == "json_duplicate_key"


def test_a_key_twice_deep_inside_metadata_is_refused_too(world, client_for):
    raw = json.dumps({"context": world.personal_context.pk, "content": "c", "metadata": {"a": {"k": 1}}})
    raw = raw.replace('{"k": 1}', '{"k": 1, "k": 2}')
    response = client_for(world.owner).post(url("memory-list"), raw, content_type="application/json")
    assert_error(response, 400, "invalid")
    assert not Memory.objects.exists()


def test_equal_keys_in_different_objects_are_fine(world, client_for):
    metadata = {"a": {"name": 1}, "b": {"name": 2}}
    response = client_for(world.owner).post(
        url("memory-list"),
        {"context": world.personal_context.pk, "content": "c", "metadata": metadata},
        format="json",
    )
    assert response.status_code == 201 and response.json()["metadata"] == metadata
