"""The audit explorer: filters on indexed columns, streamed exports, and reading the trail audited.

Every test drives the real admin views through Django's test client, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import datetime
import importlib
import io
import json
import re
import secrets
import tracemalloc
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.apps import apps as global_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import audit
from accounts import roles
from accounts.testing import login_with_mfa
from audit import admin as audit_admin
from audit.explorer import SEARCHES_SESSION_KEY
from audit.exports import COLUMNS
from audit.models import AuditEvent
from audit.services import write_held_events
from core import context as request_context

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:audit_auditevent_changelist")
ROLE_MIGRATION = importlib.import_module("accounts.migrations.0004_security_roles")
PASSWORD = "explorer test password 42"


def export_url(format: str) -> str:
    return reverse("admin:audit_auditevent_export", args=[format])


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def console(client):
    admin_user = get_user_model().objects.create_superuser(username="console", email="c@example.com", password="z" * 20)
    login_with_mfa(client, admin_user)
    client.console_user = admin_user
    return client


@pytest.fixture
def people(db):
    model = get_user_model()
    return {
        "alice": model.objects.create_user(username="alice", email="alice@example.com", password=PASSWORD),
        "bob": model.objects.create_user(username="bob", email="bob@example.com", password=PASSWORD),
        "root": model.objects.create_user(username="rootadmin", email="r@example.com", password=PASSWORD),
    }


def _record(when, *, request_id="", client_ip=None, user_agent="", **kwargs) -> AuditEvent:
    with time_machine.travel(when, tick=False), request_context.bound(
        request_id=request_id or None, client_ip=client_ip, user_agent=user_agent
    ):
        event = audit.record(**kwargs)
    write_held_events()  # inside the test's transaction the event waits for a commit
    return AuditEvent.objects.get(uuid=event.uuid)


@pytest.fixture
def trail(console, people, now):
    """Six events of an investigation, at known times, addresses, requests and keys (by name)."""
    alice, bob, root = people["alice"], people["bob"], people["root"]
    minute = datetime.timedelta(minutes=1)
    events = {
        "failed": _record(now - 30 * minute, request_id="incident-request-01", client_ip="198.51.100.9",
                          action=audit.Action.LOGIN_FAILED, outcome=audit.Outcome.FAILURE, subject="mallory",
                          context={"reason": "bad_credentials"}),
        "exported": _record(now - 30 * minute, request_id="incident-request-01", client_ip="198.51.100.9",
                            action=audit.Action.CONTEXT_EXPORTED, actor=alice, context={"count": 3}),
        "login": _record(now - 180 * minute, request_id="other-request-0002", client_ip="2001:db8::7",
                         action=audit.Action.LOGIN_SUCCEEDED, actor=alice, context={"method": "password+totp"}),
        "api": _record(now - datetime.timedelta(days=2), request_id="api-request-00003", client_ip="198.51.100.200",
                       action=audit.Action.API_KEY_USED, actor=bob, api_key_id="abcd1234efgh"),
        "granted": _record(now - datetime.timedelta(days=10), request_id="admin-request-004", client_ip="203.0.113.5",
                           action=audit.Action.STAFF_GRANTED, actor=root, subject=alice,
                           context={"field": "is_staff", "old": False, "new": True}),
        "denied": _record(now - datetime.timedelta(days=3), request_id="api-request-00005", client_ip="198.51.100.200",
                          action=audit.Action.PERMISSION_DENIED, outcome=audit.Outcome.DENIED, actor=bob,
                          api_key_id="abcd1234efgh", context={"reason": "insufficient_scope", "status": 403}),
    }
    return events


def listed(response, trail) -> set[str]:
    """Names of the trail's events on the page (the console's own login and searches are not the trail's)."""
    names = {event.pk: name for name, event in trail.items()}
    rows = list(response.context["cl"].result_list)
    assert all(event.pk in names or "console" in (event.actor_username, event.subject_username) for event in rows)
    return {names[event.pk] for event in rows if event.pk in names}


def own(event) -> bool:
    """An event of the console user's own sign-in, searches and exports."""
    return "console" in (event.actor_username, event.subject_username)


def _since(now, **delta) -> str:
    return (now - datetime.timedelta(**delta)).strftime("%Y-%m-%d %H:%M:%S")


