"""Helpers shared by the encryption tests: keys, raw column access, legacy tokens."""

from __future__ import annotations

import secrets

from django.db import connection

from encryption.keyring import format_key


def make_key(key_id: str) -> str:
    """Return ``id:BASE64`` text of a fresh random key."""
    return format_key(key_id, secrets.token_bytes(32))


def ring(*entries: str) -> str:
    """Join key texts into a key-ring setting value (first encrypts)."""
    return ",".join(entries)


def raw_value(model, pk, column: str):
    """Read what the database stores in ``column`` of row ``pk``, through a plain cursor."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote(column)} FROM {quote(model._meta.db_table)} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def raw_row(model, pk) -> tuple:
    """Every stored column of row ``pk``, through a plain cursor."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(model._meta.db_table)} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()


def set_raw_value(model, pk, column: str, value) -> None:
    """Write ``value`` into ``column`` of row ``pk`` behind the ORM's back."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} SET {quote(column)} = %s WHERE id = %s",  # noqa: S608
            [value, pk],
        )


def legacy_module():
    """django-encrypted-model-fields' own ``fields`` module, its cipher rebuilt from the settings.

    The package builds its cipher once at import from ``FIELD_ENCRYPTION_KEY``; tests set that
    setting first and rebuild the cipher so the package writes with the key of the test.
    """
    import encrypted_model_fields.fields as legacy

    legacy.CRYPTER = legacy.get_crypter()
    return legacy


def legacy_token(field_class_name: str, value) -> str:
    """What django-encrypted-model-fields' ``field_class_name`` stores for ``value`` on this database."""
    legacy = legacy_module()
    field = getattr(legacy, field_class_name)()
    try:
        return field.get_db_prep_save(value, connection)
    except KeyError:
        # 0.6.5's integer fields fail on PostgreSQL under Django 5.2 (the backend has no integer
        # adapter for its "TextField" internal type). What they stored under older Djangos is
        # what the package's get_db_prep_save does after that step: encrypt_str(str(value)).
        return legacy.encrypt_str(str(value)).decode("utf-8")
