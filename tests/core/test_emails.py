"""Every email: absolute links from one setting, and times in UTC to the second (core/emails.py).

Each email template is rendered through the real path that sends it (services, the Celery tasks
running eagerly, the outbox's delivery), with real times, which carry microseconds.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core import checks, mail
from django.core.management import call_command
from django.test import Client
from django.test.signals import template_rendered
from django.utils import timezone

from accounts import conf as accounts_conf
from accounts.services.authentication import password_check
from accounts.services.notifications import SUBJECTS, notification_schedule
from audit.services import write_held_events
from core.emails import DEVELOPMENT_SITE_URL, absolute_url, email_time, site_url
from monitoring.detectors.base import Finding
from monitoring.models import Severity
from monitoring.services.alerts import alert_record_finding
from monitoring.services.notifications import notifications_deliver_due
from monitoring.services.reports import report_generate

PASSWORD = "correct horse battery staple 42"
TEMPLATES = Path(django_settings.BASE_DIR) / "templates"
# Every template an email is made of: the accounts' emails, the alert email and the report.
EMAIL_TEMPLATES = sorted(
    str(path.relative_to(TEMPLATES))
    for pattern in ("emails/**/*.txt", "emails/**/*.html", "monitoring/email/*", "monitoring/reports/*")
    for path in TEMPLATES.glob(pattern)
)
HREF = re.compile(r"""href\s*=\s*["']([^"']*)["']""", re.I)
RELATIVE_LINK = re.compile(r"""(?<![\w/:.])/(?:accounts|admin|api)/[^\s"'<>)]*""")
MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}[.,]\d+")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?P<rest>[^\s]*(?: \S+)?)")


# --- the helpers -----------------------------------------------------------------------------------
def test_the_base_is_the_setting_then_the_request_then_development(settings):
    settings.ACCOUNTS_SITE_URL = ""
    assert site_url() == DEVELOPMENT_SITE_URL == "http://127.0.0.1:8000"
    assert site_url(request_base_url="https://seen.example:8443/") == "https://seen.example:8443"
    settings.ACCOUNTS_SITE_URL = "https://console.example.org/"
    assert site_url(request_base_url="https://seen.example:8443") == "https://console.example.org"
    assert absolute_url("/admin/monitoring/alert/1/change/") == "https://console.example.org/admin/monitoring/alert/1/change/"
    assert absolute_url("https://elsewhere.example/x") == "https://elsewhere.example/x"


def test_times_are_utc_to_the_second_with_the_zone():
    moment = datetime.datetime(2031, 3, 12, 14, 30, 5, 123456, tzinfo=datetime.UTC)
    assert email_time(moment) == "2031-03-12 14:30:05 UTC"
    assert email_time(moment.isoformat()) == "2031-03-12 14:30:05 UTC"
    india = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    assert email_time(moment.astimezone(india).isoformat()) == "2031-03-12 14:30:05 UTC"
    assert email_time(datetime.datetime(2031, 3, 12, 14, 30, 5, 999)) == "2031-03-12 14:30:05 UTC"  # naive: UTC
    assert email_time("") == "" and email_time(None) == "" and email_time("soon") == "soon"


# --- the checks --------------------------------------------------------------------------------------
def _check_ids(*, deploy: bool) -> set[str]:
    messages = checks.run_checks(include_deployment_checks=deploy)
    return {message.id for message in messages if message.id.startswith("core.")}


def test_a_missing_site_url_is_a_warning_in_production_only(settings):
    settings.ACCOUNTS_SITE_URL = ""
    assert "core.W001" in _check_ids(deploy=True)
    assert "core.W001" not in _check_ids(deploy=False)
    settings.ACCOUNTS_SITE_URL = "https://console.example.org"
    assert "core.W001" not in _check_ids(deploy=True)


@pytest.mark.parametrize(
    "value", ["console.example.org", "ftp://console.example.org", "https://console.example.org/path", "https://x y"]
)
def test_a_malformed_site_url_is_refused(settings, value):
    settings.ACCOUNTS_SITE_URL = value
    [error] = [message for message in checks.run_checks() if message.id == "core.E003"]
    assert value.rstrip("/") in error.msg


