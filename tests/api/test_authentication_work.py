"""Every refused API key costs the same work, whatever is wrong with it (api/authentication.py).

The timing promise is checked by its mechanism, which a busy machine cannot blur: an unknown
prefix, a wrong secret, a malformed key, an expired and a revoked key each run the same SQL
statement, get one row back and turn it into instances (a stand-in row when the prefix is
unknown), compute one HMAC of the presented key, and end in the same 401 with one audit event.
``bench/api_timing_bench.py`` measures the times themselves, against a planted leak.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.request import Request

from api import keys
from api.authentication import ApiKeyAuthentication
from api.exceptions import KeyRefused
from api.models import ApiKey
from api.services import api_key_revoke
from audit.actions import Action
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

PATH = "/api/v2/organizations/"


@pytest.fixture
def credentials(alice, issue_key):
    valid = issue_key(alice, scopes=["organizations:read"])
    expired = issue_key(alice, name="expired")
    ApiKey.objects.filter(pk=expired.api_key.pk).update(expires_at=timezone.now())
    revoked = issue_key(alice, name="revoked")
    api_key_revoke(actor=alice, api_key=revoked.api_key)
    secret = valid.key.split("_", 2)[2]
    return {
        "unknown prefix": f"nvk_aaaaaaaaaaaa_{secret}",
        "wrong secret": valid.key[:-6] + ("A" * 6 if not valid.key.endswith("A" * 6) else "B" * 6),
        "malformed": "nvk_not-a-key",
        "expired": expired.key,
        "revoked": revoked.key,
        "valid": valid.key,
    }


def _shape(sql: str) -> str:
    """The statement with its literal values taken out."""
    return re.sub(r"'[^']*'|\b\d+\b", "?", sql)


@pytest.fixture
def work(monkeypatch):
    """Counts of the expensive steps, observed by wrapping (not replacing) the real functions."""
    counts = {"hmac": 0, "rows made into keys": 0}
    hash_key, from_db = keys.hash_key, ApiKey.from_db.__func__

    def counting_hash(key):
        counts["hmac"] += 1
        return hash_key(key)

    def counting_from_db(cls, *args, **kwargs):
        counts["rows made into keys"] += 1
        return from_db(cls, *args, **kwargs)

    monkeypatch.setattr(keys, "hash_key", counting_hash)
    monkeypatch.setattr(ApiKey, "from_db", classmethod(counting_from_db))
    return counts


@pytest.fixture
def fresh_lookup():
    """The process's prepared lookup as a new process has it (its stand-in not chosen yet)."""
    from api import selectors

    selectors._lookups.clear()
    yield
    selectors._lookups.clear()


def test_every_refusal_and_a_success_do_the_same_authentication_work(credentials, work, fresh_lookup):
    # The first lookup of a process also chooses the stand-in (one more query, once).
    with pytest.raises(KeyRefused):
        ApiKeyAuthentication().authenticate_credential(Request(RequestFactory().get(PATH)), "nvk_not-a-key")
    done = {}
    for name, credential in credentials.items():
        for counter in work:
            work[counter] = 0
        request = Request(RequestFactory().get(PATH))
        with CaptureQueriesContext(connection) as queries:
            if name == "valid":
                ApiKeyAuthentication().authenticate_credential(request, credential)
            else:
                with pytest.raises(KeyRefused):
                    ApiKeyAuthentication().authenticate_credential(request, credential)
        statements = [_shape(query["sql"]) for query in queries.captured_queries]
        lookup = [statement for statement in statements if statement.startswith("SELECT")]
        done[name] = (tuple(lookup), tuple(sorted(work.items())))
    refusals = {name: found for name, found in done.items() if name != "valid"}
    assert len(set(refusals.values())) == 1, refusals
    ((lookup, counts),) = set(refusals.values())
    assert len(lookup) == 1 and dict(counts) == {"hmac": 1, "rows made into keys": 1}
    # A success runs the same lookup and the same HMAC (then records the key's use).
    assert done["valid"] == (lookup, counts)


def test_every_refusal_answers_alike_and_is_recorded_once(credentials, settings):
    settings.API_THROTTLE_RATES = {}
    answers = {}
    for name, credential in credentials.items():
        if name == "valid":
            continue
        before = AuditEvent.objects.filter(action=Action.API_KEY_REFUSED).count()
        response = Client(HTTP_AUTHORIZATION=f"Bearer {credential}").get(PATH)
        recorded = AuditEvent.objects.filter(action=Action.API_KEY_REFUSED).count() - before
        error = response.json()["error"]
        error.pop("request_id")
        answers[name] = (response.status_code, repr(sorted(error.items())), recorded)
    assert len(set(answers.values())) == 1, answers
    status, _, recorded = next(iter(answers.values()))
    assert (status, recorded) == (401, 1)


def test_an_unknown_prefix_is_not_a_match_even_though_a_row_comes_back(credentials, alice, fresh_lookup):
    """The stand-in row is discarded: an unknown prefix never authenticates as the stand-in key."""
    from api.selectors import api_key_for_authentication

    assert api_key_for_authentication(prefix="aaaaaaaaaaaa") is None
    request = Request(RequestFactory().get(PATH))
    with pytest.raises(KeyRefused):
        ApiKeyAuthentication().authenticate_credential(request, credentials["unknown prefix"])
    assert ApiKeyAuthentication().authenticate_credential(request, credentials["valid"])[0] == alice


def test_a_deleted_stand_in_is_replaced(credentials, work, fresh_lookup):
    from api.selectors import _lookups, api_key_for_authentication

    api_key_for_authentication(prefix="aaaaaaaaaaaa")
    stand_in = _lookups[connection.alias].stand_in_id
    ApiKey.objects.filter(pk=stand_in).delete()
    api_key_for_authentication(prefix="aaaaaaaaaaaa")  # no row this once; the next lookup finds another
    work["rows made into keys"] = 0
    assert api_key_for_authentication(prefix="aaaaaaaaaaaa") is None
    assert _lookups[connection.alias].stand_in_id not in (None, stand_in)
    assert work["rows made into keys"] == 1
