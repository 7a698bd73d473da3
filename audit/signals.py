"""The one signal the audit app sends.

``event_recorded(sender=AuditEvent, event=<AuditEvent>)`` is sent once per event, only after the
transaction that recorded it has committed (never for a rolled-back event). ``monitoring``
subscribes to it for real-time detection; receivers must only hand work to a service or a task.
It is sent with ``send_robust``: a failing receiver is logged and cannot break the caller, whose
transaction is already committed.
"""

from django.dispatch import Signal

event_recorded = Signal()
