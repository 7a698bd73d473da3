"""The sanitiser: what may reach an audit event or a log line.

OWASP ASVS 4.0.3 V7.1.1 (no credentials or secrets in logs) and V7.3.1 (log injection): every
audit field and every log line passes through here. Three defences, in this order: masking by
key name (split into words, so ``apiKey`` is a secret and ``keyword`` is not), masking by value
pattern (bearer credentials, JWTs, password hashes, PEM keys, long hex and base64...), then
escaping control and bidi characters and bounding sizes. It never raises on odd input.
The exact rules and why: docs/decisions/sanitiser-three-defences.md.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import ipaddress
import itertools
import math
import re
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

MASK = "[MASKED]"
TRUNCATED_MARKER = "...[truncated from {length} chars]"

# Bounds for the JSON context of one event (characters; items per container; nesting levels).
CONTEXT_STRING_MAX_LENGTH = 1024
CONTEXT_TOTAL_MAX_LENGTH = 8192
CONTEXT_MAX_ITEMS = 100
CONTEXT_MAX_DEPTH = 6
KEY_MAX_LENGTH = 64
# Largest log message kept (characters).
LOG_MESSAGE_MAX_LENGTH = 4096

# --- 1. Key names ---------------------------------------------------------------------------

# Words that name a secret whatever follows them.
ALWAYS_SECRET_WORDS = frozenset(
    {
        "password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets",
        "session", "sessions", "sessionid", "sessionkey", "cookie", "cookies", "setcookie",
        "csrf", "csrftoken", "xsrf", "authorization", "privatekey", "mnemonic",
        "credential", "credentials", "clientsecret", "secretkey",
    }
)
# Substrings of the joined key that name a secret whatever follows (``csrfmiddlewaretoken``).
ALWAYS_SECRET_SUBSTRINGS = ("password", "passwd", "passphrase", "secret", "sessionid", "csrf",
                            "authorization", "cookie", "privatekey")
# Words that name a secret unless a describing word follows (``key`` but not ``key_id``).
SOFT_SECRET_WORDS = frozenset(
    {
        "token", "tokens", "otp", "totp", "hotp", "otpauth", "code", "codes", "pin", "key", "keys",
        "apikey", "accesstoken", "refreshtoken", "idtoken", "content", "metadata", "signature",
        "signatures", "sig", "hash", "hashes", "salt", "body", "ciphertext", "plaintext",
    }
)
SOFT_SECRET_SUBSTRINGS = ("token", "apikey")
# A last word that makes a soft name describe a secret instead of holding it.
DESCRIBING_LAST_WORDS = frozenset(
    {
        "id", "ids", "uuid", "pk", "type", "types", "kind", "length", "len", "count", "size",
        "version", "versions", "name", "names", "prefix", "fingerprint", "purpose", "label",
        "alias", "algorithm", "algorithms", "algo", "format", "status", "state", "expires",
        "expiry", "expired", "age", "ttl", "at", "created", "updated", "changed", "rotated",
        "revoked", "valid", "present", "enabled", "required", "field", "fields", "scope", "scopes",
    }
)
# ``status_code``, ``country_code``: a code that is not an OTP.
CODE_QUALIFIERS = frozenset(
    {
        "status", "http", "error", "exit", "response", "country", "language", "lang", "currency",
        "postal", "zip", "area", "region", "reason", "return", "result", "iso",
    }
)
# Keys whose values are identifiers or digests: long hex/base64 values under them are kept
# (``request_id``, ``api_key_id``, ``archive_sha256``, an image's source ``revision``: a commit hash), the
# other value patterns still apply.
IDENTIFIER_LAST_WORDS = frozenset({"id", "ids", "uuid", "pk", "sha256", "checksum", "digest", "revision"})

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


@functools.lru_cache(maxsize=4096)
def key_words(key: str) -> tuple[str, ...]:
    """Split a key into lower-case words: ``X-Api-Key`` → ``("x", "api", "key")``."""
    return tuple(word for word in _NON_ALNUM.split(_CAMEL_BOUNDARY.sub("_", key).lower()) if word)


def is_sensitive_key(key: Any) -> bool:
    """Whether a mapping key names a value that must never be stored or logged."""
    return _is_sensitive_key(str(key)[:KEY_MAX_LENGTH * 4])


@functools.lru_cache(maxsize=4096)
def _is_sensitive_key(key: str) -> bool:
    words = key_words(key)
    if not words:
        return False
    joined = "".join(words)
    if any(word in ALWAYS_SECRET_WORDS for word in words) or any(s in joined for s in ALWAYS_SECRET_SUBSTRINGS):
        return True
    if not (any(word in SOFT_SECRET_WORDS for word in words) or any(s in joined for s in SOFT_SECRET_SUBSTRINGS)):
        return False
    last = words[-1]
    if last in DESCRIBING_LAST_WORDS:
        return False
    return not (last in {"code", "codes"} and len(words) > 1 and words[-2] in CODE_QUALIFIERS)


def _is_identifier_key(key: Any) -> bool:
    return _is_identifier_key_text(str(key)[:KEY_MAX_LENGTH * 4])


@functools.lru_cache(maxsize=4096)
def _is_identifier_key_text(key: str) -> bool:
    words = key_words(key)
    return bool(words) and words[-1] in IDENTIFIER_LAST_WORDS


@functools.lru_cache(maxsize=4096)
def _clean_key_text(key: str) -> str:
    return clean_text(key, KEY_MAX_LENGTH)


def _clean_key(key: Any) -> str:
    """``clean_text`` of a mapping key; the short string keys code uses over and over are cached."""
    if type(key) is str and len(key) <= 4 * KEY_MAX_LENGTH:
        return _clean_key_text(key)
    return clean_text(key, KEY_MAX_LENGTH)


# --- 2. Value patterns ----------------------------------------------------------------------

_TOKEN_CHARS = r"A-Za-z0-9._~+/=:-"  # noqa: S105 (a character class, not a password)
_VALUE_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
     "[MASKED:private-key]"),
    # Whole header values: everything after the name up to the end of the line.
    (re.compile(r"(?i)\b((?:set-)?cookie|authorization|proxy-authorization)(\s*[=:]\s*)[^\r\n]+"), r"\1\2" + MASK),
    (re.compile(rf"(?i)\b(bearer|basic|digest|negotiate)(\s+)[{_TOKEN_CHARS}]{{8,}}"), r"\1\2" + MASK),
    (re.compile(rf"(?i)\b(token|apikey|api-key)(\s+)(?=[{_TOKEN_CHARS}]*\d)[{_TOKEN_CHARS}]{{12,}}"), r"\1\2" + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[MASKED:jwt]"),
    (re.compile(r"\bgAAAAA[A-Za-z0-9_-]{20,}={0,2}"), "[MASKED:fernet]"),
    (re.compile(r"\b(?:argon2|bcrypt_sha256|bcrypt|pbkdf2_sha256|pbkdf2_sha1|scrypt|unsalted_md5|unsalted_sha1"
                r"|sha1|md5|crypt)\$\S+"), "[MASKED:password-hash]"),
    (re.compile(r"\$(?:argon2(?:id|i|d)|2[abxy]?|5|6|7|scrypt|pbkdf2[\w-]*)\$\S+"), "[MASKED:password-hash]"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^/\s@]+@"), r"\1:" + MASK + "@"),
    (re.compile(r"(?i)\b(password|passwd|pwd|passphrase|secret|client[_-]?secret|token|access[_-]?token"
                r"|refresh[_-]?token|api[_-]?key|session[_-]?id|session[_-]?key|csrftoken|csrfmiddlewaretoken"
                r"|otp|otp[_-]?code)(\"?'?\s*[=:]\s*\"?'?)([^\s&;,\"']+)"), r"\1\2" + MASK),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "[MASKED:aws-key]"),
    # The project's API keys keep their public prefix (it names the key to rotate); signing
    # secrets go whole. Formats: api/keys.py (not imported: core imports no app).
    (re.compile(r"\bnvk_([a-z2-7]{12})_[A-Za-z0-9_-]+"), r"nvk_\1_" + MASK),
    (re.compile(r"\bnvs_[A-Za-z0-9_-]{8,}"), "[MASKED:signing-secret]"),
    # Query parameters that carry credentials, in a URL or a request line: ?key=..., &sig=...
    (re.compile(r"(?i)([?&;](?:key|keys|api_?key|api-key|access_?token|token|auth|authorization|signature|sig"
                r"|code|otp|password|secret)=)[^&\s#\"']*"), r"\1" + MASK),
]
_LONG_HEX = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/_=-])")


def _mask_base64_run(match: re.Match) -> str:
    run = match.group(0)
    # Random bytes in base64 of this length virtually always mix digits and both cases; words,
    # paths and snake_case identifiers do not.
    if any(c.isdigit() for c in run) and any(c.islower() for c in run) and any(c.isupper() for c in run):
        return "[MASKED:blob]"
    return run


# Cheap first look: a string none of the patterns could match is returned as it is. Every
# pattern above needs one of these (a 24+ run covers long hex, base64, JWT and Fernet bodies).
_CANDIDATE = re.compile(
    r"(?i)-----BEGIN|cookie|authoriz|bearer|basic|digest|negotiate|token|api.?key|eyJ|gAAAAA|\$|://|pass|pwd"
    r"|secret|session|csrf|otp|AKIA|nvk_|nvs_|[?&;][a-z_-]+=|[A-Za-z0-9+/_=-]{24,}"
)


def mask_value_patterns(text: str, *, identifier: bool = False) -> str:
    """Replace secrets recognised by their shape in ``text``.

    With ``identifier=True`` (values under ``*_id`` or digest keys) long hex and base64 runs are
    kept; every other pattern still applies.
    """
    if not _CANDIDATE.search(text):
        return text
    for pattern, replacement in _VALUE_PATTERNS:
        text = pattern.sub(replacement, text)
    if not identifier:
        text = _LONG_HEX.sub("[MASKED:hex]", text)
        text = _BASE64_RUN.sub(_mask_base64_run, text)
    return text


# --- 3. Escaping and bounding ---------------------------------------------------------------

_UNSAFE_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_character(match: re.Match) -> str:
    character = match.group(0)
    named = _NAMED_ESCAPES.get(character)
    if named:
        return named
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control_characters(text: str) -> str:
    """Escape what could forge a log line or hide text: C0/C1 controls, line separators, bidi."""
    if text.isprintable():  # no control, format (bidi), separator or surrogate character at all
        return text
    return _UNSAFE_CHARACTERS.sub(_escape_character, text)


def clean_text(value: Any, max_length: int, *, identifier: bool = False) -> str:
    """Return ``value`` as a string fit to store and log: masked, escaped, bounded.

    Masking runs on a bounded prefix (so a 10 MB value costs no more than a short one) before
    escaping, and truncation comes last so the stored length never exceeds ``max_length``.
    """
    text = value if isinstance(value, str) else str(value)
    original_length = len(text)
    prefix_length = max_length * 2 + 256
    cut = original_length > prefix_length
    if cut:
        text = text[:prefix_length]
    text = escape_control_characters(mask_value_patterns(text, identifier=identifier))
    if not cut and len(text) <= max_length:
        return text
    marker = TRUNCATED_MARKER.format(length=max(original_length, len(text)))
    if max_length <= len(marker):
        return text[:max_length]
    return text[: max_length - len(marker)] + marker


# --- Structures -----------------------------------------------------------------------------

_SAFE_INTEGER = 2**53  # beyond this JSON consumers lose precision; store as text


class _Budget:
    def __init__(self, total: int):
        self.remaining = total


def _sanitise(value: Any, *, depth: int, budget: _Budget, identifier: bool, limits: dict) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        return value if -_SAFE_INTEGER < value < _SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return _sanitise(value.value, depth=depth, budget=budget, identifier=identifier, limits=limits)
    if isinstance(value, str):
        return _sanitise_string(value, budget=budget, identifier=identifier, limits=limits)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[MASKED:bytes len={len(value)}]"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | decimal.Decimal | PurePath | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return _sanitise_string(str(value), budget=budget, identifier=True, limits=limits)
    if isinstance(value, Mapping):
        if depth >= limits["max_depth"]:
            return "[MAX DEPTH]"
        result: dict[str, Any] = {}
        for key, item in itertools.islice(value.items(), limits["max_items"]):
            clean_key = _clean_key(key)
            while clean_key in result:  # two keys that clean to one must not overwrite each other
                clean_key += "_"
            if is_sensitive_key(key):
                result[clean_key] = MASK
            else:
                result[clean_key] = _sanitise(
                    item, depth=depth + 1, budget=budget, identifier=_is_identifier_key(key), limits=limits
                )
            budget.remaining -= len(clean_key)
        if len(value) > limits["max_items"]:
            result["..."] = f"[{len(value) - limits['max_items']} more items]"
        return result
    if isinstance(value, list | tuple | set | frozenset):
        if depth >= limits["max_depth"]:
            return "[MAX DEPTH]"
        sequence = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        result_list = [
            _sanitise(item, depth=depth + 1, budget=budget, identifier=identifier, limits=limits)
            for item in list(sequence)[: limits["max_items"]]
        ]
        if len(sequence) > limits["max_items"]:
            result_list.append(f"[{len(sequence) - limits['max_items']} more items]")
        return result_list
    meta = getattr(value, "_meta", None)
    if meta is not None and hasattr(meta, "label_lower"):
        # A model instance: name it, never render it (its __str__ may show protected content).
        return f"{meta.label_lower}:{getattr(value, 'pk', None)}"
    if type(value).__name__ == "__proxy__":  # a lazy translation string
        return _sanitise_string(str(value), budget=budget, identifier=identifier, limits=limits)
    return f"[{type(value).__name__}]"


def _sanitise_string(value: str, *, budget: _Budget, identifier: bool, limits: dict) -> str:
    if budget.remaining <= 0:
        return "[TRUNCATED]"
    cleaned = clean_text(value, min(limits["max_string"], max(budget.remaining, 16)), identifier=identifier)
    budget.remaining -= len(cleaned)
    return cleaned


def sanitise(
    value: Any,
    *,
    max_depth: int = CONTEXT_MAX_DEPTH,
    max_items: int = CONTEXT_MAX_ITEMS,
    max_string: int = CONTEXT_STRING_MAX_LENGTH,
    max_total: int = CONTEXT_TOTAL_MAX_LENGTH,
) -> Any:
    """Return a JSON-safe copy of ``value`` with every secret masked and every string bounded."""
    limits = {"max_depth": max_depth, "max_items": max_items, "max_string": max_string}
    return _sanitise(value, depth=0, budget=_Budget(max_total), identifier=False, limits=limits)


def sanitise_context(context: Mapping | None) -> dict:
    """Sanitise the ``context`` of an audit event: always a dict, never more than the bounds."""
    if context is None:
        return {}
    if not isinstance(context, Mapping):
        context = {"value": context}
    return sanitise(context)


def sanitise_text(value: Any, max_length: int = LOG_MESSAGE_MAX_LENGTH) -> str:
    """Sanitise one free-text value (a log message): masked, escaped, bounded."""
    return clean_text(value, max_length)


def sanitise_mapping_for_log(values: Mapping) -> dict:
    """Sanitise a log event's fields (a structlog processor can call this on its event dict)."""
    return sanitise(values, max_string=LOG_MESSAGE_MAX_LENGTH, max_total=4 * LOG_MESSAGE_MAX_LENGTH)


def sanitise_log_value(key: str, value: Any) -> Any:
    """Sanitise one extra field of a log record by its key and value."""
    if is_sensitive_key(key):
        return MASK
    return _sanitise(
        value,
        depth=0,
        budget=_Budget(4 * LOG_MESSAGE_MAX_LENGTH),
        identifier=_is_identifier_key(key),
        limits={"max_depth": CONTEXT_MAX_DEPTH, "max_items": CONTEXT_MAX_ITEMS, "max_string": LOG_MESSAGE_MAX_LENGTH},
    )
