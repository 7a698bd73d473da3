"""The test settings of a worker that judges bulk reads from 40 reads an hour (the floor), not 200."""

from config.settings.test import *  # noqa: F403

MONITORING_BULK_READ_MIN_EVENTS = 40
