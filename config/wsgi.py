"""WSGI entry point.

Once the application is built, the process records its start and runtime posture
(``system.process_started``, role ``web``; ``monitoring.services.posture``): once per process, so
once under ``runserver`` and once in each gunicorn worker (each imports this module), or once in
gunicorn's master with ``preload_app``. It never stops the start.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
application = get_wsgi_application()

from monitoring.services.posture import process_started_record_once  # noqa: E402  (needs the apps loaded)

process_started_record_once(role="web")
