"""The audit actions channels writes (maestra/audit): templates created,
changed and deleted (channels/templates.py). Registered in
ChannelsConfig.ready; this module imports no model, so apps.py can import it."""

from __future__ import annotations

TEMPLATE_ACTIONS = ("template.created", "template.changed", "template.deleted")
