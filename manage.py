#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

A configuration error (``ImproperlyConfigured``: a missing secret, a malformed ``DATABASE_URL``,
an unknown provider) ends the command with one line on stderr and exit status 2, as a command's
own errors do; ``--traceback`` shows the traceback instead.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from core.context import command_bound

    try:
        with command_bound(sys.argv):  # one id for the events and log lines of this run
            execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        if "--traceback" in sys.argv:
            raise
        sys.stderr.write(f"Configuration error: {error}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
