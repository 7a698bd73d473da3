"""Signed, expiring, single-use links for email verification and email change.

Signed with Django's ``TimestampSigner`` (HMAC-SHA-256 under ``SECRET_KEY``, a salt per purpose)
so they cannot be forged or moved between purposes. Single use comes from what they bind:
a verification link names the address it verifies and is refused once the account is verified;
an email-change link names the *current* address, so it is refused once the change is made.
"""

from __future__ import annotations

import dataclasses

from django.core import signing

from accounts import conf

EMAIL_VERIFICATION_SALT = "accounts.email-verification"
EMAIL_CHANGE_SALT = "accounts.email-change"
TOKEN_MAX_LENGTH = 512


class LinkInvalid(Exception):
    """The link is tampered with, expired, used, or not for this purpose."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class EmailChange:
    user_id: int
    old_email: str
    new_email: str


def email_verification_token(user) -> str:
    return signing.TimestampSigner(salt=EMAIL_VERIFICATION_SALT).sign_object({"u": user.pk, "e": user.email})


def email_change_token(user, new_email: str) -> str:
    return signing.TimestampSigner(salt=EMAIL_CHANGE_SALT).sign_object({"u": user.pk, "o": user.email, "n": new_email})


def _load(token: str, salt: str, max_age: int) -> dict:
    if not token or len(token) > TOKEN_MAX_LENGTH:
        raise LinkInvalid("malformed")
    try:
        value = signing.TimestampSigner(salt=salt).unsign_object(token, max_age=max_age)
    except signing.SignatureExpired:
        raise LinkInvalid("expired") from None
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        raise LinkInvalid("tampered") from None
    if not isinstance(value, dict):
        raise LinkInvalid("tampered")
    return value


def email_verification_load(token: str) -> tuple[int, str]:
    """Return ``(user_id, email)`` of a valid verification link, else raise ``LinkInvalid``."""
    value = _load(token, EMAIL_VERIFICATION_SALT, conf.get("ACCOUNTS_EMAIL_VERIFICATION_MAX_AGE"))
    try:
        return int(value["u"]), str(value["e"])
    except (KeyError, TypeError, ValueError):
        raise LinkInvalid("tampered") from None


def email_change_load(token: str) -> EmailChange:
    """Return the change a valid email-change link asks for, else raise ``LinkInvalid``."""
    value = _load(token, EMAIL_CHANGE_SALT, conf.get("ACCOUNTS_EMAIL_CHANGE_MAX_AGE"))
    try:
        return EmailChange(user_id=int(value["u"]), old_email=str(value["o"]), new_email=str(value["n"]))
    except (KeyError, TypeError, ValueError):
        raise LinkInvalid("tampered") from None
