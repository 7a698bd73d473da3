"""API v1 routes (filled in by the memories API)."""

app_name = "api-v1"
urlpatterns: list = []
