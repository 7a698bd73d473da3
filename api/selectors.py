"""Reads of the API security layer that more than one place needs (the key page, the admin)."""

from __future__ import annotations

from django.db.models import Count, Max, QuerySet, Sum

from api.models import ApiKey, DeprecatedCall


def api_key_list(*, owner) -> QuerySet:
    """The keys of ``owner``, newest first, with their successor (for the status column)."""
    return ApiKey.objects.filter(user=owner).select_related("successor").defer("signing_secret")


def api_key_get(*, owner, prefix: str) -> ApiKey | None:
    """The key of ``owner`` with this public prefix, or ``None`` (someone else's key is not found)."""
    return api_key_list(owner=owner).filter(prefix=str(prefix)[:12]).first()


def deprecated_usage_for_keys(*, api_keys) -> dict[int, dict]:
    """Per key id: calls to deprecated endpoints (all days), the endpoints, and the last call."""
    rows = (
        DeprecatedCall.objects.filter(api_key__in=list(api_keys))
        .values("api_key_id")
        .annotate(calls=Sum("count"), endpoints=Count("endpoint", distinct=True), last=Max("last_at"))
    )
    return {row["api_key_id"]: row for row in rows}


def deprecated_usage_for_user(*, user) -> list[dict]:
    """Deprecated endpoints ``user`` called without a key (session), per endpoint."""
    return list(
        DeprecatedCall.objects.filter(user=user, api_key__isnull=True)
        .values("endpoint")
        .annotate(calls=Sum("count"), last=Max("last_at"))
        .order_by("endpoint")
    )
