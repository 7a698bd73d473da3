"""Admin mixins shared by every room of the console."""

from __future__ import annotations


class NoEditAdminMixin:
    """Rows are viewed, never changed or deleted field by field: changes go through services."""

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdminMixin(NoEditAdminMixin):
    """No add, change or delete from the console: these rows change only through the services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False
