"""The security record of the project.

Other apps call ``audit.record(action=audit.Action.LOGIN_FAILED, ...)``; see
``audit.services.record`` for the contract. This package stays import-light because Django
imports app packages before their models are ready: ``record`` is a thin wrapper that imports
the service on first call, and ``Action``, ``Outcome``, ``Target`` and ``AuditEvent`` are
resolved lazily on first attribute access (PEP 562).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Action", "AuditEvent", "Outcome", "Target", "record", "record_many"]

_LAZY = {
    "Action": "audit.actions",
    "Outcome": "audit.actions",
    "Target": "audit.services",
    "AuditEvent": "audit.models",
}


def record(**kwargs: Any):
    """Record one audit event: ``audit.services.record`` (read its docstring for the contract)."""
    from audit.services import record as record_event

    return record_event(**kwargs)


def record_many(entries, **kwargs: Any):
    """Record several events at once: ``audit.services.record_many``."""
    from audit.services import record_many as record_events

    return record_events(entries, **kwargs)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'audit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
