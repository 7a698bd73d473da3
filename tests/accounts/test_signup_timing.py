"""Sign-up does the same expensive work whether the address is registered or not (pen-test finding).

A registered address answered in about 60 ms and a new one in about 550 ms: the new path hashed
the password (Argon2id), the registered one did not. The fix makes both hash once; this test
counts the hashes (the mechanism) instead of timing them. ``bench/signup_timing_bench.py``
compares the two paths' medians over interleaved samples with the real hasher.
"""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.accounts import counting_hasher
from tests.accounts.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def counting(settings):
    settings.PASSWORD_HASHERS = ["tests.accounts.counting_hasher.CountingMD5PasswordHasher"]
    counting_hasher.CALLS.clear()
    yield counting_hasher.CALLS
    counting_hasher.CALLS.clear()


def _sign_up(client, username: str, email: str):
    return client.post(
        "/accounts/signup/",
        {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def test_a_registered_and_a_new_address_make_the_same_password_hashes(client, counting, settings):
    User.objects.create_user(username="alice", email="alice@example.org", password=PASSWORD)
    counting.clear()

    registered = _sign_up(client, "mallory", "alice@example.org")
    hashes_for_registered = list(counting)
    counting.clear()
    new = _sign_up(client, "carol", "carol@example.org")
    hashes_for_new = list(counting)

    assert registered.status_code == new.status_code == 302
    assert registered["Location"] == new["Location"] == "/accounts/signup/done/"
    assert hashes_for_new == ["encode"]  # the new account's stored hash
    assert hashes_for_registered == hashes_for_new
    assert not User.objects.filter(username="mallory").exists()
