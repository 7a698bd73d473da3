"""The test settings of a worker a fault test kills: abandoned deliveries are due again after 2 s."""

from config.settings.test import *  # noqa: F403

MONITORING_NOTIFICATION_CLAIM_TIMEOUT_SECONDS = 2
