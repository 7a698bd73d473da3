"""Encrypted model fields and the blind index, built on ``cryptography`` directly.

Each field subclasses the matching Django field and adds one mixin that stores an ``nv1`` token
(``encryption.crypto``) in a text column, bound to the model label and column name. Only
``from_db_value`` decrypts, and a failure raises ``DecryptionError``; ``to_python`` converts
plaintext only. Encrypted columns allow only ``isnull`` lookups (anything else raises
``FieldError``): add a ``BlindIndexField`` for exact matches. Old Fernet values still read.
Why: docs/decisions/encrypted-fields-nv1.md.
"""

from __future__ import annotations

import ast
import datetime
import json
import unicodedata

from django import forms
from django.conf import settings
from django.core import checks, exceptions
from django.core import validators as core_validators
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import Q
from django.db.models.signals import pre_save
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from encryption.crypto import associated_data_for, decrypt, decryption_failure, encrypt, token_key_id
from encryption.keyring import LEGACY_FERNET_KEY_ID, get_key_ring

__all__ = [
    "BlindIndexField",
    "EncryptedCharField",
    "EncryptedDateField",
    "EncryptedDateTimeField",
    "EncryptedEmailField",
    "EncryptedFieldMixin",
    "EncryptedIntegerField",
    "EncryptedJSONField",
    "EncryptedTextField",
    "blind_index_filter",
    "default_normaliser",
]


class EncryptedFieldMixin:
    """Store the field's value as an ``nv1`` token in a text column; decrypt in ``from_db_value``.

    Subclasses define ``to_plaintext(value) -> bytes`` (the canonical text of a Python value) and
    ``from_plaintext(bytes) -> value``.
    """

    encrypted = True
    purpose = "field"
    associated_data = b""

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        for option in ("primary_key", "unique", "db_index"):
            if getattr(self, option, False):
                errors.append(
                    checks.Error(
                        f"An encrypted field cannot use {option}=True: every value has a fresh nonce, so equal "
                        "values never compare equal in the database.",
                        hint="Add a BlindIndexField(source=...) for exact-match lookups and uniqueness.",
                        obj=self,
                        id="encryption.E101",
                    )
                )
        return errors

    def contribute_to_class(self, cls, name, private_only=False):
        super().contribute_to_class(cls, name, private_only=private_only)
        self.associated_data = associated_data_for(cls._meta.label_lower, self.column)

    def get_internal_type(self) -> str:
        # A text column, and no backend converter (e.g. SQLite's datetime parser) on the token.
        return "TextField"

    def get_lookup(self, lookup_name):
        # Equality, ranges and LIKE on ciphertext are meaningless and would put plaintext into a
        # WHERE clause (and the database's logs); only IS NULL is safe.
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        return None

    def get_transform(self, lookup_name):
        return None

    def get_db_prep_value(self, value, connection, prepared=False):
        if not prepared:
            value = self.get_prep_value(value)
        if value is None:
            return None
        return encrypt(self.to_plaintext(value), associated_data=self.associated_data, purpose=self.purpose)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        plaintext = decrypt(value, associated_data=self.associated_data, purpose=self.purpose)
        try:
            if token_key_id(value) == LEGACY_FERNET_KEY_ID:
                return self.from_legacy_plaintext(plaintext)
            return self.from_plaintext(plaintext)
        except (ValueError, TypeError) as error:
            raise decryption_failure(
                f"decrypted value is not a valid {type(self).__name__} value ({type(error).__name__})",
                key_id=token_key_id(value),
                associated_data=self.associated_data,
            ) from None

    # Used by rotation: the same conversions as a save and a load.
    def encrypt_value(self, value) -> str | None:
        """Return the token that saving ``value`` would store."""
        return self.get_db_prep_value(value, connection=None)

    def decrypt_token(self, token: str | None):
        """Return the Python value of a stored token (as a load would)."""
        return self.from_db_value(token, None, None)

    def to_plaintext(self, value) -> bytes:
        return str(value).encode("utf-8")

    def from_plaintext(self, plaintext: bytes):
        return plaintext.decode("utf-8")

    def from_legacy_plaintext(self, plaintext: bytes):
        """The value of a django-encrypted-model-fields plaintext (that package stored ``str(value)``)."""
        return self.from_plaintext(plaintext)


class EncryptedTextField(EncryptedFieldMixin, models.TextField):
    """A ``TextField`` stored encrypted."""

    def from_db_value(self, value, expression, connection):
        # The hot path of every read, inlined: decrypt and decode.
        if value is None:
            return None
        try:
            return decrypt(value, associated_data=self.associated_data, purpose=self.purpose).decode("utf-8")
        except UnicodeDecodeError:
            raise decryption_failure(
                "decrypted value is not UTF-8 text", key_id=token_key_id(value), associated_data=self.associated_data
            ) from None


