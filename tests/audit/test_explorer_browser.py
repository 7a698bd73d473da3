"""The audit explorer in Debian's Chromium: it fits 1366 px wide with filters, chips and long values."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django.utils.http import urlencode

import audit
from accounts.testing import login_with_mfa
from core import context as request_context
from tests.e2e.conftest import browser  # noqa: F401  (the session's Chromium)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_explorer_fits_1366_wide_with_filters_in_use_and_no_csp_violation(browser, live_server, tmp_path):  # noqa: F811
    admin_user = get_user_model().objects.create_superuser(username="root", email="root@example.org", password="x" * 20)
    long_name = "a-rather-long-username-of-forty-chars-x"
    person = get_user_model().objects.create_user(username=long_name, email="l@example.org", password="x" * 20)
    for number in range(30):
        with request_context.bound(
            request_id=f"{number:032x}", client_ip=f"2001:db8:ffff:ffff:ffff:ffff:ffff:{number:04x}"
        ):
            audit.record(
                action=audit.Action.MEMBERSHIP_ROLE_SET, actor=person, subject=person,
                target=("memories.organization", 10**12 + number),
                context={"role": "maintainer", "previous_role": "member", "scope": "organization"},
            )
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
    since = (timezone.now() - datetime.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    query = urlencode({
        "action": "membership.*", "actor": long_name[:20], "client_ip": "2001:db8:ffff:ffff:ffff:ffff:ffff:0/116",
        "since": since, "outcome": "success",
    })
    page.goto(f"{live_server.url}/admin/audit/auditevent/?{query}")
    assert page.locator(".audit-chip").count() == 5
    assert page.locator("#result_list tbody tr").count() == 30
    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    # The list itself fits: no column hidden in a box that scrolls sideways.
    table = page.evaluate(
        "(() => { const t = document.querySelector('#result_list');"
        " return [t.scrollWidth, t.parentElement.clientWidth]; })()"
    )
    assert table[0] <= table[1], table
    assert [error for error in errors if "Content Security Policy" in error] == []
    # A chip removes its filter: the list is still filtered by the others.
    page.locator(".audit-chip").first.click()
    assert page.locator(".audit-chip").count() == 4
    context.close()
