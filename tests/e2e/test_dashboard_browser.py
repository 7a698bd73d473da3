"""The security dashboard in Debian's Chromium: it fits 1366×768 without scrolling sideways."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.testing import login_with_mfa
from monitoring.services.rollup import security_counts_rollup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dashboard_fits_1366_by_768(browser, live_server):
    admin_user = get_user_model().objects.create_superuser(username="root", email="root@example.org", password="x" * 20)
    client = Client()
    login_with_mfa(client, admin_user)
    security_counts_rollup()
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
          "url": live_server.url}]
    )
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{live_server.url}/admin/")
    assert page.locator("h1").first.inner_text() == "Security dashboard"
    assert page.locator("#dash-jobs").is_visible()
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    # No CSP violation: the style element carries the nonce (the browser's favicon request 404s).
    assert [error for error in errors if "Content Security Policy" in error] == []
    context.close()
