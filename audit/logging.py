"""Structured JSON logs: every line one JSON object carrying the request context.

We use structlog with its stdlib bridge rather than django-structlog: our request id and client
IP already come from ``audit.context`` (one trusted-proxy function for the whole project), and
django-structlog would bind its own request id and resolve the IP again from headers. structlog's
``ProcessorFormatter`` renders every record — ours, Django's, Celery's — through one chain, so
the same sanitiser guards every line.
"""

from __future__ import annotations

import structlog

from audit import context as request_context


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

    Records from stdlib loggers went through ``audit.log_filters.SanitisingFilter`` already;
    this covers what structlog loggers bind, with the same sanitiser.
    """
    from audit.sanitiser import sanitise_mapping_for_log, sanitise_text

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


def get_logger(name: str):
    """Return a structlog logger for ``name``."""
    return structlog.get_logger(name)


__all__ = ["JsonFormatter", "configure_structlog", "get_logger"]
