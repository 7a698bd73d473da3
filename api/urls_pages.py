"""The API key page, mounted at /accounts/api-keys/ (namespace ``api-keys``)."""

from django.urls import path

from api import pages

app_name = "api-keys"

urlpatterns = [
    path("", pages.api_key_list_view, name="list"),
    path("issue/", pages.api_key_issue_view, name="issue"),
    path("<str:prefix>/rotate/", pages.api_key_rotate_view, name="rotate"),
    path("<str:prefix>/revoke/", pages.api_key_revoke_view, name="revoke"),
]
