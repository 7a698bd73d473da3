"""The console's pages in Debian's Chromium at 1366×768: no serious or critical accessibility
violation (axe-core, tests/e2e/accessibility.py) and no sideways scrolling.

Signed-in pages are visited as a superuser with MFA, with an alert, a locked counter and a
report in place so that the pages show rows rather than their empty states.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.testing import login_with_mfa
from monitoring.services.rollup import security_counts_rollup
from tests.e2e.accessibility import blocking_violations, horizontal_overflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONSOLE_PAGES = (
    "/admin/",
    "/admin/apps/",
    "/admin/monitoring/alert/",
    "/admin/monitoring/alert/{alert}/change/",
    "/admin/monitoring/report/",
    "/admin/monitoring/jobrun/",
    "/admin/audit/auditevent/",
    "/admin/audit/auditevent/{event}/change/",
    "/admin/audit/auditevent/?last=24h&outcome=success",
    "/admin/monitoring/suppressionrule/",
    "/admin/accounts/user/{root}/security/",
    "/admin/encryption/keys/",
    "/admin/accounts/user/",
    "/admin/accounts/trackedsession/",
    "/accounts/api-keys/",
    "/accounts/security/",
    "/accounts/sessions/",
)
PUBLIC_PAGES = ("/accounts/login/", "/accounts/signup/")


@pytest.fixture
def signed_in_page(browser, live_server):
    admin_user = get_user_model().objects.create_superuser(
        username="root", email="root@example.org", password="x" * 20
    )  # creating a superuser records events and raises a privilege alert: rows on every list
    client = Client()
    login_with_mfa(client, admin_user)
    security_counts_rollup()
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
          "url": live_server.url}]
    )
    yield context.new_page()
    context.close()


def _findings(page, url: str) -> list[str]:
    response = page.goto(url)
    findings = [] if response.ok else [f"HTTP {response.status}"]
    overflow = horizontal_overflow(page)
    if overflow:
        findings.append(f"scrolls sideways: {overflow[0]} px wide in a {overflow[1]} px window")
    return findings + blocking_violations(page)


def test_console_pages_are_accessible_and_fit(signed_in_page, live_server):
    from audit.models import AuditEvent
    from monitoring.models import Alert

    ids = {
        "root": get_user_model().objects.get(username="root").pk,
        "alert": Alert.objects.order_by("pk").values_list("pk", flat=True).first(),
        "event": AuditEvent.objects.order_by("pk").values_list("pk", flat=True).first(),
    }
    paths = [path.format(**ids) for path in CONSOLE_PAGES]
    report = {path: _findings(signed_in_page, live_server.url + path) for path in paths}
    assert {path: found for path, found in report.items() if found} == {}


def test_public_pages_are_accessible_and_fit(browser, live_server):
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    report = {path: _findings(page, live_server.url + path) for path in PUBLIC_PAGES}
    page.close()
    assert {path: found for path, found in report.items() if found} == {}


def test_the_check_finds_a_planted_violation(browser, live_server):
    """The check is not blind: an image without alternative text and a sideways-wide block are found."""
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(live_server.url + "/accounts/login/")
    page.evaluate(
        """() => {
            const img = document.createElement('img'); img.src = 'data:,'; document.body.prepend(img);
            const wide = document.createElement('div'); wide.style.width = '3000px'; wide.textContent = 'x';
            document.body.append(wide);
        }"""
    )
    violations = blocking_violations(page)
    assert any("image-alt" in line for line in violations), violations
    assert horizontal_overflow(page) is not None
    page.close()
