"""Structured JSON logs: every line one sanitised JSON object carrying the request context.

``SanitisingFilter`` (on every handler in ``LOGGING``) masks, escapes and bounds each record;
``JsonFormatter`` renders it through structlog's stdlib bridge with the request id, client IP
and user id (ASVS 4.0.3 V7.1.1, V7.3.1). Why structlog and not django-structlog:
docs/decisions/json-logs-with-structlog.md. This module imports no model: logging is configured before the
app registry.
"""

from __future__ import annotations

import logging

import structlog

from core import context as request_context
from core.sanitiser import (
    LOG_MESSAGE_MAX_LENGTH,
    clean_text,
    mask_value_patterns,
    sanitise_log_value,
    sanitise_mapping_for_log,
    sanitise_text,
)

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
            # A structlog event dict on its way to JsonFormatter, whose chain
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


def add_request_context(logger, method_name, event_dict):
    """Attach the request id, client IP and user id of the work in progress."""
    current = request_context.current()
    if current is not None:
        event_dict.setdefault("request_id", current.request_id)
        event_dict.setdefault("client_ip", current.client_ip)
    user_id = request_context.current_user_id()
    if user_id is not None:
        event_dict.setdefault("user_id", user_id)
    return event_dict


def sanitise_event(logger, method_name, event_dict):
    """Mask secrets and escape control characters in every field of the line (ASVS 4.0.3 V7.1.1, V7.3.1).

    Records from stdlib loggers went through ``SanitisingFilter`` already; this covers what
    structlog loggers bind, with the same sanitiser.
    """
    message = event_dict.pop("event", "")
    cleaned = sanitise_mapping_for_log(event_dict)
    cleaned["event"] = sanitise_text(str(message))
    return cleaned


_LEADING_KEYS = ("timestamp", "level", "logger", "message", "request_id", "user_id", "client_ip")


def _finalise(logger, method_name, event_dict):
    """Name the message ``message``, put the common keys first, drop private record attributes."""
    event_dict["message"] = event_dict.pop("event", "")
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update((key, value) for key, value in event_dict.items() if not key.startswith("_"))
    return ordered


SHARED_PROCESSORS = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    add_request_context,
]


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """A ``logging.Formatter`` that renders any log record as one sanitised JSON object."""

    def __init__(self, **kwargs):
        super().__init__(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                sanitise_event,
                _finalise,
                structlog.processors.JSONRenderer(sort_keys=False),
            ],
            foreign_pre_chain=SHARED_PROCESSORS,
            **kwargs,
        )
        # The logging configuration builds this formatter at start-up, in every process (web,
        # worker, beat, commands): the one moment structlog's own loggers can be routed here too.
        configure_structlog()


def configure_structlog() -> None:
    """Route ``structlog.get_logger()`` loggers through the stdlib handlers configured in LOGGING."""
    structlog.configure(
        processors=[*SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


__all__ = ["JsonFormatter", "SanitisingFilter", "configure_structlog"]
