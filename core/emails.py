"""What every email shares: links built from one setting, and times in UTC to the second.

Emails are sent by Celery tasks, long after (or without) a request, and read in a mail client,
which cannot follow a relative link. Every link in an email is therefore ``absolute_url(path)``:
the base is ``ACCOUNTS_SITE_URL`` (``scheme://host[:port]``; the name keeps its ``ACCOUNTS_``
prefix because operators set it), else the ``scheme://host`` of the request that caused the email
when there is one, else ``DEVELOPMENT_SITE_URL``, the address ``make run`` serves.
``manage.py check --deploy`` warns when the setting is unset (``core.W001``) and every check
refuses a malformed one (``core.E003``). Times are ``email_time(value)``: ``2026-03-02 09:01:00
UTC``, never microseconds nor a local zone; templates use the ``utc`` filter of ``{% load emails %}``.
"""

from __future__ import annotations

import datetime
import re

from core import conf

# What `make run` serves (README): the base of links when nothing better is known.
DEVELOPMENT_SITE_URL = "http://127.0.0.1:8000"
# scheme://host[:port] and nothing after it (a path prefix comes from reverse() and SCRIPT_NAME).
SITE_URL_PATTERN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def site_url_setting() -> str:
    """``ACCOUNTS_SITE_URL`` without a trailing slash; empty when it is not configured."""
    return (conf.get("ACCOUNTS_SITE_URL") or "").strip().rstrip("/")


def site_url(*, request_base_url: str = "") -> str:
    """The base of every link in an email: the setting, else the request's ``scheme://host``, else development's."""
    return site_url_setting() or (request_base_url or "").rstrip("/") or DEVELOPMENT_SITE_URL


def absolute_url(path: str, *, request_base_url: str = "") -> str:
    """``path`` (as ``reverse()`` returns it) made absolute on ``site_url()``."""
    if re.match(r"https?://", path):
        return path
    return site_url(request_base_url=request_base_url) + "/" + path.lstrip("/")


def email_time(value: datetime.datetime | str | None) -> str:
    """``value`` (an aware datetime or ISO 8601 text) as ``YYYY-MM-DD HH:MM:SS UTC``.

    Naive values are taken as UTC (the project stores UTC only). Text that is not a time is
    returned unchanged, so a template never fails on it.
    """
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime.datetime):
        return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
