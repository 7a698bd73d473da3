"""A hidden object answers exactly like a missing one, whatever the request body says.

If the body were checked against the database before the object in the URL, an unknown username
(400) would reveal that a context the caller cannot see exists (a missing one answers 404).
"""

from __future__ import annotations

import pytest

from tests.memories.api_helpers import assert_error, url

pytestmark = pytest.mark.django_db

MISSING_ID = 987_654

CASES = [
    ("post", "context-share-list", "context_id", "team_context", {"user": "ghost", "permission": "read"}),
    ("post", "context-share-list", "context_id", "team_context", {"team": MISSING_ID, "permission": "read"}),
    ("post", "context-transfer", "context_id", "team_context", {"user": "ghost"}),
    ("post", "context-transfer", "context_id", "team_context", {"organization": MISSING_ID}),
    ("put", "context-detail", "context_id", "team_context", {"name": "x"}),
    ("delete", "context-detail", "context_id", "team_context", None),
    ("get", "context-export", "context_id", "team_context", None),
    ("get", "context-share-list", "context_id", "team_context", None),
    ("post", "team-member-list", "team_id", "team", {"user": "ghost", "role": "viewer"}),
    ("get", "team-member-list", "team_id", "team", None),
    ("get", "team-detail", "team_id", "team", None),
    ("post", "organization-member-list", "organization_id", "organization", {"user": "ghost", "role": "viewer"}),
    ("get", "organization-member-list", "organization_id", "organization", None),
    ("get", "organization-detail", "organization_id", "organization", None),
]


@pytest.mark.parametrize("method, name, kwarg, attribute, body", CASES, ids=[f"{c[0]} {c[1]} {c[4]}" for c in CASES])
def test_hidden_and_missing_objects_answer_the_same(world, make_user, client_for, method, name, kwarg, attribute, body):
    client = client_for(make_user())
    hidden_id = getattr(world, attribute).pk
    responses = []
    for object_id in (hidden_id, MISSING_ID):
        send = getattr(client, method)
        path = url(name, **{kwarg: object_id})
        responses.append(send(path, body, format="json") if body is not None else send(path))
    hidden, missing = (assert_error(response, 404, "not_found") for response in responses)
    assert {key: value for key, value in hidden.items() if key != "request_id"} == {
        key: value for key, value in missing.items() if key != "request_id"
    }
