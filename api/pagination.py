"""Pagination for API list endpoints, with counts capped (issue #17).

DRF's page-number pagination runs an uncapped ``COUNT(*)`` over everything the filters match,
on every page. Here the count reads at most ``API_LIST_COUNT_CAP`` rows (or, on a deeper page,
as many as that page needs, plus one): ``SELECT COUNT(*) FROM (SELECT … LIMIT n)``. Beyond the
cap the response says ``"count": <the cap>`` and ``"count_capped": true``; every page is still
reachable and ``next`` stays right, because the count always covers the requested page and one
row past it.
"""

from django.core.paginator import Paginator
from django.utils.functional import cached_property
from rest_framework.pagination import PageNumberPagination

from api import conf


class CappedCountPaginator(Paginator):
    """A Django paginator whose count stops at ``cap`` (at least ``rows_needed``) plus one row."""

    cap = 10_000
    rows_needed = 0

    @cached_property
    def count(self) -> int:
        if not hasattr(self.object_list, "query"):
            return len(self.object_list)
        if self.cap == float("inf"):
            return self.object_list.count()
        limit = max(self.cap, self.rows_needed)
        return self.object_list.order_by()[: limit + 1].count()

    @property
    def count_capped(self) -> bool:
        return self.count > max(self.cap, self.rows_needed)


class DefaultPagination(PageNumberPagination):
    """Page-number pagination; clients may ask for up to 200 items a page."""

    page_size_query_param = "page_size"
    max_page_size = 200

    def django_paginator_class(self, queryset, page_size):
        """The capped paginator, told how many rows the requested page needs (DRF sets ``self.request`` first)."""
        paginator = CappedCountPaginator(queryset, page_size)
        number = self.request.query_params.get(self.page_query_param, "1") if self.request else "1"
        if number in self.last_page_strings:
            paginator.cap = float("inf")  # the last page needs the exact count
        else:
            paginator.cap = conf.get("API_LIST_COUNT_CAP")
            if number.isdigit():
                paginator.rows_needed = int(number) * page_size
        return paginator

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        paginator = self.page.paginator
        if getattr(paginator, "count_capped", False):
            response.data["count"] = max(paginator.cap, paginator.rows_needed)
            response.data["count_capped"] = True
        return response

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["properties"]["count_capped"] = {
            "type": "boolean",
            "description": "Present (true) when more items match than were counted; count is then a lower bound.",
        }
        return schema
