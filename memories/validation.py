"""Input rules for memories, shared by the services (the authority) and the API serializers.

The serializers check the same rules first so a client learns every problem at once, with the
field named; the services check again because the admin, commands and tests call them directly.
Each function returns the cleaned value or raises Django's ``ValidationError`` naming the field.
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any

from django.core.exceptions import ValidationError

from accounts.normalisation import CONTROL_CHARACTERS_MESSAGE, contains_control_characters
from memories import conf

TAGS_MAX_COUNT = 20
TAG_MAX_LENGTH = 50
SOURCE_MAX_LENGTH = 100
NAME_MAX_LENGTH = 200
# Nesting deeper than this is refused: nobody needs it, and deep documents make the JSON
# encoder and decoder recurse (a 500 is the usual outcome elsewhere).
METADATA_MAX_DEPTH = 20


def content_max_length() -> int:
    """The largest memory content accepted, in characters (``MEMORIES_CONTENT_MAX_LENGTH``)."""
    return conf.get("MEMORIES_CONTENT_MAX_LENGTH")


def metadata_max_bytes() -> int:
    """The largest metadata accepted, in bytes of compact UTF-8 JSON (``MEMORIES_METADATA_MAX_BYTES``)."""
    return conf.get("MEMORIES_METADATA_MAX_BYTES")


def text_problem(value: str) -> str | None:
    """Return why ``value`` cannot be stored as text on every database we support, or ``None``.

    PostgreSQL refuses NUL characters in text and JSON, and no database can encode a lone UTF-16
    surrogate as UTF-8; either would otherwise surface as a database error, i.e. a 500.
    """
    if "\x00" in value:
        return "Null characters are not allowed."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Text must be valid Unicode (no lone surrogates)."
    return None


def _require_text(field: str, value: Any, *, max_length: int, allow_blank: bool, name_like: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError({field: ["Must be a string."]})
    problem = text_problem(value)
    if problem:
        raise ValidationError({field: [problem]})
    if name_like and contains_control_characters(value):
        # The usernames' rule (accounts.normalisation): a name is shown in lists, emails, the
        # console and terminals, where these characters forge lines or reverse text.
        raise ValidationError({field: [CONTROL_CHARACTERS_MESSAGE]})
    if not allow_blank and not value.strip():
        raise ValidationError({field: ["This field may not be blank."]})
    if len(value) > max_length:
        raise ValidationError({field: [f"Ensure this field has no more than {max_length} characters."]})
    return value


def clean_content(value: Any) -> str:
    """Return memory content if it is a non-blank string within the configured maximum."""
    return _require_text("content", value, max_length=content_max_length(), allow_blank=False)


def clean_source(value: Any) -> str:
    """Return a memory's source label (may be empty), stripped."""
    return _require_text("source", value, max_length=SOURCE_MAX_LENGTH, allow_blank=True, name_like=True).strip()


def clean_name(value: Any, *, field: str = "name") -> str:
    """Return a context, team or organization name: non-blank, stripped, at most 200 characters, no controls."""
    return _require_text(field, value, max_length=NAME_MAX_LENGTH, allow_blank=False, name_like=True).strip()


def _metadata_problem(value: Any, depth: int) -> str | None:
    """Why ``value``, an object or array at nesting level ``depth`` (the metadata itself: 1), is refused.

    Levels are objects and arrays: a number or string inside the 20th object is within 20 levels
    (counting the leaf as a level too refused 20 levels of objects with a value in the last one).
    """
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, dict | list) and depth > METADATA_MAX_DEPTH:
        return f"Nesting deeper than {METADATA_MAX_DEPTH} levels is not allowed."
    if isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key) if isinstance(key, str) else "Object keys must be strings."
            problem = problem or _metadata_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        for item in value:
            problem = _metadata_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "NaN and infinite numbers are not valid JSON."
    if value is None or isinstance(value, bool | int | float):
        return None
    return "Only JSON values are allowed."


def clean_metadata(value: Any) -> dict:
    """Return metadata if it is a JSON object within the size and depth limits."""
    if not isinstance(value, dict):
        raise ValidationError({"metadata": ["Must be a JSON object."]})
    problem = _metadata_problem(value, 1)
    if problem:
        raise ValidationError({"metadata": [problem]})
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > metadata_max_bytes():
        raise ValidationError(
            {"metadata": [f"Ensure the metadata is at most {metadata_max_bytes()} bytes of JSON (it is {size})."]}
        )
    return value


def normalise_tag(value: str) -> str:
    """Return the stored form of a tag: NFKC, surrounding whitespace removed, lower-case."""
    return unicodedata.normalize("NFKC", value).strip().lower()


def clean_tag(value: Any, *, field: str = "tag") -> str:
    """Return one normalised tag: 1 to 50 characters with no control characters."""
    if not isinstance(value, str):
        raise ValidationError({field: ["Must be a string."]})
    problem = text_problem(value)
    if problem:
        raise ValidationError({field: [problem]})
    tag = normalise_tag(value)
    if not tag:
        raise ValidationError({field: ["A tag may not be blank."]})
    if len(tag) > TAG_MAX_LENGTH:
        raise ValidationError({field: [f"A tag has at most {TAG_MAX_LENGTH} characters."]})
    if contains_control_characters(tag):
        raise ValidationError({field: ["A tag may not contain control characters."]})
    return tag


def clean_tags(value: Any) -> list[str]:
    """Return a list of at most 20 distinct normalised tags, in the order first given."""
    if not isinstance(value, list | tuple):
        raise ValidationError({"tags": ["Must be a list of strings."]})
    if len(value) > TAGS_MAX_COUNT:
        raise ValidationError({"tags": [f"At most {TAGS_MAX_COUNT} tags are allowed."]})
    tags: list[str] = []
    for item in value:
        tag = clean_tag(item, field="tags")
        if tag not in tags:
            tags.append(tag)
    return tags
