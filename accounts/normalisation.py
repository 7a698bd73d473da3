"""Normalisation of the identifiers people type, so variants name one account.

``Alice``, ``alice`` and `` alice `` are one username; ``Bob@Example.COM`` and ``bob@example.com``
are one email. Unicode is folded to NFKC first so look-alike compositions compare equal
(the mistake django-axes and Keycloak made: variants that dodge a lock or create a twin account).
"""

from __future__ import annotations

import unicodedata


def normalise_username(value: str) -> str:
    """Return the canonical form of a username: NFKC, surrounding whitespace removed, case-folded."""
    return unicodedata.normalize("NFKC", value or "").strip().casefold()


def normalise_email(value: str) -> str:
    """Return the canonical form of an email address: NFKC, stripped, lower-cased."""
    return unicodedata.normalize("NFKC", value or "").strip().lower()
