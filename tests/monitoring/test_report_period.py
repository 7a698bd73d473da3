"""The report a newcomer gets: a sensible period, the previous period compared, the open alerts,
absolute links into the console; HTML, text and CSV showing the same rows."""

from __future__ import annotations

import csv
import datetime
import html as html_lib
import io

import pytest

from audit.actions import Action, Outcome
from monitoring.models import Alert, AlertStatus, Severity
from monitoring.services.reports import report_generate
from tests.monitoring.conftest import NOW, record

pytestmark = pytest.mark.django_db

HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
SITE = "https://console.example.org"


@pytest.fixture(autouse=True)
def _site(settings):
    settings.ACCOUNTS_SITE_URL = SITE


def failed_login(at):
    return record(Action.LOGIN_FAILED, at=at, ip="192.0.2.1", subject="alice", outcome=Outcome.FAILURE)


def _alert(key, status, severity=Severity.HIGH):
    return Alert.objects.create(
        detector="brute_force", severity=severity, status=status, dedupe_key=key, subject_type="user", subject=key,
        summary=f"summary {key}", first_seen=NOW, last_seen=NOW, triggered_at=NOW, created_at=NOW - HOUR,
        detection_seconds=1.0, evidence={"counts": {"count": 12, "addresses": 2, "window_seconds": 900}},
    )


def rows_of(report) -> list[dict]:
    return list(csv.DictReader(io.StringIO(report.csv)))


def value(report, section, metric) -> str:
    [row] = [row for row in rows_of(report) if row["section"] == section and row["metric"] == metric]
    return row["value"]


def test_a_young_install_gets_the_last_24_hours_and_is_told_why(now):
    for minutes in (30, 60, 90):
        failed_login(NOW - datetime.timedelta(minutes=minutes))  # the record begins 90 minutes ago
    report = report_generate(period="daily")
    assert (report.period_start, report.period_end) == (NOW - DAY, NOW)
    assert report.figures["authentication"]["failed_logins"] == 3  # not the empty yesterday
    note = value(report, "About this report", "Period")
    assert "begins at 2031-03-12 13:00:00 UTC" in note and "covers the last 24 hours up to now" in note
    assert "younger than the period" in note
    assert note in report.text and html_lib.escape(note) in report.html


def test_an_install_older_than_the_period_gets_yesterday_and_no_note(now):
    failed_login(NOW - 3 * DAY)
    failed_login(NOW - DAY)  # 11 March, 14:30
    report = report_generate(period="daily")
    start = datetime.datetime(2031, 3, 11, tzinfo=datetime.UTC)
    assert (report.period_start, report.period_end) == (start, start + DAY)
    assert not [row for row in rows_of(report) if row["metric"] == "Period"]
    assert report.figures["authentication"]["failed_logins"] == 1


def test_an_asked_for_period_is_kept_and_a_young_record_is_said_plainly(now):
    failed_login(NOW - HOUR)
    report = report_generate(period="daily", until=datetime.date(2031, 3, 12))
    assert report.period_end == datetime.datetime(2031, 3, 12, tzinfo=datetime.UTC)
    note = value(report, "About this report", "Period")
    assert "younger than the period" in note and "last 24 hours" not in note


def test_an_empty_record_says_so(db):
    report = report_generate(period="daily")
    assert "audit record of this install is empty" in value(report, "About this report", "Period")


def test_the_counts_are_compared_with_the_previous_period(now):
    failed_login(NOW - 3 * DAY)
    yesterday = datetime.datetime(2031, 3, 11, 12, tzinfo=datetime.UTC)
    for index in range(3):
        failed_login(yesterday + index * HOUR)
    failed_login(yesterday - DAY)  # the day before: the previous period
    report = report_generate(period="daily")
    section = "Compared with the previous period"
    assert value(report, section, "Previous period") == "2031-03-10 00:00:00 UTC to 2031-03-11 00:00:00 UTC"
    assert value(report, section, "Failed logins") == "3 (previous period 1; change +2, +200 %)"
    assert value(report, section, "Lockouts") == "0 (previous period 0; change 0)"


def test_the_open_alerts_are_listed_in_words_with_absolute_links(now):
    failed_login(NOW - 3 * DAY)
    open_alert = _alert("alice", AlertStatus.OPEN)
    acknowledged = _alert("bob", AlertStatus.ACKNOWLEDGED, Severity.CRITICAL)
    _alert("carol", AlertStatus.RESOLVED)
    report = report_generate(period="daily")
    rows = [row for row in rows_of(report) if row["section"] == "Open alerts"]
    assert rows[0]["metric"] == "Open or acknowledged now" and rows[0]["value"] == "2"
    assert [row["metric"] for row in rows[1:]] == [f"#{acknowledged.pk} critical", f"#{open_alert.pk} high"]
    link = f"{SITE}/admin/monitoring/alert/{open_alert.pk}/change/"
    assert rows[2]["link"] == link
    assert rows[2]["value"].startswith("12 failed sign-ins for alice from 2 addresses in 15 minutes (open since")
    assert "carol" not in report.csv
    assert f"<{link}>" in report.text and f'<a href="{link}">' in report.html
    links = {row["metric"]: row["link"] for row in rows_of(report) if row["section"] == "About this report"}
    assert links["Security console"] == f"{SITE}/admin/"
    assert links["Open alerts"].startswith(f"{SITE}/admin/monitoring/alert/?")


def test_html_text_and_csv_hold_the_same_rows(now):
    failed_login(NOW - 3 * DAY)
    _alert("alice", AlertStatus.OPEN)
    report = report_generate(period="daily")
    rows = rows_of(report)
    assert len(rows) > 40
    for row in rows:
        assert f"{row['metric']}: {row['value']}" in report.text
        assert f'<th scope="row">{html_lib.escape(row["metric"])}</th>' in report.html
        assert html_lib.escape(row["value"]) in report.html


def test_the_open_alerts_link_opens_the_filtered_list(now, console):
    failed_login(NOW - 3 * DAY)
    _alert("alice", AlertStatus.OPEN)
    _alert("carol", AlertStatus.RESOLVED)
    report = report_generate(period="daily")
    [link] = [row["link"] for row in rows_of(report) if row["metric"] == "Open alerts"]
    response = console.get(link.removeprefix(SITE))
    assert response.status_code == 200
    assert [alert.subject for alert in response.context["cl"].result_list] == ["alice"]
