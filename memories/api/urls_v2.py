"""API v2 routes, mounted at /api/v2/ (namespace ``api-v2``).

v2 changed the memory resource (docs/API_CHANGES.md); every other route is v1's, unchanged.
"""

from django.urls import path

from memories.api import urls as v1
from memories.api import views

app_name = "api-v2"

_REPLACED = {
    "memory-list": views.MemoryListV2View,
    "memory-detail": views.MemoryDetailV2View,
}

urlpatterns = [
    path(str(route.pattern), _REPLACED[route.name].as_view(), name=route.name) if route.name in _REPLACED else route
    for route in v1.urlpatterns
]