CASES = [
    ({}, {"failed", "exported", "login", "api", "granted", "denied"}),
    ({"last": "1h"}, {"failed", "exported"}),
    ({"last": "24h"}, {"failed", "exported", "login"}),
    ({"last": "7d"}, {"failed", "exported", "login", "api", "denied"}),
    ({"actor": "ALI"}, {"exported", "login"}),
    ({"actor": "bo"}, {"api", "denied"}),
    ({"subject": "mall"}, {"failed"}),
    ({"subject": "alice"}, {"granted"}),
    ({"action": "auth.login_failed"}, {"failed"}),
    ({"action": "auth.*"}, {"failed", "login"}),
    ({"action": "authz.*"}, {"granted", "denied"}),
    ({"action": "context.*"}, {"exported"}),
    ({"outcome": "failure"}, {"failed"}),
    ({"outcome": "denied"}, {"denied"}),
    ({"client_ip": "198.51.100.9"}, {"failed", "exported"}),
    ({"client_ip": "2001:DB8:0::7"}, {"login"}),
    ({"client_ip": "198.51.100.0/24"}, {"failed", "exported", "api", "denied"}),
    ({"client_ip": "198.51.100.128/25"}, {"api", "denied"}),
    ({"client_ip": "2001:db8::/116"}, {"login"}),
    ({"request_id": "incident-request-01"}, {"failed", "exported"}),
    ({"api_key_id": "abcd1234efgh"}, {"api", "denied"}),
    ({"api_key_id": "nvk_abcd1234efgh…"}, {"api", "denied"}),
    ({"q": "198.51.100.200"}, {"api", "denied"}),
    # Combinations narrow each other.
    ({"actor": "alice", "last": "1h"}, {"exported"}),
    ({"client_ip": "198.51.100.0/24", "outcome": "denied"}, {"denied"}),
    ({"action": "authz.*", "api_key_id": "abcd1234efgh", "last": "7d"}, {"denied"}),
    ({"request_id": "incident-request-01", "action": "auth.*", "outcome": "success"}, set()),
    ({"subject": "alice", "actor": "rootadmin", "client_ip": "203.0.113.0/24"}, {"granted"}),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[json.dumps(case[0]) for case in CASES])
def test_each_filter_and_combination_lists_exactly_the_matching_events(console, trail, query, expected):
    response = console.get(CHANGELIST, query)
    assert response.status_code == 200
    assert listed(response, trail) == expected


def test_a_wide_range_is_an_index_range_on_postgresql_and_refused_plainly_on_sqlite(console, trail):
    response = console.get(CHANGELIST, {"client_ip": "198.0.0.0/8"})
    if connection.vendor == "postgresql":
        assert response.status_code == 200
        assert listed(response, trail) == {"failed", "exported", "api", "denied"}
        assert listed(console.get(CHANGELIST, {"client_ip": "2001:db8::/32"}), trail) == {"login"}
    else:
        assert response.status_code == 400
        assert "give a range of at most 4096 addresses (a /20 or narrower)" in response.content.decode()


def test_the_ids_of_actor_and_subject_are_exact(console, trail, people):
    alice = people["alice"]
    assert listed(console.get(CHANGELIST, {"actor_id": alice.pk}), trail) == {"exported", "login"}
    assert listed(console.get(CHANGELIST, {"subject_id": alice.pk}), trail) == {"granted"}
    assert listed(console.get(CHANGELIST, {"actor_id": f"{alice.pk}0"}), trail) == set()


def test_a_time_range_from_and_to(console, trail, now):
    query = {"since": _since(now, days=4), "until": _since(now, days=1)}
    assert listed(console.get(CHANGELIST, query), trail) == {"api", "denied"}
    # A time with an offset is converted to UTC.
    later = (now - datetime.timedelta(minutes=31)).astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert listed(console.get(CHANGELIST, {"since": later.isoformat()}), trail) == {"failed", "exported"}


