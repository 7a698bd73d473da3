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


# Unicode categories no name may contain: controls (ESC, BEL, backspace, CR, LF, DEL, C1),
# format characters (the bidi overrides U+202A-202E and isolates U+2066-2069, zero-width
# joiners), surrogates, private use and unassigned code points. They forge log lines, rewrite a
# terminal, or make a name read differently from what it is (Trojan Source, CVE-2021-42574).
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
CONTROL_CHARACTERS_MESSAGE = (
    "Control characters (escape, bell, backspace, line breaks, direction overrides) are not allowed."
)


def contains_control_characters(value: str) -> bool:
    """Whether ``value`` has a character of ``CONTROL_CATEGORIES``: the rule of usernames, for every name."""
    return any(unicodedata.category(character) in CONTROL_CATEGORIES for character in value)
