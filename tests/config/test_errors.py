"""Errors never show internals: the API answers with the envelope, pages with a plain page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path

from api.views import server_error


def explode(request):
    raise RuntimeError("secret internal detail /srv/app/config.py SELECT password FROM users")


urlpatterns = [path("api/v1/explode", explode), path("explode", explode)]
handler500 = server_error


@pytest.fixture
def raising_client(settings):
    settings.ROOT_URLCONF = __name__
    return Client(raise_request_exception=False)


def test_unknown_api_path_answers_the_json_envelope(client):
    response = client.get("/api/v1/no-such-thing/", HTTP_X_REQUEST_ID="req-abcdef123456")
    assert response.status_code == 404
    body = response.json()
    assert body == {"error": {"code": "not_found", "message": "Not found.", "request_id": "req-abcdef123456"}}


def test_unknown_page_answers_a_plain_page_with_the_reference(client):
    response = client.get("/nothing-here", HTTP_X_REQUEST_ID="req-abcdef123456")
    assert response.status_code == 404
    assert b"req-abcdef123456" in response.content


@pytest.mark.parametrize("url", ["/api/v1/explode", "/explode"])
def test_an_unhandled_exception_shows_no_internals(raising_client, url):
    response = raising_client.get(url)
    assert response.status_code == 500
    text = response.content.decode()
    for leaked in ("secret internal detail", "Traceback", "config.py", "SELECT"):
        assert leaked not in text
    assert response["X-Request-ID"]
