"""The served test settings plus one slow streaming page (tests/deploy/streaming_urls.py).

For the gunicorn test that a response streaming longer than the worker timeout completes.
"""

from tests.deploy.settings import *  # noqa: F403

ROOT_URLCONF = "tests.deploy.streaming_urls"