def test_the_end_of_a_range_includes_the_whole_second_minute_or_day_it_names(console, people, now):
    event = _record(now.replace(second=42, microsecond=500000), action=audit.Action.MEMORY_READ,
                    actor=people["bob"], context={"context_id": 1})
    moment = now.replace(second=42)
    trail = {"read": event}
    for until in (moment.strftime("%Y-%m-%d %H:%M:%S"), moment.strftime("%Y-%m-%dT%H:%M"), moment.strftime("%Y-%m-%d")):
        assert listed(console.get(CHANGELIST, {"until": until, "actor": "bob"}), trail) == {"read"}, until
    before = (moment - datetime.timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert listed(console.get(CHANGELIST, {"until": before, "actor": "bob"}), trail) == set()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, "From: Enter a date and time as YYYY-MM-DD HH:MM:SS"),
        ({"since": "2026-12-02 10:00", "until": "2026-12-01"}, "To: The end of the time range is before its start."),
        ({"last": "2h"}, "Time: Select a valid choice."),
        ({"last": "1h", "since": "2026-12-01"}, "Choose a preset (last hour, 24 hours, 7 days) or a from–to range"),
        ({"client_ip": "not-an-address"}, "Client IP: Enter an IP address"),
        ({"client_ip": "10.0.0.0/33"}, "Client IP: Enter an IP address"),
        ({"request_id": "short"}, "Request id: A request id is 8 to 64 letters"),
        ({"action": "auth.no_such_thing"}, "Action: Select a valid choice."),
        ({"outcome": "maybe"}, "Outcome: Select a valid choice."),
        ({"api_key_id": "a key with spaces"}, "API key: An API key is named by its public prefix"),
        ({"actor_id": "\x01"}, "Actor id: An id is 1 to 64 printable characters."),
        ({"actor": "x" * 151}, "Actor: Ensure this value has at most 150 characters"),
        ({"timestamp__year": "2026"}, "Unknown filter “timestamp__year”"),
        ({"since": "9999-12-31 23:59:59", "until": "9999-12-31 23:59:59"}, "past the last one there can be"),
    ],
)
def test_invalid_values_get_a_clear_message_and_list_nothing(console, trail, query, message):
    response = console.get(CHANGELIST, query)
    assert response.status_code == 400
    content = response.content.decode()
    assert "No events are listed until these filters are corrected" in content
    assert message.replace("“", "&ldquo;") in content or message in content
    assert list(response.context["cl"].result_list) == []
    assert not AuditEvent.objects.filter(action="audit.searched").exists()
    export = console.get(export_url("csv"), query)
    assert export.status_code == 400
    assert export.content.decode().startswith("Export refused: ")
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_the_page_shows_times_in_utc_with_seconds_and_the_action_select_grouped_by_area(console, trail):
    content = console.get(CHANGELIST).content.decode()
    shown = trail["granted"].timestamp.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert shown in content
    assert "Time (UTC)" in content
    for area in ("auth", "authz", "memory", "system", "monitoring", "audit"):
        assert f'<optgroup label="{area}">' in content
        assert f'<option value="{area}.*">every {area}.* action</option>' in content


def test_filters_survive_pagination_and_appear_as_removable_chips(console, trail, people, monkeypatch, now):
    monkeypatch.setattr(audit_admin.AuditEventAdmin, "list_per_page", 2)
    for number in range(3):
        _record(now - datetime.timedelta(minutes=5 + number), action=audit.Action.MEMORY_READ, actor=people["bob"],
                client_ip="198.51.100.77", context={"context_id": number})
    query = {"actor": "bob", "client_ip": "198.51.100.0/24"}
    content = console.get(CHANGELIST, query).content.decode()
    links = [link.replace("&amp;", "&") for link in re.findall(r'href="(\?[^"]*)"', content)]
    page_links = [link for link in links if "p" in parse_qs(urlsplit(link).query)]
    assert page_links, "no pagination link"
    for link in page_links:
        parameters = parse_qs(urlsplit(link).query)
        assert parameters["actor"] == ["bob"] and parameters["client_ip"] == ["198.51.100.0/24"]
    second = console.get(CHANGELIST, {**query, "p": 2})
    assert second.status_code == 200
    assert len(second.context["cl"].result_list) == 2
    chips = second.context["explorer"]["chips"]
    assert [(chip["label"], chip["value"]) for chip in chips] == [("actor", "bob"), ("client IP", "198.51.100.0/24")]
    removed = parse_qs(chips[0]["remove"])
    assert removed == {"client_ip": ["198.51.100.0/24"]}  # the chip removes its filter and the page number
    assert 'aria-label="Remove the filter actor: bob"' in second.content.decode()


