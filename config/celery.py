"""The Celery application. Configuration comes from Django settings with the ``CELERY_`` prefix."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("ninaivalaigal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The request id (and client IP, user id) of the request that started a task travels in the task
# message's headers and is bound again in the worker, so one id follows the work end to end.
import core.celery_context  # noqa: E402, F401  (connects the Celery signal receivers)
