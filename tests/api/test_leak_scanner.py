"""The leak scanner itself: it finds every kind of secret it promises to, and only those."""

from __future__ import annotations

import pytest
from django.http import HttpResponse, JsonResponse

from tests.api.leak_scanner import SecretLeak, allow_secrets, find_leaks, scan

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "text, kind",
    [
        ("nvk_abcdefghijkl_" + "A" * 43, "api_key"),
        ("nvs_" + "b" * 43, "signing_secret"),
        ("md5$salt1234$" + "0" * 32, "password_hash"),
        ("argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA", "password_hash"),
        ("pbkdf2_sha256$870000$salt$hash", "password_hash"),
        ("nv1:dev-field:" + "QUJD" * 10, "ciphertext"),
        ("gAAAAA" + "x" * 60, "fernet_token"),
    ],
)
def test_each_secret_shape_is_found(text, kind):
    assert kind in find_leaks(f'{{"value": "{text}"}}')


def test_plain_api_answers_are_clean():
    text = '{"id": 1, "request_id": "0123456789abcdef0123456789abcdef", "prefix": "nvk_abcdefghijkl…"}'
    assert find_leaks(text) == []


def test_secrets_that_exist_in_the_database_are_found_exactly(alice, client):
    client.force_login(alice)
    session_key = client.session.session_key
    with pytest.raises(SecretLeak, match="session_key"):
        scan(HttpResponse(f"<p>{session_key}</p>"))
    with pytest.raises(SecretLeak, match="password_hash"):
        scan(JsonResponse({"password": alice.password}))


def test_set_cookie_may_carry_the_session_and_allowances_are_explicit(alice):
    response = HttpResponse("ok")
    response.set_cookie("sessionid", "s" * 32)
    scan(response)
    leaking = HttpResponse("nvk_abcdefghijkl_" + "A" * 43)
    with pytest.raises(SecretLeak):
        scan(leaking)
    with allow_secrets("api_key"):
        scan(leaking)


def test_the_test_client_is_wrapped(alice, issue_key, monkeypatch):
    """A view that leaks fails the test that called it (here caught to prove it)."""
    from memories.api import views

    issued = issue_key(alice)
    monkeypatch.setattr(views.MemoryListView, "get", lambda self, request: JsonResponse({"oops": issued.key}))
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(alice)
    with pytest.raises(SecretLeak, match="api_key"):
        client.get("/api/v1/memories/")
