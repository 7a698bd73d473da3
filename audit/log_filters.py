"""The logging filter that puts every log record through the audit sanitiser.

Attached to every handler in ``LOGGING`` (config/settings): the message is rendered, masked,
escaped and bounded, and every extra field is sanitised by its key and value, so a log line
carries no password, token, OTP, key, session id, authorization header or memory content, and
no control character can start a forged line (ASVS 4.0.3 V7.1.1, V7.3.1). A structlog pipeline
can call ``audit.sanitiser.sanitise_mapping_for_log`` as a processor for the same effect.

This module imports no model: the logging configuration loads it before the app registry.
"""

from __future__ import annotations

import logging

from audit.sanitiser import LOG_MESSAGE_MAX_LENGTH, clean_text, mask_value_patterns, sanitise_log_value

TRACEBACK_MAX_LENGTH = 16384

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class SanitisingFilter(logging.Filter):
    """Sanitise the message and the extra fields of each record; never drop a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_audit_sanitised", False):
            return True
        if isinstance(record.msg, dict):
            # A structlog event dict on its way to audit.logging.JsonFormatter, whose chain
            # sanitises it with the same sanitiser; flattening it here would break the renderer.
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = f"{record.msg!s} {record.args!r}"
        record.msg = clean_text(message, LOG_MESSAGE_MAX_LENGTH)
        record.args = ()
        if record.exc_info and not record.exc_text:
            # Tracebacks keep their line breaks (a handler renders them as one block) but lose
            # any secret an exception message quoted.
            traceback_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = mask_value_patterns(traceback_text[:TRACEBACK_MAX_LENGTH])
        for name, value in list(record.__dict__.items()):
            if name in _STANDARD_ATTRIBUTES or name.startswith("_"):
                continue
            record.__dict__[name] = sanitise_log_value(name, value)
        record._audit_sanitised = True
        return True
