"""A message that cannot be rendered within the render budget, or whose data
is nested too deep, fails alone with `render_error` (SPEC §12): the other
customers of the batch get theirs, and the tick goes on."""

from __future__ import annotations

import pytest
import time_machine

from channels.models import Message, Template
from customers.models import Customer
from flows.engine.tick import tick
from flows.models import Run
from tests.channels.test_render_budget import nested
from tests.flows.conftest import steps_document
from tests.flows.test_engine_actions_send import NOW, make_customer

pytestmark = pytest.mark.django_db


def launch_news(launched, *, text: str) -> None:
    Template.objects.create(slug="news", name="News", channel="email", subject="S", text=text)
    launched(steps_document([{"action": "send", "channel": "email", "template": "news"}]))


def test_a_message_whose_data_is_nested_too_deep_fails_alone(smtp_server, launched, post_events):
    make_customer("ann")
    make_customer("bob")
    # Stored before the API bounded nesting to 32 levels.
    Customer.objects.filter(external_id="bob").update(fields=nested(500))
    launch_news(launched, text="Hi {{ customer.first_name }}")

    with time_machine.travel(NOW, tick=False):
        post_events(["ann", "bob"])
        tick()

    messages = {m.customer.external_id: m for m in Message.objects.select_related("customer")}
    assert (messages["ann"].status, messages["ann"].reason) == ("sent", "")
    assert messages["bob"].status == "failed"
    assert messages["bob"].reason == "render_error: context: the data is nested more than 40 levels deep"
    runs = {run.customer.external_id: run for run in Run.objects.select_related("customer")}
    assert (runs["ann"].status, runs["bob"].status, runs["bob"].stop_reason) == (
        "completed",
        "stopped",
        "render_error",
    )
    assert len(smtp_server.envelopes) == 1


def test_a_message_past_the_render_budget_fails_alone(smtp_server, launched, post_events):
    make_customer("ann")
    make_customer("bob")
    # Loops over the event's items: fine for Ann's order, past the iteration
    # cap for Bob's (500 x 500 rounds).
    launch_news(
        launched, text="{% for a in event.items %}{% for b in event.items %}.{% endfor %}{% endfor %}"
    )

    with time_machine.travel(NOW, tick=False):
        post_events(["ann"], payload={"items": [1, 2]})
        post_events(["bob"], payload={"items": list(range(500))})
        tick()

    messages = {m.customer.external_id: m for m in Message.objects.select_related("customer")}
    assert (messages["ann"].status, messages["ann"].rendered["text"]) == ("sent", "....")
    assert (messages["bob"].status, messages["bob"].reason) == (
        "failed",
        "render_error: text: the loops would run more than 100,000 times in all",
    )
    assert Run.objects.get(customer__external_id="bob").stop_reason == "render_error"