def test_rows_and_event_pages_link_to_the_four_pivots_and_to_the_users_security_page(console, trail, monkeypatch):
    granted = trail["granted"]
    content = console.get(CHANGELIST, {"action": "authz.staff_granted"}).content.decode().replace("&amp;", "&")
    assert f'href="{CHANGELIST}?actor_id={granted.actor_id}"' in content
    assert f'href="{CHANGELIST}?subject_id={granted.subject_id}"' in content
    assert f'href="{CHANGELIST}?client_ip=203.0.113.5"' in content
    assert f'href="{CHANGELIST}?request_id=admin-request-004"' in content
    # The per-user security page (accounts) is linked by its URL name.
    security_page = reverse("admin:accounts_user_security", args=[granted.subject_id])
    assert f'class="audit-user-page" href="{security_page}"' in content
    page = console.get(reverse("admin:audit_auditevent_change", args=[granted.pk])).content.decode()
    for label in ("everything this request caused", "everything rootadmin did", "everything done to alice",
                  "everything from 203.0.113.5"):
        assert label in page
    # Once the page exists (here: the user's change page stands in for it), both link to it.
    monkeypatch.setattr(audit_admin, "USER_SECURITY_URL_NAME", "admin:accounts_user_change")
    user_page = reverse("admin:accounts_user_change", args=[granted.subject_id])
    content = console.get(CHANGELIST, {"action": "authz.staff_granted"}).content.decode()
    assert f'class="audit-user-page" href="{user_page}"' in content
    page = console.get(reverse("admin:audit_auditevent_change", args=[granted.pk])).content.decode()
    assert f'<a href="{user_page}">subject: alice</a>' in page


def test_the_list_never_sorts_by_another_column(console, trail):
    response = console.get(CHANGELIST, {"o": "3"})
    rows = [event for event in response.context["cl"].result_list if not own(event)]
    assert [event.timestamp for event in rows] == sorted((event.timestamp for event in rows), reverse=True)
    assert "sortable" not in response.content.decode()


def test_the_query_count_does_not_grow_with_the_events_matched(console, people, now, settings):
    settings.AUDIT_EXPLORER_SEARCH_RECORD_INTERVAL = 0  # every view records its search: the same work each time

    def queries_for_page() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            response = console.get(CHANGELIST, {"actor": "bob", "last": "24h", "action": "memory.*"})
        assert response.status_code == 200
        write_held_events()  # the view's audit.searched, held by the test's transaction, written outside the count
        return [re.sub(r'"s\d+_x\d+"', "savepoint", query["sql"])[:24] for query in queries]

    audit.record_many(
        {"action": audit.Action.MEMORY_READ, "actor": people["bob"], "context": {"context_id": number}}
        for number in range(5)
    )
    write_held_events()
    queries_for_page()  # the session's first view of the console does its own one-off work
    few = queries_for_page()
    audit.record_many(
        {"action": audit.Action.MEMORY_READ, "actor": people["bob"], "context": {"context_id": number}}
        for number in range(60)
    )
    write_held_events()
    assert queries_for_page() == few
    assert len(few) <= 20


# --- exports ---------------------------------------------------------------------------------


def _body(response) -> bytes:
    assert response.streaming
    return b"".join(response.streaming_content)


def _database_rows(queryset) -> list[dict]:
    return [
        {column: getattr(event, column) for column in COLUMNS}
        for event in queryset.order_by("timestamp", "id")
    ]


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def test_csv_export_parses_back_to_the_filtered_events(console, trail):
    query = {"client_ip": "198.51.100.0/24"}
    response = console.get(export_url("csv"), query)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="audit-events-\d{8}T\d{6}Z\.csv"', response["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(_body(response).decode())))
    names = ("failed", "exported", "api", "denied")
    expected = _database_rows(AuditEvent.objects.filter(pk__in=[trail[name].pk for name in names]))
    assert [list(row) for row in rows[:1]] == [list(COLUMNS)]
    assert rows == [{column: _as_text(value) for column, value in row.items()} for row in expected]
    assert response["X-Export-Rows"] == "4"


def test_jsonl_export_parses_back_to_the_filtered_events(console, trail, people):
    response = console.get(export_url("jsonl"), {"actor_id": people["alice"].pk})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    lines = _body(response).decode().splitlines()
    parsed = [json.loads(line) for line in lines]
    expected = _database_rows(AuditEvent.objects.filter(pk__in=[trail["login"].pk, trail["exported"].pk]))
    for row in expected:
        row["timestamp"] = _as_text(row["timestamp"])
        row["uuid"] = str(row["uuid"])
    assert parsed == expected  # oldest first, as a log reads
    assert [row["action"] for row in parsed] == ["auth.login_succeeded", "context.exported"]


def test_the_export_follows_the_search_box_too(console, trail):
    response = console.get(export_url("jsonl"), {"q": "mall"})
    assert [json.loads(line)["action"] for line in _body(response).decode().splitlines()] == ["auth.login_failed"]


