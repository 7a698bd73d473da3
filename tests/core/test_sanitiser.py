"""No password, token, OTP, key, secret, session id, authorization header or memory content can
reach an audit event or a log line; control characters are escaped; sizes are bounded.

OWASP ASVS 4.0.3 V7.1.1 and V7.3.1; the negative cases follow authentik's test_event.py.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from core.logging import SanitisingFilter
from core.sanitiser import MASK, clean_text, is_sensitive_key, sanitise, sanitise_context

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"
FERNET = "gAAAAABkZ3x5Q2FzZGZhc2RmYXNkZmFzZGZhc2RmYXNkZmFzZGZhc2Rm_1234567890abcdefABCDEF=="
ARGON2 = "argon2$argon2id$v=19$m=102400,t=2,p=8$c29tZXNhbHRzb21lc2FsdA$Zm9vYmFyYmF6cXV4Zm9vYmFy"
PBKDF2 = "pbkdf2_sha256$870000$Mx9salt0123$rV4qUvXyZ1aB2cD3eF4gH5iJ6kL7mN8oP9qR0sT1uV2w="
BCRYPT = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
HEX_KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
URLSAFE_TOKEN = "Xk3vQ9_rT2mPzL8wYb4NcJ7hFd1sAe6G"  # secrets.token_urlsafe(24)

# Every secret below must be masked, whatever key or free text it arrives in.
SECRET_VALUES = ["hunter2-correct-horse", JWT, FERNET, ARGON2, PBKDF2, BCRYPT, HEX_KEY, URLSAFE_TOKEN, "481516"]

SECRET_KEYED = {
    "password": "hunter2-correct-horse",
    "new_password1": "hunter2-correct-horse",
    "passwd": "hunter2-correct-horse",
    "client_secret": URLSAFE_TOKEN,
    "token": URLSAFE_TOKEN,
    "refreshToken": URLSAFE_TOKEN,
    "otp": "481516",
    "otp_code": "481516",
    "code": "481516",
    "backup_codes": ["481516", "234234"],
    "api_key": URLSAFE_TOKEN,
    "X-Api-Key": URLSAFE_TOKEN,
    "key": HEX_KEY,
    "secret_key": HEX_KEY,
    "sessionid": "k8s9d7f6g5h4j3k2l1",
    "session_id": "k8s9d7f6g5h4j3k2l1",
    "HTTP_AUTHORIZATION": "Basic YWxpY2U6aHVudGVyMg==",
    "Cookie": "sessionid=k8s9d7f6g5h4j3k2l1; csrftoken=abc",
    "csrfmiddlewaretoken": "k8s9d7f6g5h4j3k2l1",
    "X-CSRFToken": "k8s9d7f6g5h4j3k2l1",
    "content": "my private memory: the door code is 4512",
    "metadata": {"mood": "private"},
    "signature": "k8s9d7f6g5h4j3k2l1",
    "password_hash": ARGON2,
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----",
}

INNOCENT = {
    "keyword": "search term",
    "monkey": "banana",
    "status_code": 403,
    "content_type": "application/json",
    "api_key_id": "key_4f2a",
    "key_version": 3,
    "token_count": 12,
    "changed_fields": ["password", "email"],
    "reason": "wrong password",
    "request_id": "0123456789abcdef0123456789abcdef",
    "path": "/api/v1/memories/12/share/",
    "country_code": "IN",
}


@pytest.mark.parametrize(("key", "value"), SECRET_KEYED.items())
def test_values_under_secret_keys_are_masked(key, value):
    cleaned = sanitise({key: value})
    assert cleaned[key] == MASK
    assert is_sensitive_key(key)


@pytest.mark.parametrize(("key", "value"), INNOCENT.items())
def test_innocent_keys_and_values_are_kept(key, value):
    assert not is_sensitive_key(key)
    assert sanitise({key: value})[key] == value


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {URLSAFE_TOKEN}",
        f"bearer {URLSAFE_TOKEN}",
        f"got token {JWT} from the client",
        f"fernet {FERNET}",
        f"stored {ARGON2}",
        f"legacy {PBKDF2}",
        f"bcrypt {BCRYPT}",
        f"raw key {HEX_KEY}",
        f"url token {URLSAFE_TOKEN} in text",
        "login failed password=hunter2-correct-horse for bob",
        "POST /login?username=bob&password=hunter2-correct-horse",
        "https://bob:hunter2-correct-horse@example.com/",
        "Cookie: sessionid=k8s9d7f6g5h4j3k2l1; csrftoken=abc",
        '{"api_key": "hunter2-correct-horse"}',
        "otp_code: 481516",
    ],
)
def test_secrets_in_free_text_are_masked_by_pattern(text):
    cleaned = clean_text(text, 1024)
    for secret in [*SECRET_VALUES, "k8s9d7f6g5h4j3k2l1"]:
        assert secret not in cleaned, cleaned


def test_nested_structures_are_masked_recursively():
    cleaned = sanitise({"request": {"headers": [{"Authorization": "Bearer abc"}], "body": {"password": "p"}}})
    assert cleaned == {"request": {"headers": [{"Authorization": MASK}], "body": MASK}}


def test_control_characters_newlines_and_bidi_are_escaped():
    cleaned = clean_text("ok\r\n2026-01-01 INFO forged line\x00\x1b[31m\u2028\u202egnp.exe", 1024)
    assert "\n" not in cleaned and "\r" not in cleaned and "\x00" not in cleaned and "\x1b" not in cleaned
    assert "\u2028" not in cleaned and "\u202e" not in cleaned
    assert cleaned.startswith("ok\\r\\n2026-01-01 INFO forged line\\x00\\x1b[31m\\u2028\\u202e")


def test_lone_surrogates_are_escaped_so_postgresql_accepts_the_text():
    assert clean_text("a\ud800b", 10) == "a\\ud800b"


def test_long_strings_are_truncated_with_a_marker():
    cleaned = clean_text("word " * 4000, 150)
    assert len(cleaned) == 150
    assert cleaned.endswith("...[truncated from 20000 chars]")


def test_depth_items_and_total_size_are_bounded():
    deep: dict = {}
    cursor = deep
    for _ in range(20):
        cursor["next"] = {}
        cursor = cursor["next"]
    cleaned = sanitise(deep)
    assert "[MAX DEPTH]" in json.dumps(cleaned)

    many = sanitise({"items": list(range(1000))})
    assert len(many["items"]) == 101 and many["items"][-1] == "[900 more items]"

    big = sanitise_context({f"field{n}": "x y " * 300 for n in range(50)})
    assert len(json.dumps(big)) < 12000
    assert "[TRUNCATED]" in big.values()


def test_odd_values_become_json():
    import datetime
    import decimal
    import uuid

    cleaned = sanitise(
        {
            "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "amount": decimal.Decimal("1.50"),
            "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "raw": b"\x00\x01secret",
            "nan": float("nan"),
            "huge": 2**70,
            "object": object(),
            "set": {3, 1, 2},
        }
    )
    json.dumps(cleaned, allow_nan=False)
    assert cleaned["raw"] == "[MASKED:bytes len=8]"
    assert cleaned["huge"] == str(2**70)
    assert cleaned["set"] == [1, 2, 3]


def _handler_output(record_factory) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SanitisingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(extra_fields)s"))
    test_logger = logging.getLogger("tests.audit.sanitiser")
    test_logger.addHandler(handler)
    test_logger.propagate = False
    try:
        record_factory(test_logger)
    finally:
        test_logger.removeHandler(handler)
        test_logger.propagate = True
    return stream.getvalue()


def test_no_secret_and_no_forged_line_reaches_a_log_line():
    output = _handler_output(
        lambda log: log.warning(
            "login failed for %s with password=%s token %s\nINFO forged entry",
            "bob\r\nCRITICAL admin logged in",
            "hunter2-correct-horse",
            JWT,
            extra={"extra_fields": {"api_key": URLSAFE_TOKEN, "Authorization": "Bearer x", "hash": ARGON2}},
        )
    )
    assert output.count("\n") == 1  # one record, one line
    for secret in ["hunter2-correct-horse", JWT, URLSAFE_TOKEN, ARGON2]:
        assert secret not in output
    assert "\\nINFO forged entry" in output and "bob\\r\\nCRITICAL" in output


def test_secrets_in_exception_messages_are_masked_in_the_log():
    def log_exception(log):
        try:
            raise ValueError(f"bad credential Bearer {URLSAFE_TOKEN}")
        except ValueError:
            log.exception("failed", extra={"extra_fields": ""})

    output = _handler_output(log_exception)
    assert URLSAFE_TOKEN not in output
    assert "ValueError" in output


def test_the_configured_logging_filters_every_handler(settings):
    for name, handler in settings.LOGGING["handlers"].items():
        assert "sanitise" in handler.get("filters", []), name
    assert settings.LOGGING["filters"]["sanitise"]["()"] == "core.logging.SanitisingFilter"


def test_a_source_revision_is_an_identifier_but_the_same_hex_under_a_secret_key_is_masked():
    commit = "3f2c1e9d0b7a4c5e8f6a1b2c3d4e5f60718293a4"  # a full git commit hash: 40 hex digits
    cleaned = sanitise_context({"revision": commit, "image_revision": commit, "token": commit, "note": commit})
    assert cleaned["revision"] == commit and cleaned["image_revision"] == commit
    assert commit not in json.dumps([cleaned["token"], cleaned["note"]])