class EncryptedCharField(EncryptedFieldMixin, models.CharField):
    """A ``CharField`` stored encrypted; ``max_length`` limits the plaintext, the column is text."""

    from_db_value = EncryptedTextField.from_db_value


class EncryptedEmailField(EncryptedFieldMixin, models.EmailField):
    """An ``EmailField`` stored encrypted; pair it with a ``BlindIndexField`` to look it up."""

    from_db_value = EncryptedTextField.from_db_value


class EncryptedIntegerField(EncryptedFieldMixin, models.IntegerField):
    """An ``IntegerField`` stored encrypted (same value range as ``IntegerField``)."""

    # The column is text, so no database imposes a range; keep IntegerField's portable 32-bit one
    # so that SQLite (no limit) and PostgreSQL accept the same values.
    MIN_VALUE, MAX_VALUE = BaseDatabaseOperations.integer_field_ranges["IntegerField"]

    @cached_property
    def validators(self):
        # IntegerField would ask the backend for the range of get_internal_type() ("TextField").
        return [
            *self.default_validators,
            *self._validators,
            core_validators.MinValueValidator(self.MIN_VALUE),
            core_validators.MaxValueValidator(self.MAX_VALUE),
        ]

    def from_plaintext(self, plaintext: bytes) -> int:
        return int(plaintext)


class EncryptedDateField(EncryptedFieldMixin, models.DateField):
    """A ``DateField`` stored encrypted (ISO 8601 text)."""

    def to_plaintext(self, value: datetime.date) -> bytes:
        return value.isoformat().encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> datetime.date:
        return datetime.date.fromisoformat(plaintext.decode("ascii"))


class EncryptedDateTimeField(EncryptedFieldMixin, models.DateTimeField):
    """A ``DateTimeField`` stored encrypted: ISO 8601 in UTC when ``USE_TZ`` (the default)."""

    def to_plaintext(self, value: datetime.datetime) -> bytes:
        if settings.USE_TZ and timezone.is_aware(value):
            value = value.astimezone(datetime.UTC)
        return value.isoformat().encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> datetime.datetime:
        # Also reads django-encrypted-model-fields' str(datetime) ("2026-01-02 03:04:05+00:00").
        value = datetime.datetime.fromisoformat(plaintext.decode("ascii"))
        if settings.USE_TZ and timezone.is_naive(value):
            value = timezone.make_aware(value, timezone.get_default_timezone())
        return value


