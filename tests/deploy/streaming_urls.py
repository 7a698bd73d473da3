"""The project's URLs plus ``/test-slow-stream/``: a streamed response that lasts a few seconds.

It stands for the audit explorer's export of a million events (about a minute): the same
Django stack and middleware, a ``StreamingHttpResponse`` written piece by piece, kept short.
"""

import time

from django.http import StreamingHttpResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns

PIECES = 8
PAUSE_SECONDS = 0.5  # 8 pieces, 0.5 s apart: 4 s, twice the test's worker timeout


def piece(index: int) -> bytes:
    return f"piece {index} of {PIECES}\n".encode()


def slow_stream(request):
    def pieces():
        for index in range(1, PIECES + 1):
            time.sleep(PAUSE_SECONDS)
            yield piece(index)

    return StreamingHttpResponse(pieces(), content_type="text/plain; charset=utf-8")


urlpatterns = [path("test-slow-stream/", slow_stream), *project_urlpatterns]
