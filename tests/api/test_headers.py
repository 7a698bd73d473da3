"""Security headers on every response, a nonce-based CSP that the docs and the admin work under,
no-store on API and authenticated responses, and no compression of responses carrying secrets."""

from __future__ import annotations

import re

import pytest
from django.core.checks import Error
from django.test import override_settings
from rest_framework.test import APIClient

from api.checks import check_content_security_policy, check_middleware, check_nonce_store

pytestmark = pytest.mark.django_db

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def assert_common_headers(response) -> None:
    for name, value in COMMON.items():
        assert response[name] == value, name
    assert "camera=()" in response["Permissions-Policy"] and "geolocation=()" in response["Permissions-Policy"]
    policy = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/memories/",
        "/api/v2/nothing/",
        "/api/schema/",
        "/admin/",
        "/accounts/login/",
        "/healthz",
        "/no-such-page/",
    ],
)
def test_every_response_carries_the_security_headers(client, path):
    assert_common_headers(client.get(path))


def test_api_json_has_a_locked_down_policy_and_no_store(api_client, alice):
    api_client.force_login(alice)
    response = api_client.get("/api/v2/memories/")
    assert response[
        "Content-Security-Policy"
    ] == "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" or (
        set(response["Content-Security-Policy"].split("; "))
        == {"default-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"}
    )
    assert response["Cache-Control"] == "no-store"
    assert APIClient().get("/api/v2/memories/")["Cache-Control"] == "no-store"  # errors too


def test_swagger_ui_works_under_the_csp_with_a_nonce(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"script-src 'self' 'nonce-([A-Za-z0-9+/=]+)'", policy).group(1)
    assert f"style-src 'self' 'nonce-{nonce}'" in policy
    html = response.content.decode()
    # Every script and style element carries the nonce; no inline handler attributes.
    scripts = re.findall(r"<script\b[^>]*>", html)
    styles = re.findall(r"<style\b[^>]*>", html)
    assert scripts and styles
    assert all(f'nonce="{nonce}"' in tag for tag in scripts + styles), scripts + styles
    assert not re.search(r"\son[a-z]+=", html)
    assert "/api/schema/" in html
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    # A new nonce per response.
    assert nonce not in client.get("/api/docs/")["Content-Security-Policy"]


def test_authenticated_pages_are_no_store_and_anonymous_pages_without_secrets_are_not(client, alice):
    login_page = client.get("/accounts/login/")
    assert login_page.status_code == 200
    assert "no-store" in login_page["Cache-Control"]  # it carries a CSRF token
    anonymous = APIClient().get("/no-such-page/")
    assert "no-store" not in anonymous.get("Cache-Control", "")
    client.force_login(alice)
    from django.utils import timezone

    from accounts.services.sessions import REAUTHENTICATED_AT_KEY

    session = client.session
    session[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp()
    session.save()
    page = client.get("/accounts/api-keys/")
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    # Any page of a signed-in user, even one whose view sets no cache header.
    assert client.get("/no-such-page/")["Cache-Control"] == "no-store"


def test_responses_are_never_compressed(api_client, alice):
    api_client.force_login(alice)
    for path in ("/api/v2/memories/", "/accounts/login/", "/api/docs/"):
        response = api_client.get(path, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
        assert "Content-Encoding" not in response, path


@override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True, SECURE_HSTS_PRELOAD=True)
def test_hsts_is_sent_over_https_with_the_production_values(client):
    response = client.get("/api/v2/memories/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_production_settings_turn_hsts_on():
    from pathlib import Path

    production = (Path(__file__).resolve().parents[2] / "config" / "settings" / "production.py").read_text()
    assert 'SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)' in production


# --- the system checks refuse unsafe configurations -------------------------------------------
def test_the_checks_pass_on_the_project_settings():
    assert check_middleware() == [] and check_content_security_policy() == [] and check_nonce_store() == []


def test_gzip_middleware_is_refused(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    assert [error.id for error in check_middleware()] == ["api.E003"]


def test_missing_or_misordered_middleware_is_refused(settings):
    middleware = list(settings.MIDDLEWARE)
    settings.MIDDLEWARE = [name for name in middleware if name != "api.middleware.ApiRequestMiddleware"]
    assert [error.id for error in check_middleware()] == ["api.E001"]
    reordered = [name for name in middleware if name != "core.middleware.ContentSecurityPolicyMiddleware"] + [
        "core.middleware.ContentSecurityPolicyMiddleware"
    ]
    settings.MIDDLEWARE = reordered
    assert [error.id for error in check_middleware()] == ["api.E002"]


def test_unsafe_inline_is_refused(settings):
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {"default-src": ["'self'"], "script-src": ["'self'", "'unsafe-inline'"]}
    }
    errors = check_content_security_policy()
    assert [error.id for error in errors] == ["api.E004"] and isinstance(errors[0], Error)


def test_a_cache_nonce_store_needs_redis(settings):
    settings.API_SIGNATURE_NONCE_STORE = "cache"
    assert [error.id for error in check_nonce_store()] == ["api.E007"]
    settings.API_SIGNATURE_NONCE_STORE = "memory"
    assert [error.id for error in check_nonce_store()] == ["api.E006"]
