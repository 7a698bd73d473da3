"""Helpers shared by the account views."""

from __future__ import annotations

import datetime

from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import conf


def safe_next(request, default: str | None = None) -> str:
    """The ``next`` parameter if it points at this site, else ``default`` (no open redirect)."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default or reverse(conf.get("ACCOUNTS_LOGIN_REDIRECT_URL_NAME"))


def retry_text(retry_at: datetime.datetime | None) -> str:
    """``"14:05:30 UTC (in about 5 minutes)"``: when to try again, absolute and relative."""
    if retry_at is None:
        return "in a moment"
    seconds = max(1, int((retry_at - timezone.now()).total_seconds() + 0.999))
    if seconds < 90:
        relative = f"{seconds} second{'s' if seconds != 1 else ''}"
    elif seconds < 90 * 60:
        relative = f"{round(seconds / 60)} minutes"
    else:
        relative = f"{round(seconds / 3600, 1):g} hours"
    stamp = retry_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} (in about {relative})"
