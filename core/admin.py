"""Admin mixins shared by every room of the console."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied


class PermittedActionsMixin:
    """A bulk action the user may not run is refused with 403, not quietly ignored.

    Django leaves an action out of the page when its ``permissions`` are not held, but a POST
    that names it anyway (a forged form) only gets "No action selected". Here any action name in
    the POST that ``get_actions`` does not offer this user raises ``PermissionDenied`` before
    anything else runs; the console's 403 handler records it as ``authz.permission_denied``.
    """

    def refuse_unpermitted_action(self, request) -> None:
        if request.method != "POST":
            return
        named = {name for name in request.POST.getlist("action") if name}
        if named - set(self.get_actions(request)):
            raise PermissionDenied

    def changelist_view(self, request, extra_context=None):
        self.refuse_unpermitted_action(request)
        return super().changelist_view(request, extra_context)


class NoEditAdminMixin(PermittedActionsMixin):
    """Rows are viewed, never changed or deleted field by field: changes go through services."""

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdminMixin(NoEditAdminMixin):
    """No add, change or delete from the console: these rows change only through the services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False
