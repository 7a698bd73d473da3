"""A user's security page in Debian's Chromium: it fits 1366×768 without scrolling sideways,
breaks no CSP rule, and its buttons work without any script."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

import audit
from accounts.models import FailureCounter, TrackedSession
from accounts.testing import login_with_mfa
from api import services as api_services
from audit.services import write_held_events

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_user_security_page_fits_1366_by_768_and_its_unlock_button_works(browser, live_server, tmp_path):
    users = get_user_model().objects
    admin_user = users.create_superuser(username="root", email="root@example.org", password="x" * 20)
    # Long values everywhere a table cell could push the page wider.
    target = users.create_user(username="a-rather-long-username-of-a-service-operator", email="ops@example.org")
    now = timezone.now()
    for index in range(3):
        TrackedSession.objects.create(
            user=target, created_at=now, last_seen_at=now, ip_address=f"2001:db8:85a3::8a2e:370:{index}",
            user_agent="x", device_label="Chrome 131 on Windows 11 with a very long label" * 2, method="password+totp",
        )
    FailureCounter.objects.create(
        kind=FailureCounter.Kind.PASSWORD, username=target.username, address="2001:db8:85a3::8a2e:370:7334",
        failure_count=5, lock_count=1, last_failure_at=now, locked_until=now + datetime.timedelta(minutes=5),
    )
    api_services.api_key_issue(
        actor=admin_user, owner=target, name="deployment pipeline key", scopes=["memories:read", "memories:write"]
    )
    for _ in range(30):
        audit.record(action=audit.Action.LOGIN_FAILED, outcome=audit.Outcome.FAILURE, subject=target,
                     context={"reason": "wrong_password"})
    write_held_events()
    client = Client()
    login_with_mfa(client, admin_user)
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
          "url": live_server.url}]
    )
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{live_server.url}/admin/accounts/user/{target.pk}/security/")
    assert page.locator("h1").first.inner_text() == f"Security of {target.username}"
    assert page.locator("#usec-events-subject").is_visible()
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    page.screenshot(path=str(tmp_path / "user-security-1366x768.png"), full_page=True)

    page.get_by_role("button", name=f"Unlock {target.username} (reset every counter)").click()
    assert page.url.endswith(f"/admin/accounts/user/{target.pk}/security/")
    assert "Unlocked" in page.locator("ul.messagelist").inner_text()
    assert "✔ not locked" in page.locator("#usec-locks").inner_text()
    assert not FailureCounter.objects.filter(username=target.username).exists()
    assert [error for error in errors if "Content Security Policy" in error] == []
    context.close()
