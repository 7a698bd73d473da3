"""Reads of the API security layer that more than one place needs (the key page, the admin)."""

from __future__ import annotations

import datetime

from django.db.models import Count, Max, Q, QuerySet, Sum

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


def api_keys_needing_attention(
    *, now: datetime.datetime, expiring_within: datetime.timedelta, unused_for: datetime.timedelta, limit: int = 20
) -> dict:
    """Usable keys (not revoked, not expired) that expire within ``expiring_within`` or have not
    been used for ``unused_for`` (a key never used counts from its creation), soonest expiry
    first, at most ``limit``; and how many there are in all. Prefixes, names and owners only:
    never a secret or its hash. For the security dashboard (wired by ``config``).
    """
    unused_before = now - unused_for
    keys = ApiKey.objects.usable(now=now).filter(
        Q(expires_at__lte=now + expiring_within)
        | Q(last_used_at__lt=unused_before)
        | Q(last_used_at__isnull=True, created_at__lt=unused_before)
    )
    rows = []
    for key in (
        keys.select_related("user")
        .only("pk", "prefix", "name", "expires_at", "last_used_at", "created_at", "user__username")
        .order_by("expires_at", "pk")[:limit]
    ):
        reasons = []
        if key.expires_at <= now + expiring_within:
            reasons.append("expires soon")
        if (key.last_used_at or key.created_at) < unused_before:
            reasons.append("unused" if key.last_used_at else "never used")
        rows.append(
            {
                "pk": key.pk,
                "prefix": key.display_prefix,
                "name": key.name,
                "owner": key.user.username,
                "expires_at": key.expires_at,
                "last_used_at": key.last_used_at,
                "reasons": reasons,
            }
        )
    return {"keys": rows, "total": keys.count()}


# ---------------------------------------------------------------------------------------------
# The hot path: finding the key of every API request
# ---------------------------------------------------------------------------------------------
class _KeyLookup:
    """One prepared statement for "the key with this prefix, and its user", per database.

    Every API request runs this. Building it with the ORM
    (``select_related("user").defer("signing_secret").filter(prefix=...)``) cost ~10x the query
    itself in SQL compilation; here the SQL and each column's converters are built once, and rows
    become model instances through ``Model.from_db`` exactly as the ORM would make them (the
    signing secret stays deferred: it is decrypted only for signed requests).

    A miss does the work of a match (api/authentication.py's timing promise): the statement always
    returns one row when any key exists — the key with this prefix, or else a *stand-in* (the
    process's first key) — and the row is turned into instances either way; a stand-in is then
    discarded. Without it a wrong secret (a row fetched, parsed by the driver, converted) answered
    measurably slower than an unknown prefix (no row), which told an attacker that a prefix exists
    (bench/api_timing_bench.py). Until any key exists there is nothing to tell apart.
    """

    def __init__(self, connection):
        from django.contrib.auth import get_user_model

        self.database = connection.alias
        quote = connection.ops.quote_name
        user_model = get_user_model()
        self.key_fields = [field for field in ApiKey._meta.concrete_fields if field.attname != "signing_secret"]
        self.user_fields = list(user_model._meta.concrete_fields)
        self.user_model = user_model
        key_table, user_table = ApiKey._meta.db_table, user_model._meta.db_table
        columns = [f"k.{quote(field.column)}" for field in self.key_fields]
        columns += [f"u.{quote(field.column)}" for field in self.user_fields]
        user_pk = quote(user_model._meta.pk.column)
        self.sql = (
            f"SELECT {', '.join(columns)} FROM {quote(key_table)} k "  # noqa: S608 - names from the models
            f"INNER JOIN {quote(user_table)} u ON u.{user_pk} = k.{quote(ApiKey._meta.get_field('user').column)} "
            f"WHERE k.{quote(ApiKey._meta.get_field('prefix').column)} = %s"
        )
        self.converters = [
            self._converters(connection, field, alias)
            for fields, alias in ((self.key_fields, key_table), (self.user_fields, user_table))
            for field in fields
        ]
        self.key_names = [field.attname for field in self.key_fields]
        self.user_names = [field.attname for field in self.user_fields]
        key_pk, prefix_column = quote(ApiKey._meta.pk.column), quote(ApiKey._meta.get_field("prefix").column)
        self.sql += f" OR k.{key_pk} = %s ORDER BY CASE WHEN k.{prefix_column} = %s THEN 0 ELSE 1 END LIMIT 1"
        self.first_key_sql = f"SELECT MIN({key_pk}) FROM {quote(key_table)}"  # noqa: S608 - names from the models
        self.stand_in_id: int | None = None
        self.primed = False

    @staticmethod
    def _converters(connection, field, alias):
        column = field.get_col(alias)
        return [
            (converter, column)
            for converter in connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        ]

    def fetch(self, connection, prefix: str) -> ApiKey | None:
        with connection.cursor() as cursor:
            if not self.primed:  # once per process
                cursor.execute(self.first_key_sql)
                self.stand_in_id = cursor.fetchone()[0]
                self.primed = True
            cursor.execute(self.sql, [prefix, -1 if self.stand_in_id is None else self.stand_in_id, prefix])
            row = cursor.fetchone()
        if row is None:
            self.primed = self.stand_in_id is None  # the stand-in was deleted: find another next time
            return None
        key = self._instances(connection, row)
        if key.prefix != prefix:
            return None  # the stand-in: converted like a match, then discarded
        if self.stand_in_id is None:
            self.stand_in_id = key.pk
        return key

    def _instances(self, connection, row: tuple) -> ApiKey:
        values = []
        for value, converters in zip(row, self.converters, strict=True):
            for converter, column in converters:
                value = converter(value, column, connection)
            values.append(value)
        split = len(self.key_names)
        key = ApiKey.from_db(self.database, self.key_names, values[:split])
        key.user = self.user_model.from_db(self.database, self.user_names, values[split:])
        return key


_lookups: dict[str, _KeyLookup] = {}


def api_key_for_authentication(*, prefix: str) -> ApiKey | None:
    """The key with this public prefix and its user (one query), or ``None``."""
    from django.db import connection

    lookup = _lookups.get(connection.alias)
    if lookup is None or lookup.database != connection.alias:
        lookup = _lookups[connection.alias] = _KeyLookup(connection)
    return lookup.fetch(connection, prefix)
