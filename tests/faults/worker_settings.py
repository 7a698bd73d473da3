"""The test settings of a worker a fault test kills: abandoned deliveries are due again after 2 s."""

import os

from config.settings.test import *  # noqa: F403

MONITORING_NOTIFICATION_CLAIM_TIMEOUT_SECONDS = 2

# The posture checks would raise their own alert for a worker started as root (a test machine's
# user); the fault tests count the alerts of the faults they cause.
MONITORING_POSTURE_CHECKS: list[str] = []

# Email through Django's file backend into the test's folder, so a test counts what a worker sent.
if os.environ.get("FAULT_MAIL_DIR"):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = os.environ["FAULT_MAIL_DIR"]
