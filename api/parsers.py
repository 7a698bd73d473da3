"""The API's JSON parser: DRF's strict parser (no NaN/Infinity) plus structural limits → 400.

A small body can still be expensive: ``[[[[...]]]]`` nested 100 000 deep crashes a recursive
decoder, and ``[0,0,0,...]`` with a million items costs every later loop over it. The limits
(``API_JSON_MAX_DEPTH``, ``API_JSON_MAX_ARRAY_LENGTH``, ``API_JSON_MAX_OBJECT_KEYS``) are checked
on the decoded document with an explicit stack (no recursion), before any serializer sees it.
An object with the same key twice is refused too: parsers disagree on which value wins (the
first, the last, an error), so a body that a proxy, a signature check or a log reads one way
could mean another to us (RFC 8259 §4: names SHOULD be unique).
"""

from __future__ import annotations

import codecs
import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json as drf_json

from api import conf
from api.exceptions import JSONDuplicateKey, JSONLimitExceeded


def check_json_limits(document, *, max_depth: int, max_array: int, max_keys: int) -> None:
    """Raise ``JSONLimitExceeded`` if ``document`` breaks a limit; iterative, O(size)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
            if len(value) > max_keys:
                raise JSONLimitExceeded(f"A JSON object has more than {max_keys} keys.")
        elif isinstance(value, list):
            children = value
            if len(value) > max_array:
                raise JSONLimitExceeded(f"A JSON array has more than {max_array} items.")
        else:
            continue
        if depth > max_depth:
            raise JSONLimitExceeded(f"JSON nested deeper than {max_depth} levels.")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


class DuplicateKey(ValueError):
    """A JSON object names one key twice."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise DuplicateKey("A JSON object has the same key twice.")
    return document


class LimitedJSONParser(JSONParser):
    """``application/json`` bodies within the structural limits, each key once; anything else is a 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF's JSONParser.parse, with the duplicate-key check that ``json`` cannot be told to make.
        try:
            decoded = codecs.getreader(get_encoding(parser_context or {}))(stream)
            document = json.load(decoded, parse_constant=drf_json.strict_constant, object_pairs_hook=_unique_keys)
        except DuplicateKey as error:
            raise JSONDuplicateKey(str(error)) from None
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from None
        except RecursionError:
            # Too deep for the decoder itself: nothing was parsed, so it is malformed to us.
            raise JSONLimitExceeded("Malformed request body.") from None
        if isinstance(document, dict | list):
            check_json_limits(
                document,
                max_depth=conf.get("API_JSON_MAX_DEPTH"),
                max_array=conf.get("API_JSON_MAX_ARRAY_LENGTH"),
                max_keys=conf.get("API_JSON_MAX_OBJECT_KEYS"),
            )
        return document
