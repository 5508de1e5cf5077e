"""The life of a flow: create, autosave the draft, launch, test, pause, resume,
archive, edit a live flow through a draft, duplicate, delete (SPEC §3, §4, §9).

The services live by concern (state: statuses and shared steps; drafts;
launch and test mode; transitions; delete); this package re-exports the names
callers use, so `from flows import lifecycle; lifecycle.launch_flow(...)`
reads as before. Code inside flows imports from the modules.

The status only moves through the django-fsm transitions declared on Flow, via
these services (the admin's buttons too: flows/admin/transitions.py)."""

from flows.errors import DraftConflict, LifecycleError, VersionNotFound
from flows.lifecycle.delete import can_delete, delete_draft, delete_flow
from flows.lifecycle.drafts import (
    create_flow,
    duplicate_flow,
    edit_flow,
    export_document,
    rename_flow,
    save_draft,
)
from flows.lifecycle.launch import (
    finish_launch,
    finish_pending_launches,
    finish_pending_launches_counted,
    launch_flow,
    start_test,
)
from flows.lifecycle.state import DRAFT_WRITABLE, LIVE, NEVER_LAUNCHED
from flows.lifecycle.transitions import archive_flow, pause_flow, resume_flow, stop_test

__all__ = [
    "DRAFT_WRITABLE",
    "LIVE",
    "NEVER_LAUNCHED",
    "DraftConflict",
    "LifecycleError",
    "VersionNotFound",
    "archive_flow",
    "can_delete",
    "create_flow",
    "delete_draft",
    "delete_flow",
    "duplicate_flow",
    "edit_flow",
    "export_document",
    "finish_launch",
    "finish_pending_launches",
    "finish_pending_launches_counted",
    "launch_flow",
    "pause_flow",
    "rename_flow",
    "resume_flow",
    "save_draft",
    "start_test",
    "stop_test",
]
