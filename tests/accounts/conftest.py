"""Fixtures of the accounts tests: users, an enrolled authenticator, logins, audit helpers.

TOTP codes come from pyotp, an implementation independent of ours (and of django-otp's).
"""

from __future__ import annotations

import datetime
import json

import pyotp
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from accounts import totp
from accounts.services import mfa, notifications
from audit.models import AuditEvent

PASSWORD = "correct horse battery staple 42"
NEW_PASSWORD = "another long passphrase 1984!"
User = get_user_model()
START = datetime.datetime(2026, 3, 2, 9, 0, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def _fast_settings(settings):
    settings.ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR = 0
    settings.ACCOUNTS_SITE_URL = "http://testserver"


@pytest.fixture(autouse=True)
def _fresh_rate_limit_counters():
    """Each test starts with empty sign-up and password-reset counters (they live in a shared cache)."""
    from django.core.cache import caches

    from accounts import conf

    caches[conf.get("ACCOUNTS_RATE_LIMIT_CACHE_ALIAS")].clear()
    yield
    caches[conf.get("ACCOUNTS_RATE_LIMIT_CACHE_ALIAS")].clear()


@pytest.fixture
def user(db):
    return User.objects.create_user(username="alice", email="alice@example.org", password=PASSWORD)


@pytest.fixture
def other_user(db):
    return User.objects.create_user(username="bob", email="bob@example.org", password=PASSWORD)


@pytest.fixture
def staff_user(db):
    return User.objects.create_user(
        username="root-admin", email="admin@example.org", password=PASSWORD, is_staff=True, is_superuser=True
    )


class Authenticator:
    """An authenticator app: pyotp with the key the enrollment page showed."""

    def __init__(self, secret: str):
        self.secret = secret.replace(" ", "")
        self.otp = pyotp.TOTP(self.secret)

    def now(self) -> str:
        return self.otp.now()

    def at(self, when) -> str:
        return self.otp.at(when)


def enroll(user) -> tuple[Authenticator, list[str]]:
    """Give ``user`` a confirmed authenticator through the services; return it and the backup codes."""
    device = mfa.totp_device_create(actor=user, user=user, name="Phone")
    app = Authenticator(totp.key_to_base32(device.bin_key))
    codes = mfa.totp_device_confirm(actor=user, device=device, code=app.now())
    notifications.security_emails_deliver()  # what the worker does once the enrolment commits
    return app, codes


@pytest.fixture
def enrolled(user):
    return enroll(user)


def login(client: Client, username: str, password: str = PASSWORD, code: str | None = None, follow=False):
    response = client.post("/accounts/login/", {"username": username, "password": password}, follow=follow)
    if code is not None:
        response = client.post("/accounts/login/verify/", {"code": code}, follow=follow)
    return response


def events(*actions: str) -> list[dict]:
    """Audit events (oldest first), optionally only these actions (values like ``auth.login_failed``)."""
    rows = AuditEvent.objects.order_by("id").values()
    return [row for row in rows if not actions or row["action"] in actions]


def actions() -> list[str]:
    return [row["action"] for row in events()]


def audit_dump() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


def advance(machine, seconds: float) -> None:
    machine.shift(datetime.timedelta(seconds=seconds))


def now():
    return timezone.now()
