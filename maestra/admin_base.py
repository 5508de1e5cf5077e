"""What every app's admin shares and the kernel's own admin (the audit log)
needs too, so it lives here rather than in an app."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404


class ReadOnlyAdminMixin:
    """Rows written only by the product (events, runs, the outbox, the audit
    log, ...): the admin shows them but never edits them, so history cannot
    be rewritten by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def permitted_object(model_admin, request, object_id, *, what: str, permission: str, perms=()):
    """The object of an admin page about one object: a 404 naming `what` if
    there is none, a 403 unless the user has the model admin's `permission`
    ("view", "change") on it and every permission of `perms` as well."""
    obj = model_admin.get_object(request, object_id)
    if obj is None:
        raise Http404(f"No such {what}")
    has_permission = getattr(model_admin, f"has_{permission}_permission")
    if not (has_permission(request, obj) and request.user.has_perms(perms)):
        raise PermissionDenied
    return obj
