import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.e2e_baseline.settings")
application = get_wsgi_application()
