"""A date hierarchy for the audit admin that never scans the table.

Django's ``{% date_hierarchy %}`` lists the years, months or days that have events with
``SELECT DISTINCT`` over every matching row: seconds on millions of events. This one asks only
for ``MIN`` and ``MAX`` of the indexed timestamp over the whole table and offers every year,
month or day between them (one without matching events just shows an empty page).
"""

from __future__ import annotations

import calendar
import datetime

from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy as django_date_hierarchy
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def audit_date_hierarchy(cl):
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = f"{field_name}__year", f"{field_name}__month", f"{field_name}__day"
    year, month, day = cl.params.get(year_field), cl.params.get(month_field), cl.params.get(day_field)
    if year and month and day:
        return django_date_hierarchy(cl)  # one day: no query at all

    def link(filters):
        return cl.get_query_string(filters, [f"{field_name}__"])

    # Bounds of the whole table (an index-only MIN/MAX), not of the filtered rows, which would
    # scan every match of a filter without a timestamp index (outcome, search).
    bounds = cl.root_queryset.aggregate(first=Min(field_name), last=Max(field_name))
    if not bounds["first"]:
        return {"show": False}
    first, last = timezone.localtime(bounds["first"]), timezone.localtime(bounds["last"])
    if not year and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month
    if year and month:
        year, month = int(year), int(month)
        days = [datetime.date(year, month, number) for number in range(1, calendar.monthrange(year, month)[1] + 1)]
        days = [value for value in days if first.date() <= value <= last.date()]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: value.day}),
                    "title": capfirst(formats.date_format(value, "MONTH_DAY_FORMAT")),
                }
                for value in days
            ],
        }
    if year:
        year = int(year)
        months = [datetime.date(year, number, 1) for number in range(1, 13)]
        months = [
            value for value in months if (first.year, first.month) <= (year, value.month) <= (last.year, last.month)
        ]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: value.month}),
                    "title": capfirst(formats.date_format(value, "YEAR_MONTH_FORMAT")),
                }
                for value in months
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({year_field: str(number)}), "title": str(number)}
            for number in range(first.year, last.year + 1)
        ],
    }
