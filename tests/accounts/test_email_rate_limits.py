"""Sign-up and password reset are limited per client IP and per address (pen-test finding).

One address had queued 30 reset and 30 sign-up mails to one user in a minute. Over a limit the
request does nothing, answers exactly as one that went through, and records
``auth.email_rate_limited``. The counters live in the shared cache (Redis in production), so every
process counts together: one test runs on a real Redis server.
"""

from __future__ import annotations

import pytest
import redis
from django.core import checks, mail

from accounts.models import User
from tests.accounts.conftest import PASSWORD, events
from tests.support.servers import redis_server

pytestmark = pytest.mark.django_db


def _sign_up(client, capture, username, email, ip="127.0.0.1"):
    with capture(execute=True):
        return client.post(
            "/accounts/signup/",
            {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
            REMOTE_ADDR=ip,
        )


def _reset(client, capture, email, ip="127.0.0.1"):
    with capture(execute=True):
        return client.post("/accounts/password/reset/", {"email": email}, REMOTE_ADDR=ip)


@pytest.mark.audit_coverage("auth.email_rate_limited")
def test_resets_for_one_address_stop_at_its_limit_with_the_same_answer(
    client, user, settings, django_capture_on_commit_callbacks
):
    settings.ACCOUNTS_PASSWORD_RESET_RATE_PER_ADDRESS = "2/h"
    answers = [
        _reset(client, django_capture_on_commit_callbacks, "alice@example.org", ip=f"10.0.0.{n}") for n in range(4)
    ]
    assert {(answer.status_code, answer["Location"]) for answer in answers} == {(302, "/accounts/password/reset/done/")}
    assert len(mail.outbox) == 2  # from four different IPs: the address limit holds
    limited = events("auth.email_rate_limited")
    assert [(row["outcome"], row["context"], row["subject_id"]) for row in limited] == [
        ("denied", {"purpose": "password_reset", "limit": "address"}, str(user.pk))
    ] * 2
    assert "alice@example.org" not in str(limited)


def test_resets_from_one_ip_stop_at_its_limit_and_other_ips_go_on(client, settings, django_capture_on_commit_callbacks):
    settings.ACCOUNTS_PASSWORD_RESET_RATE_PER_IP = "3/h"
    for n in range(4):
        User.objects.create_user(username=f"user{n}", email=f"user{n}@example.org", password=PASSWORD)
    answers = [_reset(client, django_capture_on_commit_callbacks, f"user{n}@example.org") for n in range(4)]
    assert {answer.status_code for answer in answers} == {302}
    assert [message.to for message in mail.outbox] == [
        ["user0@example.org"],
        ["user1@example.org"],
        ["user2@example.org"],
    ]
    assert [row["context"]["limit"] for row in events("auth.email_rate_limited")] == ["client_ip"]
    assert [row["client_ip"] for row in events("auth.email_rate_limited")] == ["127.0.0.1"]
    _reset(client, django_capture_on_commit_callbacks, "user3@example.org", ip="10.9.9.9")
    assert mail.outbox[-1].to == ["user3@example.org"]


def test_a_limited_reset_for_an_unknown_address_answers_like_any_other(
    client, settings, django_capture_on_commit_callbacks
):
    settings.ACCOUNTS_PASSWORD_RESET_RATE_PER_ADDRESS = "1/h"
    first = _reset(client, django_capture_on_commit_callbacks, "nobody@example.org")
    second = _reset(client, django_capture_on_commit_callbacks, "nobody@example.org")
    assert (first.status_code, first["Location"]) == (second.status_code, second["Location"])
    assert [row["subject_id"] for row in events("auth.email_rate_limited")] == [""]


def test_sign_ups_for_one_address_stop_at_its_limit_with_the_same_answer(
    client, user, settings, django_capture_on_commit_callbacks
):
    settings.ACCOUNTS_SIGNUP_RATE_PER_ADDRESS = "2/h"
    answers = [
        _sign_up(client, django_capture_on_commit_callbacks, f"mallory{n}", "alice@example.org", ip=f"10.0.1.{n}")
        for n in range(5)
    ]
    assert {(answer.status_code, answer["Location"]) for answer in answers} == {(302, "/accounts/signup/done/")}
    assert [message.subject for message in mail.outbox] == ["Someone tried to sign up with your email address"] * 2
    assert [row["context"] for row in events("auth.email_rate_limited")] == [
        {"purpose": "signup", "limit": "address"}
    ] * 3


def test_sign_ups_from_one_ip_stop_at_its_limit_and_create_no_account(
    client, settings, django_capture_on_commit_callbacks
):
    settings.ACCOUNTS_SIGNUP_RATE_PER_IP = "2/h"
    answers = [
        _sign_up(client, django_capture_on_commit_callbacks, f"carol{n}", f"carol{n}@example.org") for n in range(3)
    ]
    assert {(answer.status_code, answer["Location"]) for answer in answers} == {(302, "/accounts/signup/done/")}
    assert sorted(User.objects.values_list("username", flat=True)) == ["carol0", "carol1"]
    assert len(mail.outbox) == 2
    assert [row["context"]["limit"] for row in events("auth.email_rate_limited")] == ["client_ip"]


def test_an_empty_rate_is_no_limit(client, user, settings, django_capture_on_commit_callbacks):
    settings.ACCOUNTS_PASSWORD_RESET_RATE_PER_ADDRESS = ""
    settings.ACCOUNTS_PASSWORD_RESET_RATE_PER_IP = ""
    for _ in range(6):
        _reset(client, django_capture_on_commit_callbacks, "alice@example.org")
    assert len(mail.outbox) == 6 and not events("auth.email_rate_limited")


def test_the_counters_are_shared_through_redis(client, user, settings, django_capture_on_commit_callbacks):
    with redis_server() as url:
        settings.CACHES = {
            **settings.CACHES,
            "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url},
        }
        settings.ACCOUNTS_RATE_LIMIT_CACHE_ALIAS = "shared"
        settings.ACCOUNTS_PASSWORD_RESET_RATE_PER_ADDRESS = "1/h"
        _reset(client, django_capture_on_commit_callbacks, "alice@example.org")
        # Another process sees the count: its own connection to the server, not this process's memory.
        stored = redis.Redis.from_url(url).keys("*accounts:rate:password_reset:address:*")
        assert len(stored) == 1 and b"alice" not in stored[0]
        _reset(client, django_capture_on_commit_callbacks, "alice@example.org")
        assert len(mail.outbox) == 1
        assert [row["context"]["limit"] for row in events("auth.email_rate_limited")] == ["address"]
        settings.ACCOUNTS_RATE_LIMIT_CACHE_ALIAS = "api"  # the fixtures' clean-up outlives this server


@pytest.mark.parametrize("rate", ["3", "3/fortnight", "x/h", "0/h"])
def test_a_malformed_rate_is_refused_by_the_system_checks(settings, rate):
    settings.ACCOUNTS_SIGNUP_RATE_PER_IP = rate
    messages = [message for message in checks.run_checks(tags=[checks.Tags.security]) if message.id == "accounts.E013"]
    assert len(messages) == 1 and "ACCOUNTS_SIGNUP_RATE_PER_IP" in messages[0].msg


@pytest.mark.parametrize(
    "rate, parsed",
    [
        ("1/s", (1, 1)),
        ("5/m", (5, 60)),
        ("5/minute", (5, 60)),
        ("30/H", (30, 3600)),
        ("2/ day", (2, 86400)),
        ("", None),
    ],
)
def test_a_rate_reads_as_count_per_period_and_one_is_a_valid_count(rate, parsed):
    """``ACCOUNTS_*_RATE_*`` settings: "N/s|m|h|d" (the first letter decides), empty for no limit."""
    from accounts.services.rate_limits import parse_rate

    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["3", "3/", "3/fortnight", "0/h", "-1/h"])