@pytest.mark.parametrize("value", ["https://console.example.org", "http://127.0.0.1:8000", "https://[2001:db8::1]:8443"])
def test_a_well_formed_site_url_is_accepted(settings, value):
    settings.ACCOUNTS_SITE_URL = value
    assert "core.E003" not in _check_ids(deploy=False)


# --- every email, rendered for real -----------------------------------------------------------------
@pytest.fixture
def rendered_templates():
    names: list[str] = []

    def remember(sender, template, context, **kwargs):
        names.append(template.name)

    template_rendered.connect(remember)
    yield names
    template_rendered.disconnect(remember)


def _send_every_email(django_capture_on_commit_callbacks, settings) -> None:
    """Send each email the platform sends, through the code that sends it."""
    settings.ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR = 0
    settings.MONITORING_ALERT_EMAILS = ["soc@example.org"]
    settings.MONITORING_REPORT_EMAILS = ["soc@example.org"]
    settings.MONITORING_WEBHOOK_URL = ""
    user_model = get_user_model()
    alice = user_model.objects.create_user(username="alice", email="alice@example.org", password=PASSWORD)
    with django_capture_on_commit_callbacks(execute=True):
        # The lockout email, from a service with no request (as behind the API or a task).
        for _ in range(accounts_conf.get("ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT")):
            password_check(username="alice", password="wrong guess", client_ip="203.0.113.7")
    user_model.objects.create_user(username="bob", email="bob@example.org", password=PASSWORD)
    with django_capture_on_commit_callbacks(execute=True):
        # The new-sign-in email: a second device and address, through the login page.
        Client(REMOTE_ADDR="198.51.100.1").post("/accounts/login/", {"username": "bob", "password": PASSWORD})
        firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
        Client(REMOTE_ADDR="198.51.100.2", HTTP_USER_AGENT=firefox).post(
            "/accounts/login/", {"username": "bob", "password": PASSWORD}
        )
    contexts = {
        "mfa_device_added": {"device_name": "Phone"},
        "mfa_device_removed": {"device_name": "Phone"},
        "backup_codes_generated": {"count": 10},
        "backup_code_used": {"remaining": 9},
        "password_changed": {"how": "change"},
        "email_changed": {"old_email": "alice@example.org", "new_email": "alice@example.net"},
    }
    with django_capture_on_commit_callbacks(execute=True):
        for kind in sorted(set(SUBJECTS) - {"account_locked", "new_login"}):
            notification_schedule(
                user=alice,
                kind=kind,
                context=contexts.get(kind, {}),
                to_email="alice@example.net" if kind == "email_change_confirm" else None,
            )
    # An alert, with real (microsecond) times, delivered by the outbox.
    now = timezone.now()
    alert_record_finding(
        finding=Finding(
            detector="brute_force",
            severity=Severity.HIGH,
            subject_type="user",
            subject="alice",
            summary="5 failed logins against account alice",
            dedupe_key="brute_force:subject_username:alice",
            counts={"count": 5},
            first_seen=now - datetime.timedelta(minutes=5, microseconds=4321),
            last_seen=now - datetime.timedelta(seconds=30),
            triggered_at=now,
            event_ids=[1],
            last_event_id=1,
        )
    )
    # The daily report of today, with a verification of the audit chain in it.
    call_command("audit_verify", "--no-publish", stdout=open("/dev/null", "w"))  # noqa: SIM115
    write_held_events()
    report_generate(period="daily", email=True, until=(now + datetime.timedelta(days=1)).date(), now=now)
    assert notifications_deliver_due()["sent"] == 2


def _bodies(message) -> list[tuple[str, str]]:
    return [("text", message.body)] + [(mimetype, content) for content, mimetype in message.alternatives]


