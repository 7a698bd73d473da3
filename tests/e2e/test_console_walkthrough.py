"""The security console walked through in Debian's Chromium, as an administrator would use it.

Sign in with a password and an authenticator code through the real login page, read the
dashboard, follow an alert to the user's security page, end one of their sessions and unlock
their account there (re-authenticating when the page asks), then find those actions in the audit
explorer by time range and request id and export them as CSV. Every step is checked on what the
page shows, and afterwards on the database and the audit trail; every page is photographed at
1366×768 and checked for sideways scrolling.

The screenshots go to the test's temporary folder. With ``CONSOLE_SCREENSHOTS=docs/images`` the
README's three are written there as well (``console-dashboard.png``, ``console-user-security.png``,
``console-audit-explorer.png``).
"""

from __future__ import annotations

import binascii
import csv
import datetime
import io
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone

from accounts import conf as accounts_conf
from accounts import totp
from accounts.models import FailureCounter, TOTPDevice, TrackedSession
from accounts.services.mfa import backup_codes_generate
from accounts.services.sessions import REAUTHENTICATED_AT_KEY
from audit.actions import Action
from audit.models import AuditEvent
from monitoring.models import Alert
from monitoring.services.rollup import security_counts_rollup
from tests.e2e.accessibility import horizontal_overflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
PASSWORD = "a long console passphrase 2026"
TARGET_PASSWORD = "the operator's own passphrase"
ATTACKER_IP = "198.51.100.7"
TARGET_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
# The README's screenshots: step name -> file name under CONSOLE_SCREENSHOTS.
README_SCREENSHOTS = {
    "dashboard": "console-dashboard.png",
    "user-security": "console-user-security.png",
    "audit-explorer": "console-audit-explorer.png",
}


class Camera:
    """Photographs each step at the window's size and checks that the page does not scroll sideways."""

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.taken = page, folder, []
        published = os.environ.get("CONSOLE_SCREENSHOTS", "")
        self.published = (PROJECT_DIR / published) if published else None

    def step(self, name: str, *, scroll_to: str = "") -> None:
        assert horizontal_overflow(self.page) is None, f"{name}: {horizontal_overflow(self.page)}"
        if scroll_to:  # the part of a long page the step is about, at the top of the window
            self.page.locator(scroll_to).evaluate("element => element.scrollIntoView({block: 'start'})")
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.taken.append(path)
        if self.published is not None and name in README_SCREENSHOTS:
            self.published.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.published / README_SCREENSHOTS[name])


def _world():
    """An administrator with an authenticator and backup codes; a user with a session and a lock."""
    users = get_user_model().objects
    root = users.create_superuser(username="root", email="root@example.org", password=PASSWORD)
    key = totp.new_key()
    TOTPDevice.objects.create(user=root, name="Phone", confirmed=True, key=binascii.hexlify(key).decode())
    backup_codes = backup_codes_generate(actor=root, user=root, notify=False)
    target = users.create_user(username="casey", email="casey@example.org", password=TARGET_PASSWORD)
    signed_in = Client(HTTP_USER_AGENT=TARGET_AGENT, REMOTE_ADDR="203.0.113.20")
    assert signed_in.post("/accounts/login/", {"username": "casey", "password": TARGET_PASSWORD}).status_code == 302
    guesser = Client(REMOTE_ADDR=ATTACKER_IP)
    for _ in range(accounts_conf.get("ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT")):
        guesser.post("/accounts/login/", {"username": "casey", "password": "not the password"})
    security_counts_rollup()
    return root, key, backup_codes, target


def _current_code(key: bytes) -> str:
    return totp.code_at_step(key, totp.time_step())


