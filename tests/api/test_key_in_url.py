"""An API key sent in the URL is treated as leaked: refused, revoked, its owner told, never logged (pen-test finding).

Before, the key was refused but stayed valid. Now the whole key (secret matching its stored
hash) is revoked by the system with reason ``leaked_in_url``, the owner gets an email through
the security-notification path, and no log line (the real gunicorn's access and error logs,
runserver's, Celery's) carries it.
"""

from __future__ import annotations

import http.client
import json
import logging
import subprocess
import sys
import time

import pytest
from django.core import mail

from api.models import ApiKey
from audit.models import AuditEvent
from core.logging import SanitisingFilter
from core.sanitiser import sanitise_text
from tests.support.servers import PROJECT_DIR, gunicorn_server, served_env

MEMORIES = "/api/v2/memories/"


def _revocations():
    return list(AuditEvent.objects.filter(action="api.key_revoked").order_by("id"))


@pytest.mark.django_db
def test_a_key_in_the_query_string_is_revoked_and_its_owner_told(
    alice, issue_key, api_client, key_client, settings, django_capture_on_commit_callbacks
):
    settings.ACCOUNTS_SITE_URL = "http://testserver"
    issued = issue_key(alice, scopes=["memories:read"], name="laptop script")
    assert key_client(issued).get(MEMORIES).status_code == 200
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.get(f"{MEMORIES}?api_key={issued.key}")

    assert response.status_code == 400 and response.json()["error"]["code"] == "credentials_in_url"
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    assert row.revoked_at is not None and row.revoked_by is None and row.revocation_reason == "leaked_in_url"
    [revoked] = _revocations()
    assert (revoked.actor_id, revoked.subject_id, revoked.context) == ("", str(alice.pk), {"reason": "leaked_in_url"})
    [message] = mail.outbox
    assert message.to == [alice.email] and message.subject == "Your API key was revoked: it was sent in a URL"
    assert f"nvk_{issued.prefix}_" in message.body and "laptop script" in message.body
    assert issued.key not in message.body + message.alternatives[0][0]
    assert issued.key not in json.dumps(list(AuditEvent.objects.values()), default=str)
    # The key no longer works, even in the header.
    assert key_client(issued).get(MEMORIES).status_code == 401


@pytest.mark.django_db
def test_a_url_encoded_key_in_any_parameter_is_revoked_too(alice, issue_key, api_client):
    issued = issue_key(alice)
    encoded = issued.key.replace("_", "%5F")
    assert api_client.get(f"{MEMORIES}?q={encoded}").status_code == 400
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is not None


@pytest.mark.django_db
def test_a_known_prefix_with_a_wrong_secret_revokes_nothing(alice, issue_key, api_client, key_client):
    issued = issue_key(alice, scopes=["memories:read"])
    forged = issued.key[:-6] + ("A" * 6 if not issued.key.endswith("A" * 6) else "B" * 6)
    assert api_client.get(f"{MEMORIES}?key={forged}").status_code == 400
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is None
    assert not _revocations() and not mail.outbox
    assert key_client(issued).get(MEMORIES).status_code == 200


@pytest.mark.django_db
def test_a_revoked_key_sent_again_in_the_url_is_not_revoked_twice(
    alice, issue_key, api_client, django_capture_on_commit_callbacks
):
    issued = issue_key(alice)
    with django_capture_on_commit_callbacks(execute=True):
        api_client.get(f"{MEMORIES}?api_key={issued.key}")
        api_client.get(f"{MEMORIES}?api_key={issued.key}")
    assert len(_revocations()) == 1 and len(mail.outbox) == 1


def test_query_strings_with_keys_and_tokens_are_masked_in_any_log_text():
    key = "nvk_" + "abcdefghijkl" + "_" + "Q" * 43
    line = sanitise_text(f'"GET /api/v2/memories/?key={key}&page=2&token=t0k3n&sig=s HTTP/1.1" 400 120')
    assert "Q" * 20 not in line and "t0k3n" not in line
    assert "key=[MASKED]" in line and "page=2" in line and "sig=[MASKED]" in line
    assert sanitise_text(f"presented {key} in a path") == "presented nvk_abcdefghijkl_[MASKED] in a path"


def _handlers_of(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers that write a record of ``logger`` (not pytest's capture, not NullHandlers)."""
    handlers = []
    while logger is not None:
        handlers.extend(
            h
            for h in logger.handlers
            if not type(h).__module__.startswith("_pytest") and not isinstance(h, logging.NullHandler)
        )
        logger = logger.parent if logger.propagate else None
    return handlers


@pytest.mark.parametrize("name", ["django.server", "django.request", "celery.worker", "gunicorn.error"])
def test_every_handler_a_django_or_celery_line_reaches_sanitises_it(name):
    handlers = _handlers_of(logging.getLogger(name))
    assert handlers and all(any(isinstance(f, SanitisingFilter) for f in h.filters) for h in handlers), [
        (h, h.filters) for h in handlers
    ]


def test_a_celery_worker_keeps_the_project_logging():
    """Celery replaces the root handlers with plain-text ones unless a setup_logging receiver exists."""
    from celery import signals

    import core.celery_context  # noqa: F401 - connects the receiver

    assert signals.setup_logging.receivers
    signals.setup_logging.send(sender=None, loglevel="INFO", logfile=None, format="", colorize=False)
    handlers = _handlers_of(logging.getLogger("celery.worker"))
    assert handlers and all(any(isinstance(f, SanitisingFilter) for f in h.filters) for h in handlers)


# --- the real server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def collected_static():
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=PROJECT_DIR, env=served_env(), check=True, timeout=300,
    )  # fmt: skip


def test_through_gunicorn_the_key_is_revoked_and_in_no_log_line(transactional_db, collected_static, alice, issue_key):
    issued = issue_key(alice, scopes=["memories:read"])
    with gunicorn_server() as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request("GET", f"{MEMORIES}?api_key={issued.key}&page=1")
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        deadline = time.monotonic() + 10
        while not server.access_lines() and time.monotonic() < deadline:
            time.sleep(0.05)
        logged = server.access_log.read_text() + server.error_text()
    assert response.status == 400 and b"credentials_in_url" in body
    assert server.access_lines(), "no access log line"
    assert issued.key not in logged and issued.key.split("_", 2)[2] not in logged
    assert ApiKey.objects.get(pk=issued.api_key.pk).revocation_reason == "leaked_in_url"