@pytest.mark.parametrize("dangerous", ["=HYPERLINK(\"http://example.com\")", "+1+1", "-2+3", "@SUM(A1)"])
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(console, people, now, dangerous):
    _record(now - datetime.timedelta(minutes=1), user_agent=dangerous, action=audit.Action.LOGIN_FAILED,
            outcome=audit.Outcome.FAILURE, subject="formula-user", context={"reason": dangerous})
    response = console.get(export_url("csv"), {"subject": "formula-user"})
    rows = list(csv.DictReader(io.StringIO(_body(response).decode(), newline="")))
    assert len(rows) == 1
    stored = AuditEvent.objects.get(subject_username="formula-user")
    assert stored.user_agent == dangerous  # kept as recorded, and neutralised in the CSV only
    assert rows[0]["user_agent"] == "'" + dangerous
    for cell in rows[0].values():
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    # JSON lines carry the value as it is: no spreadsheet runs them.
    response = console.get(export_url("jsonl"), {"subject": "formula-user"})
    assert json.loads(_body(response).decode())["user_agent"] == stored.user_agent


@pytest.mark.parametrize("cell", ["=1", "+1", "-1", "@A1", "\t=1", "\r=1", "\n=1"])
def test_every_formula_lead_is_neutralised_even_those_the_sanitiser_escapes_first(cell):
    from audit.exports import neutralised

    assert neutralised(cell) == "'" + cell
    assert neutralised("plain text") == "plain text"
    assert neutralised("") == ""


def _streamed(client, query) -> tuple[int, int, int]:
    """Export CSV and read it piece by piece: (pieces, bytes, peak Python memory while streaming)."""
    response = client.get(export_url("csv"), query)
    assert response.streaming
    pieces, size = 0, 0
    tracemalloc.start()
    try:
        for piece in response.streaming_content:
            pieces += 1
            size += len(piece)
            if pieces == 2 and connection.vendor == "postgresql":
                with connection.cursor() as cursor:  # the rows come from a cursor held open on the server
                    cursor.execute("SELECT count(*) FROM pg_cursors")
                    assert cursor.fetchone()[0] >= 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return pieces, size, peak


def _bob_reads(people, start: int, count: int) -> None:
    with request_context.bound(request_id="bulk-reads-0001", client_ip="192.0.2.10", user_agent="agent " * 40):
        audit.record_many(
            {"action": audit.Action.MEMORY_READ, "actor": people["bob"], "target": ("memories.memory", number),
             "context": {"context_id": number}}
            for number in range(start, start + count)
        )
    write_held_events()


def test_the_export_streams_in_bounded_chunks_whatever_the_number_of_events(console, people, settings):
    settings.AUDIT_EXPORT_CHUNK_SIZE = 100
    _bob_reads(people, 0, 500)
    small_pieces, small_size, small_peak = _streamed(console, {"actor": "bob"})
    for start in range(500, 4000, 500):
        _bob_reads(people, start, 500)
    pieces, size, peak = _streamed(console, {"actor": "bob"})
    # One piece per chunk of 100 rows after the header: the rows are read and written chunk by chunk.
    assert (small_pieces, pieces) == (1 + 5, 1 + 40)
    assert size > 7 * small_size
    # Eight times the rows, and the memory held while streaming hardly grows (all rows at once
    # would hold several times the export's own size).
    assert peak < small_peak + (size - small_size) / 4, (small_peak, peak, small_size, size)


def test_an_export_of_an_unknown_format_is_refused_plainly(console, trail):
    response = console.get(export_url("xlsx"))
    assert response.status_code == 400
    assert response.content.decode() == "An export is csv or jsonl.\n"
    assert console.post(export_url("csv")).status_code in (400, 403)
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


# --- reading is audited ------------------------------------------------------------------------


def _searched() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="audit.searched").order_by("id"))


def test_a_filtered_view_records_audit_searched_once_per_filter_set_per_interval(console, trail, monkeypatch):
    monkeypatch.setattr(audit_admin.AuditEventAdmin, "list_per_page", 2)
    console.get(CHANGELIST)  # the plain list is not a search
    assert _searched() == []
    query = {"client_ip": "198.51.100.0/24", "action": "auth.*", "q": "mall"}
    console.get(CHANGELIST, query)
    console.get(CHANGELIST, {**query, "p": 2})  # paging
    console.get(CHANGELIST, query)  # reloading
    events = _searched()
    assert len(events) == 1
    event = events[0]
    assert event.actor_id == str(console.console_user.pk) and event.outcome == "success"
    assert event.context == {
        "filters": {"action": "auth.*", "client_ip": "198.51.100.0/24", "search": "mall"},
        "results": 1,
        "capped": False,
    }
    console.get(CHANGELIST, {"client_ip": "198.51.100.0/24"})  # another filter set
    assert len(_searched()) == 2
    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=301)):
        console.get(CHANGELIST, query)  # the same search after the interval
    assert len(_searched()) == 3
    # Another session of the same person is another reader.
    other = Client()
    login_with_mfa(other, console.console_user)
    other.get(CHANGELIST, {"client_ip": "198.51.100.0/24"})
    assert len(_searched()) == 4


