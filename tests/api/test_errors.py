"""One error envelope for every API error, whatever fails; unexpected errors are a logged 500."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from rest_framework.test import APIClient

from memories import selectors

pytestmark = pytest.mark.django_db

INTERNALS = ("Traceback", 'File "', "/work", "site-packages", "SELECT", "sqlite", "psycopg", "Error:", "line ")


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) <= {"code", "message", "request_id", "fields"}
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == response["X-Request-ID"]
    text = response.content.decode()
    for leak in INTERNALS:
        assert leak not in text, leak
    return body["error"]


@pytest.fixture
def session(alice):
    client = APIClient(raise_request_exception=False)
    client.force_login(alice)
    return client


def test_an_exception_in_a_view_is_a_500_envelope_and_one_full_log_line(session, monkeypatch, caplog):
    def explode(**kwargs):
        raise RuntimeError("database password is hunter2 at /srv/app/secret.py line 12")

    monkeypatch.setattr(selectors, "memory_list_for_user", explode)
    with caplog.at_level(logging.ERROR):
        response = session.get("/api/v2/memories/", HTTP_X_REQUEST_ID="req-abcdef-123456")
    error = assert_envelope(response, 500, "server_error")
    assert error["request_id"] == "req-abcdef-123456"
    assert "hunter2" not in response.content.decode()
    [record] = [r for r in caplog.records if r.name == "api.errors"]
    assert record.request_id == "req-abcdef-123456"
    assert "req-abcdef-123456" in record.getMessage()
    assert record.exc_info and record.exc_info[0] is RuntimeError


def test_a_database_error_reveals_no_sql(session, monkeypatch):
    def broken(**kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM no_such_table")

    monkeypatch.setattr(selectors, "memory_list_for_user", broken)
    assert_envelope(session.get("/api/v2/memories/"), 500, "server_error")


def test_an_exception_outside_drf_under_api_is_the_envelope_too(monkeypatch, caplog, db):
    from api import views

    monkeypatch.setattr(views, "CHANGES_FILE", None)  # None.read_text → AttributeError inside the view
    client = APIClient(raise_request_exception=False)
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/changes/")
    assert_envelope(response, 500, "server_error")
    [record] = [r for r in caplog.records if r.name == "api.errors"]
    assert record.request_id == response["X-Request-ID"]
    assert record.exc_info[0] is AttributeError


@pytest.mark.parametrize(
    "method, path, status, code",
    [
        ("get", "/api/v2/no-such-thing/", 404, "not_found"),
        ("get", "/api/v9/memories/", 404, "not_found"),
        ("post", "/api/v2/organizations/1/", 405, "method_not_allowed"),
        ("get", "/api/v2/memories/999999/", 404, "not_found"),
        ("get", "/api/v2/memories/?context=abc", 400, "invalid"),
        ("get", "/api/v2/memories/?page=99", 404, "not_found"),
    ],
)
def test_every_error_is_the_envelope(session, method, path, status, code):
    assert_envelope(getattr(session, method)(path, format="json"), status, code)


def test_not_acceptable_is_the_envelope(session):
    assert_envelope(session.get("/api/v2/memories/", HTTP_ACCEPT="text/html"), 406, "not_acceptable")


def test_responses_contain_only_allow_listed_fields(session, space):
    created = session.post("/api/v2/memories/", {"context_id": space.context.pk, "content": "x"}, format="json").json()
    assert set(created) == {
        "id",
        "context_id",
        "author",
        "kind",
        "source",
        "content",
        "metadata",
        "tags",
        "created_at",
        "updated_at",
    }
    context = session.get(f"/api/v2/contexts/{space.context.pk}/").json()
    assert set(context) == {"id", "name", "scope", "owner", "role", "created_by", "created_at", "updated_at"}
    members = session.get(f"/api/v2/teams/{space.team.pk}/members/").json()["results"]
    assert set(members[0]) == {"user_id", "username", "role", "created_at", "updated_at"}