@pytest.mark.django_db
@pytest.mark.parametrize("configured", ["", "https://console.example.org"])
def test_every_email_has_absolute_links_and_utc_times_to_the_second(
    configured, settings, django_capture_on_commit_callbacks, rendered_templates, tmp_path
):
    settings.ACCOUNTS_SITE_URL = configured
    settings.AUDIT_DIR = str(tmp_path / "audit")
    _send_every_email(django_capture_on_commit_callbacks, settings)
    subjects = {message.subject for message in mail.outbox}
    assert set(SUBJECTS.values()) <= subjects
    assert any("security alert" in subject or "HIGH" in subject for subject in subjects)
    assert any("security report" in subject for subject in subjects)
    assert set(EMAIL_TEMPLATES) <= set(rendered_templates), set(EMAIL_TEMPLATES) - set(rendered_templates)

    hrefs = 0
    times = 0
    for message in mail.outbox:
        for kind, body in _bodies(message):
            where = f"{message.subject!r} ({kind})"
            for href in HREF.findall(body):
                hrefs += 1
                assert re.match(r"https?://", href), f"{where}: relative link {href!r}"
                if configured:
                    assert href.startswith(configured + "/"), f"{where}: {href!r}"
            assert not RELATIVE_LINK.findall(body), f"{where}: {RELATIVE_LINK.findall(body)}"
            # The setting first; unset, the request's host (the new sign-in came from a login page)
            # or, without a request, the development address.
            bases = (configured,) if configured else (DEVELOPMENT_SITE_URL, "http://testserver")
            for link in re.findall(r"https?://[^\s\"'<>)]+", body):
                assert link.startswith(bases), f"{where}: {link!r}"
            assert not MICROSECONDS.search(body), f"{where}: {MICROSECONDS.search(body).group()}"
            assert not ISO_TIME.search(body), f"{where}: {ISO_TIME.search(body).group()}"
            for match in TIME.finditer(body):
                times += 1
                assert re.match(r":\d{2} UTC", match.group("rest")), f"{where}: {match.group()!r}"
    assert hrefs >= len(SUBJECTS) + 1  # every account email links a page, and the alert the console
    assert times >= 8  # lockout, new sign-in, the alert's three times (twice), the report's period
    alert = next(message for message in mail.outbox if "brute_force" in message.subject)
    assert re.search(r"https?://[^/]+/admin/monitoring/alert/\d+/change/", alert.body)
    if not configured:
        # Unset: the host of the request that caused the email, else the development address.
        by_subject = {message.subject: message for message in mail.outbox}
        assert "http://testserver/accounts/security/" in by_subject[SUBJECTS["new_login"]].body
        assert f"{DEVELOPMENT_SITE_URL}/accounts/security/" in by_subject[SUBJECTS["account_locked"]].body


@pytest.mark.django_db
def test_a_lockout_through_the_login_page_links_to_the_requests_host(settings, django_capture_on_commit_callbacks):
    settings.ACCOUNTS_SITE_URL = ""
    settings.ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR = 0
    get_user_model().objects.create_user(username="alice", email="alice@example.org", password=PASSWORD)
    client = Client(REMOTE_ADDR="203.0.113.8", SERVER_NAME="localhost")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(accounts_conf.get("ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT")):
            client.post("/accounts/login/", {"username": "alice", "password": "wrong guess"})
    [message] = mail.outbox
    assert message.subject == SUBJECTS["account_locked"]
    assert "http://localhost/accounts/password/reset/" in message.body


def test_a_request_without_a_usable_host_gives_no_base_and_links_fall_back_to_the_site_url(rf, settings):
    from django.http import HttpRequest

    from core.requests import base_url

    settings.ALLOWED_HOSTS = ["console.example.org"]
    settings.ACCOUNTS_SITE_URL = ""
    assert base_url(HttpRequest()) == ""  # what Client.force_login builds: no SERVER_NAME
    assert base_url(rf.get("/", HTTP_HOST="evil.example")) == ""  # not an allowed host
    assert base_url(rf.get("/", HTTP_HOST="console.example.org")) == "http://console.example.org"
    assert site_url(request_base_url=base_url(HttpRequest())) == "http://127.0.0.1:8000"


def test_a_login_made_in_code_after_an_earlier_session_is_tracked_without_an_error(db, client, settings):
    from django.contrib.auth import get_user_model

    from accounts.models import TrackedSession

    settings.ACCOUNTS_NOTIFY_NEW_LOGIN = True
    user = get_user_model().objects.create_user(username="alice", email="alice@example.org", password="x" * 20)
    client.force_login(user)
    client.force_login(user)  # the new-login check builds its email's base from a bare request
    assert TrackedSession.objects.filter(user=user).count() == 2
