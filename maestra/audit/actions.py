"""The registry of audit actions. Each app registers the actions it writes
in its AppConfig.ready (this module imports no model, so apps.py can import
it); maestra.audit.log refuses any other name."""

from __future__ import annotations

_ACTIONS: set[str] = set()


def register_actions(*names: str) -> None:
    _ACTIONS.update(names)


def registered_actions() -> frozenset[str]:
    return frozenset(_ACTIONS)