def test_a_malformed_rate_raises_a_value_error_naming_it(rate):
    from accounts.services.rate_limits import parse_rate

    with pytest.raises(ValueError, match="not a rate like 5/h"):
        parse_rate(rate)


@pytest.mark.parametrize("rate, duration", [("2/h", 3600), ("2/m", 60)])
def test_a_count_lasts_its_whole_window_and_the_next_window_starts_afresh(settings, time_machine, rate, duration):
    """A limit still holds at the last moment of its window, and lifts when the next window starts."""
    import datetime

    from accounts.services.rate_limits import email_request_allowed

    settings.ACCOUNTS_PASSWORD_RESET_RATE_PER_IP = ""
    settings.ACCOUNTS_PASSWORD_RESET_RATE_PER_ADDRESS = rate
    time_machine.move_to(datetime.datetime(2026, 3, 2, 10, 0, 0, tzinfo=datetime.UTC), tick=False)
    assert email_request_allowed(purpose="password_reset", email="alice@example.org")
    time_machine.shift(duration / 3)
    assert email_request_allowed(purpose="password_reset", email="alice@example.org")
    time_machine.shift(duration * 2 / 3 - 0.5)  # half a second before the window ends
    assert not email_request_allowed(purpose="password_reset", email="alice@example.org")
    [limited] = events("auth.email_rate_limited")
    assert limited["context"]["purpose"] == "password_reset" and limited["context"]["limit"] == "address"
    time_machine.shift(1)  # the next window
    assert email_request_allowed(purpose="password_reset", email="alice@example.org")
