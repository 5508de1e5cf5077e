"""The read side of flows (HackSoft selectors): queries that change nothing,
for the admin, the API and the commands.

- versions.py: a flow's version history, one version by name or number;
- audience.py: the audience preview, counted by the rules of real entry;
- stats.py: a flow's entries, exits and sends per node over a period;
- canvas_stats.py: the same per node for the canvas, with the nodes' own
  figures (limitation places, goals);
- activity.py: a customer's runs and messages, newest first;
- monitoring.py: failed messages and failed steps, filtered (django-filter).

This package re-exports the version and audience names callers used from
the old flows/selectors.py; code inside flows imports from the modules."""

from flows.selectors.audience import (
    AUDIENCE_SAMPLE_SIZE,
    audience_preview,
    flow_audience_preview,
    rule_audience,
    schedule_audience,
)
from flows.selectors.versions import get_version, version_history

__all__ = [
    "AUDIENCE_SAMPLE_SIZE",
    "audience_preview",
    "flow_audience_preview",
    "get_version",
    "rule_audience",
    "schedule_audience",
    "version_history",
]
