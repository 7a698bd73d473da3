"""Typed errors of the memories domain: two different answers to "you may not".

``NotFound`` when the user may not even see the object, answered exactly as an id that does not
exist (404), so existence does not leak; ``PermissionDenied`` when they may see it but not do
this (403). They subclass Django's ``Http404`` and ``PermissionDenied``, so views, the admin and
the API's exception handler map them without knowing this module. Bad input is Django's
``ValidationError``. Why: docs/decisions/permission-checked-in-services.md.
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
