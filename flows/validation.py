# TRANSITIONAL: re-exports for wp-d-edges files; remove after merge
"""Old path of flows.document.validate (flows/admin_views.py and
flows/lifecycle.py import from here until they are pointed at it)."""

from flows.document.validate import MAX_NODES, validate_document

__all__ = ["MAX_NODES", "validate_document"]
