"""The Flow page's lifecycle buttons. Each button runs a lifecycle service
(flows/lifecycle/), so the admin writes the same audit entries and starts the
same launch task as the API; the model's transition methods are never called
from here.

LifecycleTransitionsMixin is ours, on purpose: django-fsm-2's FSMAdminMixin
applies a transition by calling the model's method and saving the instance,
and bending it to call a service meant overriding its private methods. The
mixin only reads the public django-fsm API (the transitions available to the
user) to decide which buttons to show."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django_fsm import TransitionNotAllowed

from flows.admin.rendering import lifecycle_error_message
from flows.errors import LifecycleError
from flows.lifecycle.launch import launch_flow, start_test
from flows.lifecycle.transitions import archive_flow, pause_flow, resume_flow, stop_test
from flows.models import Flow

# The admin's transition buttons and the service each one runs, in the order
# they are shown. A transition not listed here (the ones the system
# performs) is refused.
TRANSITION_SERVICES = {
    "launch": launch_flow,
    "start_test": start_test,
    "stop_test": stop_test,
    "pause": pause_flow,
    "resume": resume_flow,
    "archive": archive_flow,
}

TRANSITION_DONE = {
    "launch": "Launch started: the draft goes live as soon as the worker (or flows_tick) finishes it.",
    "start_test": "The draft runs as a test version.",
    "stop_test": "The test is stopped; a new draft holds its graph.",
    "pause": "The flow is paused: no new runs; waiting runs stay where they are.",
    "resume": "The flow is active again.",
    "archive": "The flow is archived; its runs in flight were stopped.",
}

# Transitions that cannot be undone ask first, in a dialog on the canvas page.
TRANSITION_CONFIRM = {
    "archive": {
        "title": _("Archive this flow?"),
        "message": _(
            "Archiving is permanent: runs in progress stop at once, and the flow can never be "
            "launched or resumed again. Its statistics and history stay."
        ),
        "action": _("Archive the flow"),
    },
}

# Launching needs a draft: a flow without one shows neither button.
NEEDS_DRAFT = ("launch", "start_test")


class LifecycleTransitionsMixin:
    """For FlowAdmin: the buttons a user may press now, the URL a button
    posts to (admin:flows_flow_transition), and the change form's submit
    button named `transition_param`. Both run the button's lifecycle service
    and tell the user what happened."""

    # The name the canvas's buttons and the change form post (kept from
    # django-fsm's admin, which the templates and tests already use).
    transition_param = "_fsm_transition_to"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/transition/<str:transition_name>/",
                self.admin_site.admin_view(self.transition_view),
                name="flows_flow_transition",
            ),
            *super().get_urls(),
        ]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        # The status only moves through the lifecycle, never through the form.
        if obj is not None and "status" not in fields:
            fields.append("status")
        return fields

    def available_transitions(self, request, flow: Flow) -> list[tuple[str, str]]:
        """(name, label) of the buttons `request.user` may press on `flow` now,
        in TRANSITION_SERVICES order: the model's transitions available from
        the flow's status (django-fsm's public API) that the admin offers."""
        if flow is None:
            return []
        has_draft = flow.draft is not None
        order = list(TRANSITION_SERVICES)
        shown = []
        for transition in flow.get_available_user_status_transitions(user=request.user):
            name = transition.name
            if name not in TRANSITION_SERVICES or not transition.custom.get("admin", True):
                continue
            if name in NEEDS_DRAFT and not has_draft:
                continue
            label = transition.custom.get("label") or name
            if name == "launch" and flow.is_live:
                label = "Launch draft"
            shown.append((name, label))
        shown.sort(key=lambda item: order.index(item[0]))
        return shown

    def apply_transition(self, request, flow: Flow, transition_name: str) -> bool:
        """Run the button's service; its refusal becomes an error message."""
        service = TRANSITION_SERVICES.get(transition_name)
        if service is None:
            self.message_user(request, f"“{transition_name}” cannot be done from the admin.", messages.ERROR)
            return False
        try:
            service(flow=flow, user=request.user)
        except LifecycleError as error:
            self.message_user(request, lifecycle_error_message(error, flow=flow), messages.ERROR)
            return False
        except TransitionNotAllowed as error:
            self.message_user(request, str(error), messages.ERROR)
            return False
        self.message_user(request, TRANSITION_DONE[transition_name], messages.SUCCESS)
        return True

    def transition_view(self, request, object_id, transition_name):
        # No transition of a Flow takes a form, so this URL only applies one (POST).
        flow = self.get_object(request, object_id)
        if flow is None:
            raise Http404
        change_url = reverse("admin:flows_flow_change", args=[flow.pk])
        if request.method != "POST":
            return HttpResponseRedirect(change_url)
        if not self.has_change_permission(request, flow):
            raise PermissionDenied
        self.apply_transition(request, flow, transition_name)
        return HttpResponseRedirect(change_url)

    def response_change(self, request, obj):
        transition_name = request.POST.get(self.transition_param)
        if not transition_name:
            return super().response_change(request, obj)
        self.apply_transition(request, obj, transition_name)
        context = {"preserved_filters": self.get_preserved_filters(request), "opts": self.model._meta}
        return HttpResponseRedirect(add_preserved_filters(context, request.path))
