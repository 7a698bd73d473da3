"""The API key page under /accounts/api-keys/ and the admin console: same services, behind step-up."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import TOTPDevice
from accounts.services.sessions import REAUTHENTICATED_AT_KEY
from api.models import ApiKey, ServiceAccount
from audit.models import AuditEvent
from tests.api.leak_scanner import allow_secrets

pytestmark = pytest.mark.django_db

PAGE = "/accounts/api-keys/"
ISSUE = "/accounts/api-keys/issue/"


def logged_in(user, *, stepped_up: bool = True, mfa: bool = False, enforce_csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    session = client.session
    # A login counts as a fresh authentication; "stale" is an hour later.
    session[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp() - (0 if stepped_up else 3600)
    if mfa:
        device = TOTPDevice.objects.create(
            user=user, name="phone", confirmed=True, key="3132333435363738393031323334353637383930"
        )
        session["otp_device_id"] = device.persistent_id
    session.save()
    return client


ISSUE_FORM = {
    "name": "CI deploy",
    "scopes": ["memories:read", "memories:write"],
    "lifetime_days": "30",
    "allowed_networks": "",
}


def test_the_page_needs_a_login_and_a_fresh_step_up(alice, client):
    assert client.get(PAGE).status_code == 302
    stale = logged_in(alice, stepped_up=False)
    response = stale.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    response = stale.post(ISSUE, ISSUE_FORM)
    assert response.status_code == 302 and "reauthenticate" in response["Location"]
    assert not ApiKey.objects.exists()


@pytest.mark.audit_coverage("api.key_issued")
def test_issuing_shows_both_secrets_once_and_the_list_never(alice):
    client = logged_in(alice)
    with allow_secrets("api_key", "signing_secret"):
        response = client.post(ISSUE, ISSUE_FORM)
    assert response.status_code == 200
    html = response.content.decode()
    key = re.search(r'value="(nvk_[^"]+)"', html).group(1)
    signing_secret = re.search(r'value="(nvs_[^"]+)"', html).group(1)
    assert "no-store" in response["Cache-Control"]
    row = ApiKey.objects.get()
    assert row.user == alice and row.scopes == ["memories:read", "memories:write"] and row.created_by == alice
    assert (row.expires_at - timezone.now()).days in (29, 30)
    # The list shows the prefix, never a secret (the leak scanner fails this test otherwise).
    listing = client.get(PAGE).content.decode()
    assert row.prefix in listing and key not in listing and signing_secret not in listing
    assert AuditEvent.objects.filter(action="api.key_issued", actor_username="alice").count() == 1
    # The key works.
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v2/memories/").status_code == 200


def test_bad_form_input_is_shown_and_nothing_is_issued(alice):
    client = logged_in(alice)
    response = client.post(
        ISSUE, {**ISSUE_FORM, "scopes": ["root:all"], "lifetime_days": "9999", "allowed_networks": "nope"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html
    assert not ApiKey.objects.exists()
    response = client.post(ISSUE, {**ISSUE_FORM, "allowed_networks": "not-a-network"})
    assert response.status_code == 400 and "Not an IP address" in response.content.decode()


def test_rotate_and_revoke_from_the_page(alice, issue_key, make_user):
    issued = issue_key(alice)
    client = logged_in(alice)
    with allow_secrets("api_key", "signing_secret"):
        response = client.post(f"{PAGE}{issued.prefix}/rotate/", {"overlap_hours": "2"})
    assert response.status_code == 200 and "stays valid until" in response.content.decode()
    successor = ApiKey.objects.get(rotated_from=issued.api_key)
    response = client.post(f"{PAGE}{successor.prefix}/revoke/", {"reason": "not needed"})
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=successor.pk).revoked_at is not None
    # Someone else's key is not found.
    other = issue_key(make_user("bob"))
    assert client.post(f"{PAGE}{other.prefix}/revoke/", {}).status_code == 404
    assert ApiKey.objects.get(pk=other.api_key.pk).revoked_at is None


def test_a_post_without_csrf_token_is_refused_and_recorded(alice):
    client = logged_in(alice, enforce_csrf=True)
    response = client.post(ISSUE, ISSUE_FORM)
    assert response.status_code == 403
    assert not ApiKey.objects.exists()
    assert AuditEvent.objects.filter(action="authz.permission_denied", context__reason="csrf_failed").exists()


def test_the_page_has_no_inline_script_or_style(alice, issue_key):
    issue_key(alice)
    html = logged_in(alice).get(PAGE).content.decode()
    assert "<script" not in html and "<style" not in html and " style=" not in html
    assert "<caption>" in html and "<label" in html


def test_the_pages_have_the_account_layout_and_navigation(alice, issue_key):
    issue_key(alice)
    client = logged_in(alice)
    for response in (client.get(PAGE), _issue(client)):
        html = response.content.decode()
        assert '<link rel="stylesheet" href="/static/accounts/accounts.css">' in html
        nav = re.search(r'<nav aria-label="Account">(.*?)</nav>', html, re.S).group(1)
        assert 'href="/accounts/security/"' in nav and 'href="/accounts/sessions/"' in nav
        assert 'href="/accounts/api-keys/"' in nav and "Sign out (alice)" in nav
    assert '<a href="/accounts/api-keys/" aria-current="page">API keys</a>' in client.get(PAGE).content.decode()


def _issue(client):
    with allow_secrets("api_key", "signing_secret"):
        return client.post(ISSUE, ISSUE_FORM)


def test_the_account_security_page_links_to_the_api_keys(alice):
    html = logged_in(alice).get("/accounts/security/").content.decode()
    assert 'href="/accounts/api-keys/">Manage your API keys</a>' in html
    assert '<a href="/accounts/api-keys/">API keys</a>' in html  # the navigation


# --- the admin console -------------------------------------------------------------------------
def test_admins_issue_service_account_keys_in_the_console_behind_step_up(key_admin):
    stale = logged_in(key_admin, stepped_up=False, mfa=True)
    response = stale.get("/admin/api/apikey/add/")
    assert response.status_code == 302 and "reauthenticate" in response["Location"], response
    console = logged_in(key_admin, mfa=True)
    response = console.post("/admin/api/serviceaccount/add/", {"name": "Nightly export", "description": "cron"})
    assert response.status_code == 302
    account = ServiceAccount.objects.get()
    with allow_secrets("api_key", "signing_secret"):
        response = console.post(
            "/admin/api/apikey/add/", {**ISSUE_FORM, "owner": account.user.pk, "scopes": ["memories:read"]}
        )
    assert response.status_code == 200, response.content[:500]
    assert re.search(r'value="nvk_', response.content.decode())
    key = ApiKey.objects.get()
    assert key.user == account.user and key.created_by == key_admin
    changelist = console.get("/admin/api/apikey/")
    assert changelist.status_code == 200 and key.prefix in changelist.content.decode()
    # Revoke through the admin action (the same service).
    response = console.post(
        "/admin/api/apikey/", {"action": "revoke_selected", "_selected_action": [key.pk]}, follow=True
    )
    assert response.status_code == 200
    assert ApiKey.objects.get().revoked_at is not None
    assert AuditEvent.objects.filter(action="api.key_revoked", actor_username=key_admin.username).exists()


def test_the_admin_works_under_the_csp(key_admin):
    console = logged_in(key_admin, mfa=True)
    for path in ("/admin/", "/admin/api/apikey/", "/admin/api/apikey/add/"):
        response = console.get(path)
        assert response.status_code == 200, (path, response.status_code)
        html = response.content.decode()
        policy = response["Content-Security-Policy"]
        assert "'unsafe-inline'" not in policy
        # Inline scripts would be blocked: the admin we serve has none.
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], path


def test_the_console_links_to_the_api_keys_and_to_the_key_page_for_superusers(key_admin, make_user):
    console = logged_in(key_admin, mfa=True)
    html = console.get("/admin/").content.decode()
    tools = re.search(r'<div id="user-tools">(.*?)</div>', html, re.S).group(1)
    assert 'href="/accounts/api-keys/"' in tools and 'href="/admin/encryption/keys/"' not in tools
    pages = re.search(r'<div class="module" id="console-pages">(.*?)</div>', html, re.S).group(1)
    assert 'href="/accounts/api-keys/"' in pages and 'href="/admin/encryption/keys/"' not in pages
    keeper = make_user("keeper", is_staff=True, is_superuser=True)
    html = logged_in(keeper, mfa=True).get("/admin/").content.decode()
    tools = re.search(r'<div id="user-tools">(.*?)</div>', html, re.S).group(1)
    pages = re.search(r'<div class="module" id="console-pages">(.*?)</div>', html, re.S).group(1)
    assert 'href="/admin/encryption/keys/"' in tools and 'href="/admin/encryption/keys/"' in pages
    # Every page of the console has the user tools, the key page itself included.
    assert 'href="/accounts/api-keys/"' in logged_in(keeper, mfa=True).get("/admin/encryption/keys/").content.decode()


def test_the_consoles_change_password_is_the_account_pages_audited_one(key_admin):
    console = logged_in(key_admin, mfa=True)
    html = console.get("/admin/").content.decode()
    assert 'href="/admin/password_change/"' in html
    response = console.get("/admin/password_change/")
    assert response.status_code == 302 and response["Location"] == "/accounts/password/change/"
    form = {"old_password": "x", "new_password1": "y", "new_password2": "y"}
    response = console.post("/admin/password_change/", form)
    assert response.status_code == 302 and response["Location"] == "/accounts/password/change/"