class EncryptedJSONField(EncryptedFieldMixin, models.Field):
    """A JSON document stored encrypted. ``None`` is stored as SQL NULL, not as JSON ``null``."""

    empty_strings_allowed = False
    description = _("A JSON object (encrypted)")
    default_error_messages = {"invalid": _("Value must be valid JSON.")}

    def __init__(self, verbose_name=None, name=None, encoder=None, decoder=None, **kwargs):
        if encoder and not callable(encoder):
            raise ValueError("The encoder parameter must be a callable object.")
        if decoder and not callable(decoder):
            raise ValueError("The decoder parameter must be a callable object.")
        self.encoder = encoder
        self.decoder = decoder
        super().__init__(verbose_name, name, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.encoder is not None:
            kwargs["encoder"] = self.encoder
        if self.decoder is not None:
            kwargs["decoder"] = self.decoder
        return name, path, args, kwargs

    def to_plaintext(self, value) -> bytes:
        return json.dumps(value, cls=self.encoder, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def from_plaintext(self, plaintext: bytes):
        # json.loads on str skips its encoding detection for bytes.
        return json.loads(plaintext.decode("utf-8"), cls=self.decoder)

    def from_legacy_plaintext(self, plaintext: bytes):
        """JSON, or the Python ``str(dict)`` that legacy text fields stored for a dict.

        ``ast.literal_eval`` reads literals only (no names, calls or attributes: nothing runs);
        the result must be a JSON document (dicts, lists, strings, numbers, booleans, None).
        """
        text = plaintext.decode("utf-8")
        try:
            return json.loads(text, cls=self.decoder)
        except ValueError:
            pass
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError("neither JSON nor a Python literal") from None
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError("a Python literal that is not a JSON document") from None
        return value

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        try:
            json.dumps(value, cls=self.encoder)
        except TypeError:
            raise exceptions.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            ) from None

    def value_to_string(self, obj):
        return self.value_from_object(obj)

    def formfield(self, **kwargs):
        return super().formfield(
            **{"form_class": forms.JSONField, "encoder": self.encoder, "decoder": self.decoder, **kwargs}
        )


# ---------------------------------------------------------------------------------------------
# Blind index
# ---------------------------------------------------------------------------------------------
def default_normaliser(value) -> str:
    """Unicode NFKC, surrounding whitespace removed, case-folded: ``" Ann@Example.ORG "`` -> ``ann@example.org``."""
    return unicodedata.normalize("NFKC", str(value)).strip().casefold()


class BlindIndexField(models.CharField):
    """HMAC-SHA256 of a normalised source value under the ``blind_index`` key, for exact lookups.

    Stored as ``<key id>:<64 hex digits>`` so rotation and ``encryption_keys status`` can tell
    which key made it. Recomputed from the source on every ``save()`` (``pre_save``); a
    ``save(update_fields=[source])`` that leaves the index out raises instead of letting it go
    stale. ``queryset.update()`` and ``bulk_update()`` bypass ``pre_save``: run
    ``rotate_encryption_keys`` afterwards, which also fills missing indexes.

    The HMAC input is prefixed with a domain (default ``<model label>.<source>``), so equal values
    in two tables get unrelated indexes unless both fields name the same ``domain``. A blind index
    reveals which rows share a value: index only what must be looked up.
    """

    description = _("Blind index (HMAC-SHA256) of another field")

    def __init__(self, *args, source: str, normaliser=None, domain: str | None = None, **kwargs):
        self.source = source
        self.normaliser = normaliser or default_normaliser
        self.domain = domain
        kwargs.setdefault("max_length", 130)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        if self.normaliser is not default_normaliser:
            kwargs["normaliser"] = self.normaliser
        if self.domain is not None:
            kwargs["domain"] = self.domain
        for option, default in (
            ("max_length", 130),
            ("editable", False),
            ("db_index", True),
            ("null", True),
            ("blank", True),
        ):
            if kwargs.get(option, default) == default:
                kwargs.pop(option, None)
        return name, path, args, kwargs

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        try:
            source = self.model._meta.get_field(self.source)
        except exceptions.FieldDoesNotExist:
            return [
                *errors,
                checks.Error(
                    f"BlindIndexField source {self.source!r} is not a field of this model.",
                    obj=self,
                    id="encryption.E102",
                ),
            ]
        if source is self:
            errors.append(checks.Error("A BlindIndexField cannot index itself.", obj=self, id="encryption.E103"))
        return errors

    def contribute_to_class(self, cls, name, private_only=False):
        super().contribute_to_class(cls, name, private_only=private_only)
        self.domain_bytes = (self.domain or f"{cls._meta.label_lower}.{self.source}").encode("utf-8") + b"\x1f"
        if not cls._meta.abstract:
            pre_save.connect(self._refuse_stale_update_fields, sender=cls)

    @cached_property
    def source_field(self) -> models.Field:
        return self.model._meta.get_field(self.source)

    def compute(self, value, *, key=None) -> str | None:
        """Return the index of ``value`` under ``key`` (default: the primary blind-index key)."""
        if value is None:
            return None
        key = key or get_key_ring("blind_index").primary
        return f"{key.id}:{key.hmac_sha256_hex(self.domain_bytes + self.normaliser(value).encode('utf-8'))}"

    def candidates(self, value) -> list[str]:
        """Every index ``value`` may be stored under: one per key of the ring (rotation in progress)."""
        return [self.compute(value, key=key) for key in get_key_ring("blind_index")]

    def pre_save(self, model_instance, add):
        index = self.compute(getattr(model_instance, self.source_field.attname))
        setattr(model_instance, self.attname, index)
        return index

    def _refuse_stale_update_fields(self, sender, instance, update_fields=None, **kwargs):
        if update_fields is None:
            return
        source_names = {self.source, self.source_field.attname}
        if source_names & set(update_fields) and self.name not in update_fields and self.attname not in update_fields:
            raise ValueError(
                f"save(update_fields=...) includes {self.source!r} but not its blind index {self.name!r}; "
                "add it so the index stays in step."
            )


def blind_index_filter(model: type[models.Model], field_name: str, value) -> Q:
    """Return a ``Q`` matching rows whose blind index equals that of ``value``.

    ``field_name`` is the ``BlindIndexField`` or its source field. Matches under every key of the
    blind-index ring, so lookups keep working while a rotation is half done::

        Contact.objects.filter(blind_index_filter(Contact, "email", "Ann@Example.org"))
    """
    field = model._meta.get_field(field_name)
    if not isinstance(field, BlindIndexField):
        matches = [f for f in model._meta.concrete_fields if isinstance(f, BlindIndexField) and f.source == field_name]
        if len(matches) != 1:
            raise ValueError(f"{model._meta.label}.{field_name} has no (single) BlindIndexField.")
        field = matches[0]
    if value is None:
        return Q(**{f"{field.name}__isnull": True})
    return Q(**{f"{field.name}__in": field.candidates(value)})