def test_the_session_remembers_digests_only_and_a_bounded_number(console, trail, settings):
    settings.AUDIT_EXPLORER_SEARCH_RECORD_INTERVAL = 3600
    for number in range(60):
        console.get(CHANGELIST, {"actor_id": str(number)})
    remembered = console.session[SEARCHES_SESSION_KEY]
    assert len(remembered) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", digest) for digest in remembered)


def test_audit_searched_keeps_no_secret_pasted_into_the_search_box(console, trail):
    pasted = secrets.token_hex(24)
    console.get(CHANGELIST, {"q": pasted})
    event = _searched()[-1]
    assert pasted not in json.dumps(event.context)
    assert event.context["filters"]["search"].startswith("[MASKED")


def test_an_export_records_audit_exported_with_its_filters_format_and_rows(console, trail):
    response = console.get(export_url("jsonl"), {"api_key_id": "abcd1234efgh", "last": "7d"})
    lines = _body(response).decode().splitlines()
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.actor_username == "console" and exported.outcome == "success"
    assert exported.context == {"filters": {"last": "7d", "api_key_id": "abcd1234efgh"}, "format": "jsonl", "rows": 2}
    assert len(lines) == 2
    # The export's own event is not in the export (it holds the events matching when it began).
    assert exported.pk not in {json.loads(line)["id"] for line in lines}


# --- who may read and export ---------------------------------------------------------------------


def _member_of(role: str | None, *, permissions: tuple[str, ...] = ()) -> tuple[Client, object]:
    ROLE_MIGRATION.create_roles(global_apps, None)
    user = get_user_model().objects.create_user(f"member-{role or 'staff'}", password=PASSWORD, is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    login_with_mfa(client, user)
    return client, user


@pytest.mark.parametrize("role", [roles.SECURITY_AUDITOR, roles.SECURITY_ADMINISTRATOR])
@pytest.mark.audit_coverage("audit.searched", "audit.exported")
def test_both_security_roles_filter_and_export(trail, role):
    client, user = _member_of(role)
    assert client.get(CHANGELIST, {"last": "7d"}).status_code == 200
    for format in ("csv", "jsonl"):
        response = client.get(export_url(format), {"last": "7d"})
        assert response.status_code == 200
        assert _body(response)
    assert AuditEvent.objects.filter(action="audit.exported", actor_id=str(user.pk)).count() == 2
    content = client.get(CHANGELIST).content.decode()
    assert "Export CSV" in content and "Export JSON lines" in content


def test_staff_who_may_only_view_are_refused_the_export_and_the_refusal_is_recorded(trail):
    client, user = _member_of(None, permissions=("audit.view_auditevent",))
    page = client.get(CHANGELIST, {"last": "7d"})
    assert page.status_code == 200
    assert "Export CSV" not in page.content.decode()
    for format in ("csv", "jsonl"):
        response = client.get(export_url(format), {"last": "7d"})
        assert response.status_code == 403
        assert not getattr(response, "streaming", False)
    refusals = AuditEvent.objects.filter(action="authz.permission_denied", actor_id=str(user.pk)).order_by("id")
    assert [event.context for event in refusals] == [
        {"reason": "console_permission", "path": export_url("csv")},
        {"reason": "console_permission", "path": export_url("jsonl")},
    ]
    assert [event.outcome for event in refusals] == ["denied", "denied"]
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_staff_without_the_view_permission_can_neither_list_nor_export(trail):
    client, user = _member_of(None, permissions=("audit.export_auditevent",))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(export_url("csv")).status_code == 403
    assert AuditEvent.objects.filter(action="authz.permission_denied", actor_id=str(user.pk)).count() >= 1
    assert not AuditEvent.objects.filter(action__in=["audit.exported", "audit.searched"]).exists()


def test_a_visitor_who_is_not_signed_in_is_sent_to_the_login_page(trail):
    response = Client().get(export_url("csv"))
    assert response.status_code == 302
    assert "login" in response["Location"]