def test_an_administrator_walks_the_console_from_an_alert_to_an_export(browser, live_server, tmp_path):
    started = timezone.now().replace(microsecond=0) - datetime.timedelta(minutes=1)
    root, key, backup_codes, target = _world()
    tracked = TrackedSession.objects.get(user=target, ended_at__isnull=True)
    assert FailureCounter.objects.filter(username="casey", locked_until__gt=timezone.now()).exists()
    alert = Alert.objects.get(detector="lockout", subject="casey")

    context = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    page = context.new_page()
    camera = Camera(page, tmp_path)
    base = live_server.url

    # 1. Sign in through the real login page: password, then the authenticator's code.
    page.goto(f"{base}/admin/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    camera.step("login-code")
    page.get_by_label("Authentication code").fill(_current_code(key))
    page.get_by_role("button", name="Sign in").click()

    # 2. Back where the sign-in began, the dashboard: what is wrong right now.
    assert page.url == f"{base}/admin/"
    assert page.locator("h1").first.inner_text() == "Security dashboard"
    locked = page.locator("#dash-locked")
    assert "Locked accounts: 1" in locked.inner_text() and "casey" in locked.inner_text()
    alerts = page.locator("#dash-alerts")
    assert "Open alerts:" in alerts.inner_text()
    camera.step("dashboard-top")
    camera.step("dashboard", scroll_to="#dash-alerts")

    # 3. From the alert to the user's security page.
    alerts.get_by_role("link", name="lockout: casey").click()
    assert page.url.endswith(f"/admin/monitoring/alert/{alert.pk}/change/")
    camera.step("alert")
    page.locator("#content-main").get_by_role("link", name="casey", exact=True).first.click()
    assert page.url.endswith(f"/admin/accounts/user/{target.pk}/security/")
    assert page.locator("h1").first.inner_text() == "Security of casey"
    assert "locked" in page.locator("#usec-locks").inner_text()
    sessions = page.locator("#usec-sessions")
    assert "Firefox" in sessions.inner_text() and tracked.public_id in sessions.inner_text()
    camera.step("user-security")

    # 4. End casey's session. The sign-in was an hour ago, so the page asks to re-authenticate
    #    first (a backup code: the login's TOTP code may not be used twice, RFC 6238 §5.2).
    cookies = {cookie["name"]: cookie["value"] for cookie in context.cookies(base)}
    store = SessionStore(session_key=cookies[settings.SESSION_COOKIE_NAME])
    store[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp() - 3600
    store.save()
    row = sessions.locator("tr", has_text=tracked.public_id)
    row.get_by_role("button", name="Revoke").click()
    assert page.get_by_role("heading", name="Confirm it is you").is_visible()
    assert TrackedSession.objects.get(pk=tracked.pk).ended_at is None  # nothing happened yet
    camera.step("step-up")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Authentication code").fill(backup_codes[0])
    page.get_by_role("button", name="Confirm").click()
    assert page.url.endswith(f"/admin/accounts/user/{target.pk}/security/")
    page.locator("#usec-sessions tr", has_text=tracked.public_id).get_by_role("button", name="Revoke").click()
    assert "Ended the session of casey" in page.locator("ul.messagelist").inner_text()
    assert "Active sessions: 0" in page.locator("#usec-sessions").inner_text()

    # 5. Unlock the account (the step-up is fresh now).
    page.get_by_role("button", name="Unlock casey (reset every counter)").click()
    assert "Unlocked casey" in page.locator("ul.messagelist").inner_text()
    assert "✔ not locked" in page.locator("#usec-locks").inner_text()
    camera.step("user-security-after")

    revoked = AuditEvent.objects.get(action=Action.SESSION_REVOKED, subject_username="casey")
    assert revoked.request_id

    # 6. The audit explorer: this time range, then the request that ended the session.
    page.goto(f"{base}/admin/audit/auditevent/")
    page.get_by_label("From (UTC)").fill(started.strftime("%Y-%m-%d %H:%M:%S"))
    page.get_by_label("To (UTC)").fill((timezone.now() + datetime.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S"))
    page.get_by_role("button", name="Filter").click()
    listed = page.locator("#result_list").inner_text()
    assert "Session revoked" in listed and "Account unlocked" in listed and "Account locked" in listed
    page.get_by_label("Request id", exact=True).fill(revoked.request_id)
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == AuditEvent.objects.filter(request_id=revoked.request_id).count() >= 1
    assert "Session revoked" in page.locator("#result_list").inner_text()
    assert "Account unlocked" not in page.locator("#result_list").inner_text()
    chips = page.locator(".audit-chips").inner_text()
    assert "request id: " + revoked.request_id in chips and "from: " in chips
    camera.step("audit-explorer")

    # 7. Export what is shown, as CSV.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    exported = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8"))))
    assert {row["request_id"] for row in exported} == {revoked.request_id}
    assert [row["action"] for row in exported if row["action"] == Action.SESSION_REVOKED] == [Action.SESSION_REVOKED]

    # Afterwards: the session ended by the administrator, the account unlocked, each step audited.
    tracked.refresh_from_db()
    assert tracked.ended_at is not None and tracked.end_reason == TrackedSession.EndReason.REVOKED_BY_ADMIN
    assert not FailureCounter.objects.filter(username="casey").exists()
    assert revoked.actor_username == "root" and revoked.context["reason"] == "revoked_by_admin"
    unlocked = AuditEvent.objects.get(action=Action.ACCOUNT_UNLOCKED, subject_username="casey")
    assert unlocked.actor_username == "root"
    export = AuditEvent.objects.get(action=Action.AUDIT_EXPORTED)
    assert export.actor_username == "root"
    assert export.context["format"] == "csv" and export.context["rows"] == len(exported)
    assert export.context["filters"]["request_id"] == revoked.request_id
    assert AuditEvent.objects.filter(action=Action.AUDIT_SEARCHED, actor_username="root").exists()
    assert len(camera.taken) == 8
    context.close()
