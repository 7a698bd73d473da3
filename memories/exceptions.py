"""Typed errors of the memories domain.

Two different answers to "you may not": ``NotFound`` when the user may not even see the object, so
that its existence does not leak (the API answers 404 exactly as for an id that does not exist),
and ``PermissionDenied`` when the user may see it but not do this (403).

They subclass Django's own ``Http404`` and ``PermissionDenied`` so every entry point maps them
right without knowing this module: Django views, the admin, and the API's exception handler.
Bad input is Django's ``ValidationError`` with a field → messages dict, which the API turns into
a 400 naming the fields.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404


class MemoriesError(Exception):
    """Base class of the errors this app raises on purpose."""


class NotFound(MemoriesError, Http404):
    """The object does not exist, or the acting user may not see it (the two are indistinguishable)."""


class PermissionDenied(MemoriesError, DjangoPermissionDenied):
    """The acting user may see the object but may not perform this action on it."""
