"""How an alert's subject is shown: a user by name (linked to their security page), an API key by
its name and owner, anything else as stored.

Descriptions of subjects held by rooms ``monitoring`` may not import (API keys belong to ``api``)
come from the functions that ``MONITORING_SUBJECT_DESCRIBERS`` names (the settings wire
``config.subjects.api_key_descriptions``); a describer that is not configured, or that fails,
leaves the subject as stored, never a broken page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from monitoring import conf
from monitoring.models import SubjectType

logger = logging.getLogger("monitoring.subjects")

# The per-user security page (accounts' console): reversed by name, linked only where it exists.
USER_SECURITY_PAGE = "admin:accounts_user_security"


def describe_subjects(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """``{(subject_type, subject): {"name", "owner", "link"}}`` for the pairs a describer knows (one call per type)."""
    by_type: dict[str, set[str]] = {}
    for subject_type, subject in pairs:
        if subject:
            by_type.setdefault(subject_type, set()).add(subject)
    described: dict[tuple[str, str], dict[str, str]] = {}
    for subject_type, subjects in by_type.items():
        path = (conf.get("MONITORING_SUBJECT_DESCRIBERS") or {}).get(subject_type)
        if not path:
            continue
        try:
            found = import_string(path)(sorted(subjects))
        except Exception as error:  # a describer's failure must not break the console
            logger.warning("subject describer %s failed: %s", subject_type, type(error).__name__)
            continue
        for subject, description in (found or {}).items():
            described[(subject_type, subject)] = description
    return described


def user_security_link(user_id: int | None) -> str:
    """The user's security page, or empty while no such page is mounted."""
    if user_id is None:
        return ""
    try:
        return reverse(USER_SECURITY_PAGE, args=[user_id])
    except NoReverseMatch:
        return ""


def subject_text(subject_type: str, subject: str, description: dict | None) -> str:
    """The subject in words: ``deploy-bot (key ab12cd34, owner alice)`` for a described key."""
    if subject_type == SubjectType.API_KEY and description:
        return f"{description.get('name') or subject} (key {subject}, owner {description.get('owner') or '?'})"
    return subject or "-"
