"""Carry the request context into Celery tasks.

The publishing side copies the request id and client IP into the task message's headers; the
worker binds them again before the task runs, so the task's audit events and log lines carry the
id of the request that caused them. A task started outside any request gets a fresh id.
"""

from __future__ import annotations

from celery import signals

from core import context as request_context
from core.requests import USER_AGENT_MAX_LENGTH

HEADER_REQUEST_ID = "ninaivalaigal_request_id"
HEADER_CLIENT_IP = "ninaivalaigal_client_ip"
HEADER_USER_ID = "ninaivalaigal_user_id"

_tokens: dict[str, object] = {}


@signals.setup_logging.connect(weak=False)
def keep_project_logging(**kwargs):
    """Keep the logging Django configured from ``LOGGING`` in workers and beat (ASVS 4.0.3 V7.1.1).

    Without a receiver here Celery replaces the root handlers with its own plain-text ones, and
    every worker line (task arguments in error reports included) would bypass
    ``core.logging.SanitisingFilter``. With one, Celery leaves logging as it is.
    """
    from django.conf import settings

    if getattr(settings, "LOGGING", None):
        import logging.config

        logging.config.dictConfig(settings.LOGGING)


@signals.before_task_publish.connect(weak=False)
def add_request_context_headers(sender=None, headers=None, **kwargs):
    """Copy the current request context into the outgoing task message."""
    if headers is None:
        return
    current = request_context.current()
    if current is not None:
        headers[HEADER_REQUEST_ID] = current.request_id
        headers[HEADER_CLIENT_IP] = current.client_ip
    user_id = request_context.current_user_id()
    if user_id is not None:
        headers[HEADER_USER_ID] = user_id


def _header(task, name):
    value = getattr(task.request, name, None)
    if value is None and isinstance(getattr(task.request, "headers", None), dict):
        value = task.request.headers.get(name)
    return value


@signals.task_prerun.connect(weak=False)
def bind_request_context(task_id=None, task=None, **kwargs):
    """Bind the publishing request's context (or a fresh id) for the duration of the task."""
    if task is None or task.request.is_eager:
        return  # eager tasks run inside the caller's context already
    bound = request_context.RequestContext(
        request_id=request_context.accept_request_id(_header(task, HEADER_REQUEST_ID)),
        client_ip=_header(task, HEADER_CLIENT_IP),
        user_agent=f"celery:{task.name}"[:USER_AGENT_MAX_LENGTH],
        user_source=_header(task, HEADER_USER_ID),
    )
    _tokens[task_id] = request_context.bind(bound)


@signals.task_postrun.connect(weak=False)
def unbind_request_context(task_id=None, **kwargs):
    """Restore the worker's context after the task."""
    token = _tokens.pop(task_id, None)
    if token is not None:
        request_context.reset(token)
