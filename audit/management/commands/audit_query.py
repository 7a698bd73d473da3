"""``manage.py audit_query``: search audit events and run the incident reports."""

from __future__ import annotations

import csv
import datetime
import ipaddress
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime, parse_duration

from audit import selectors
from audit.actions import Action, Outcome

EVENT_COLUMNS = (
    "sequence", "timestamp", "action", "outcome", "actor_username", "subject_username", "target_type", "target_id",
    "client_ip", "request_id",
)
REPORTS = ("events", "failed-logins-by-ip", "failed-logins-by-account", "timeline", "request", "privilege-changes",
           "memory-access")


def parse_moment(value: str) -> datetime.datetime:
    """An ISO date or datetime (UTC if no zone), or a duration back from now: 15m, 24h, 7d."""
    text = value.strip()
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if text[:-1].isdigit() and text[-1:] in units:
        return timezone.now() - datetime.timedelta(**{units[text[-1]]: int(text[:-1])})
    duration = parse_duration(text) if text.startswith("P") else None
    if duration is not None:
        return timezone.now() - duration
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"Not a date, datetime or duration (15m, 24h, 7d): {value!r}")
        moment = datetime.datetime.combine(day, datetime.time.min)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


class Command(BaseCommand):
    help = (
        "Query audit events (filters: --user, --ip, --action, --outcome, --request-id, --since, --until) or run an "
        "incident report (--report). Output as a table, CSV or JSON Lines."
    )

    def add_arguments(self, parser):
        parser.add_argument("--report", choices=REPORTS, default="events", help="What to show (default: events).")
        parser.add_argument("--user", help="User id or username (actor or subject).")
        parser.add_argument("--ip", help="Client IP address.")
        parser.add_argument("--action", action="append", choices=Action.values, metavar="ACTION",
                            help="Action value, e.g. auth.login_failed (repeatable).")
        parser.add_argument("--outcome", choices=Outcome.values)
        parser.add_argument("--request-id")
        parser.add_argument("--since", help="ISO date/datetime or a duration back from now (15m, 24h, 7d).")
        parser.add_argument("--until", help="ISO date/datetime or a duration back from now.")
        parser.add_argument("--min-count", type=int, default=1, help="Failed-login reports: smallest count shown.")
        parser.add_argument("--limit", type=int, default=200, help="At most this many rows (default 200, 0: all).")
        parser.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")

    def handle(self, *args, **options):
        since = parse_moment(options["since"]) if options["since"] else None
        until = parse_moment(options["until"]) if options["until"] else None
        if options["ip"]:
            try:
                ipaddress.ip_address(options["ip"])
            except ValueError:
                raise CommandError(f"Not an IP address: {options['ip']!r}") from None
        if options["limit"] < 0:
            raise CommandError("--limit must be 0 or more.")
        rows, columns = self._rows(options["report"], options, since, until)
        if options["limit"]:
            rows = rows[: options["limit"]]
        self._write(list(rows), columns, options["format"])

    def _rows(self, report, options, since, until):
        default_since = since or timezone.now() - datetime.timedelta(hours=24)
        if report == "events":
            queryset = selectors.event_list(
                user=options["user"], ip=options["ip"], actions=options["action"], outcome=options["outcome"],
                request_id=options["request_id"], since=since, until=until,
            )
            return queryset.values(*EVENT_COLUMNS, "context"), (*EVENT_COLUMNS, "context")
        if report == "failed-logins-by-ip":
            rows = selectors.failed_logins_by_ip(since=default_since, until=until, min_count=options["min_count"])
            return rows, ("client_ip", "failures", "accounts", "first", "last")
        if report == "failed-logins-by-account":
            rows = selectors.failed_logins_by_account(since=default_since, until=until, min_count=options["min_count"])
            return rows, ("subject_username", "failures", "ips", "first", "last")
        if report == "timeline":
            if not options["user"]:
                raise CommandError("--report timeline needs --user.")
            queryset = selectors.user_timeline(user=options["user"], since=since, until=until)
            return queryset.values(*EVENT_COLUMNS, "context"), (*EVENT_COLUMNS, "context")
        if report == "request":
            if not options["request_id"]:
                raise CommandError("--report request needs --request-id.")
            queryset = selectors.request_events(request_id=options["request_id"])
            return queryset.values(*EVENT_COLUMNS, "context"), (*EVENT_COLUMNS, "context")
        if report == "privilege-changes":
            queryset = selectors.privilege_changes(since=default_since, until=until)
            return queryset.values(*EVENT_COLUMNS, "context"), (*EVENT_COLUMNS, "context")
        if not options["user"]:
            raise CommandError("--report memory-access needs --user.")
        queryset = selectors.memory_access(user=options["user"], since=since, until=until)
        return queryset.values(*EVENT_COLUMNS, "context"), (*EVENT_COLUMNS, "context")

    def _write(self, rows, columns, output_format):
        def text(value):
            if isinstance(value, datetime.datetime):
                return value.isoformat()
            if isinstance(value, dict | list):
                return json.dumps(value, sort_keys=True)
            return "" if value is None else str(value)

        if output_format == "jsonl":
            for row in rows:
                self.stdout.write(json.dumps({column: row.get(column) for column in columns}, default=text))
            return
        if output_format == "csv":
            writer = csv.writer(self.stdout)
            writer.writerow(columns)
            for row in rows:
                cells = (text(row.get(column)) for column in columns)
                # Values starting with = + - @ are prefixed so a spreadsheet never runs them (CSV injection).
                writer.writerow(["'" + cell if cell[:1] in ("=", "+", "-", "@") else cell for cell in cells])
            return
        cells = [[text(row.get(column)) for column in columns] for row in rows]
        widths = [
            min(max([len(column)] + [len(line[index]) for line in cells]), 60) for index, column in enumerate(columns)
        ]
        self.stdout.write("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)))
        for line in cells:
            self.stdout.write(
                "  ".join(cell[:width].ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            )
        self.stdout.write(f"({len(cells)} row(s))")
