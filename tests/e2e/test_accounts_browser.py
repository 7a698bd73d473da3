"""The account flows in a real Chromium: sign-up to admin, through email, TOTP, backup codes and sessions."""

from __future__ import annotations

import email
import re
import time
from email import policy

import pyotp
import pytest
from django.contrib.auth import get_user_model

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long browser passphrase 2026"


def _emails(mail_dir) -> list:
    messages = []
    for path in sorted(mail_dir.iterdir(), key=lambda item: item.stat().st_mtime):
        for raw in path.read_text().split("-" * 79):
            if raw.strip():
                messages.append(email.message_from_string(raw.strip() + "\n", policy=policy.default))
    return messages


def _link(mail_dir, subject: str) -> str:
    for message in reversed(_emails(mail_dir)):
        if message["Subject"] == subject:
            body = message.get_body(preferencelist=("plain",)).get_content()
            return re.search(r"(https?://\S+/accounts/\S+/)", body).group(1)
    raise AssertionError(f"no email {subject!r}")


def _fresh_code(app: pyotp.TOTP, used: set[str]) -> str:
    """The current code, waiting for the next 30-second step if this one was already spent."""
    while app.now() in used:
        time.sleep(30 - time.time() % 30 + 0.2)
    code = app.now()
    used.add(code)
    return code


def _log_in(page, base: str, username: str, password: str, code: str | None):
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()
    if code is not None:
        page.get_by_label("Authentication code").fill(code)
        page.get_by_role("button", name="Sign in").click()


def test_sign_up_to_admin_in_a_real_browser(browser, live_server, mail_dir):
    base = live_server.url
    context = browser.new_context()
    page = context.new_page()

    # Sign up, then confirm the email with the link from the email file.
    page.goto(f"{base}/accounts/signup/")
    page.get_by_label("Username").fill("Dana")
    page.get_by_label("Email").fill("dana@example.org")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_role("heading", name="Check your email").is_visible()
    _log_in(page, base, "dana", PASSWORD, None)
    assert "Confirm your email address first" in page.content()
    page.goto(_link(mail_dir, "Confirm your email address"))
    page.get_by_role("button", name="Confirm my email address").click()
    assert "Your email address is confirmed" in page.content()

    # Log in with the password only, then enroll an authenticator from the key on the page.
    _log_in(page, base, "dana", PASSWORD, None)
    assert page.get_by_role("heading", name="Account security").is_visible()
    page.goto(f"{base}/accounts/mfa/setup/")
    page.get_by_label("Name of the authenticator").fill("Pixel")
    page.get_by_role("button", name="Show the key").click()
    assert page.locator("svg.qr").is_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    app = pyotp.TOTP(secret)
    used: set[str] = set()
    page.get_by_label("Code from the app").fill(_fresh_code(app, used))
    page.get_by_role("button", name="Activate").click()
    assert page.get_by_role("heading", name="Your backup codes").is_visible()
    backup_codes = [text.strip() for text in page.locator(".backup-codes code").all_inner_texts()]
    assert len(backup_codes) == 10

    # Log out; log in with password and a (new) code.
    page.goto(f"{base}/accounts/security/")
    page.get_by_role("button", name=re.compile("Sign out")).first.click()
    _log_in(page, base, "dana", PASSWORD, _fresh_code(app, used))
    assert page.get_by_role("heading", name="Account security").is_visible()

    # A second browser signs in with a backup code and is told how many remain.
    other = browser.new_context(user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
    other_page = other.new_page()
    _log_in(other_page, base, "dana", PASSWORD, backup_codes[0])
    assert "9 backup codes left" in other_page.content()

    # The first browser ends the other session from the sessions page.
    page.goto(f"{base}/accounts/sessions/")
    assert "(this session)" in page.content()
    page.get_by_role("button", name=re.compile("Sign out the session on Firefox on Linux")).click()
    assert "was ended" in page.content()
    other_page.goto(f"{base}/accounts/security/")
    assert "/accounts/login/" in other_page.url

    # Staff reach the admin only after MFA: the password alone leads to the code step, not the admin.
    get_user_model().objects.filter(username="dana").update(is_staff=True, is_superuser=True)
    staff = browser.new_context()
    staff_page = staff.new_page()
    staff_page.goto(f"{base}/admin/")
    assert "/accounts/login/" in staff_page.url
    staff_page.get_by_label("Username").fill("dana")
    staff_page.get_by_label("Password").fill(PASSWORD)
    staff_page.get_by_role("button", name="Continue").click()
    assert "/accounts/login/verify/" in staff_page.url
    staff_page.goto(f"{base}/admin/")
    assert "/admin/" not in staff_page.url.replace(base, "").split("?")[0]
    _log_in(staff_page, base, "dana", PASSWORD, backup_codes[1])
    staff_page.goto(f"{base}/admin/")
    assert staff_page.url == f"{base}/admin/"
    assert "Security dashboard" in staff_page.content()  # the console's home

    # The same staff session in the first browser: it passed MFA too, and rotated its key on promotion.
    page.goto(f"{base}/admin/")
    assert page.url == f"{base}/admin/"
    for each in (context, other, staff):
        each.close()
