"""What every app's admin shares and the kernel's own admin (the audit log)
needs too, so it lives here rather than in an app."""

from __future__ import annotations


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
