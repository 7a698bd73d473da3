"""Settings of the baseline app: DATABASE_URL only (the same PostgreSQL server as the platform)."""

import os
import secrets

import environ

DEBUG = False
# Nothing of the baseline is signed (no sessions, no CSRF): a new key per process will do.
SECRET_KEY = secrets.token_urlsafe(50)
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["rest_framework", "bench.e2e_baseline"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "bench.e2e_baseline.urls"
WSGI_APPLICATION = "bench.e2e_baseline.wsgi.application"
DATABASES = {"default": environ.Env.db_url_config(os.environ["DATABASE_URL"])}
# The platform keeps connections open across requests too (CONN_MAX_AGE or its pool).
DATABASES["default"]["CONN_MAX_AGE"] = 600
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["bench.e2e_baseline.authentication.HeaderKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
