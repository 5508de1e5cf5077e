# TRANSITIONAL: re-exports for wp-d-edges files; remove after merge
"""Old path of flows.engine.ingestion (flows/api.py imports from here until it
is pointed at it)."""

from flows.engine.ingestion import MAX_EVENTS, ingest_events

__all__ = ["MAX_EVENTS", "ingest_events"]
