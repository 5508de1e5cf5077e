# TRANSITIONAL: re-exports for wp-d-edges files; remove after merge
"""Old path of the entry functions flows/lifecycle.py and flows/selectors.py
import: audience entry is flows.engine.entry, schedule firing
flows.nodes.schedule.firing."""

from flows.engine.entry import entering_customers
from flows.nodes.schedule.firing import arm_schedule, audience_q

__all__ = ["arm_schedule", "audience_q", "entering_customers"]
