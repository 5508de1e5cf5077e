"""Marketer-facing words for what the engine and the validator say in
codes: every validation error gets a `text` beside its `field` and
`message` (which stay, for the API and as tooltips), and every stop reason
a sentence. "steps.0.template: missing: the slug of the template to send"
becomes "Step 1: choose a template to send".

The texts go through Django's translation (gettext_lazy); the rules below
match on the field path and the message's shape, most specific first, and
anything unforeseen still reads as a sentence (the field's label, then the
message without JSON paths) rather than as a path."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# Why a run stopped (Run.stop_reason, NodePass.stop_reason), for people.
STOP_REASONS = {
    "filter_failed": gettext_lazy("The customer did not pass the start filter."),
    "too_old": gettext_lazy("The event was too old when it arrived."),
    "frequency_limit": gettext_lazy(
        "The launch limit kept the customer out (they went through the flow recently)."
    ),
    "relevance_expired": gettext_lazy(
        "The steps were no longer relevant when their turn came, so nothing was sent."
    ),
    "flow_stopped": gettext_lazy("The flow was archived or its test stopped while the customer was in it."),
    "node_deleted": gettext_lazy("The customer's node is not in the new version of the flow."),
    "customer_missing": gettext_lazy("The customer no longer exists."),
    "dynamic_wait_value_missing": gettext_lazy("The date to wait for was missing in the customer's data."),
    "template_missing": gettext_lazy("The template to send does not exist (any more)."),
    "template_channel_mismatch": gettext_lazy("The template belongs to another channel."),
    "template_error": gettext_lazy("The template could not be filled in (an error in the template)."),
    "render_error": gettext_lazy("The message could not be written from the customer's data."),
    "promo_pool_empty": gettext_lazy("The promo pool had no free code left."),
    "promo_pool_missing": gettext_lazy("The promo pool does not exist (any more)."),
    "segment_missing": gettext_lazy("The segment does not exist (any more)."),
    "segment_not_static": gettext_lazy("Customers can only be added to or removed from a static segment."),
    "not_subscribed": gettext_lazy("The customer is not subscribed to the channel."),
    "invalid_field_value": gettext_lazy("The value to set does not fit the customer field."),
    "invalid_step": gettext_lazy("A step of the node is not valid."),
    "group_failed": gettext_lazy("A step failed, so the other steps of the node were not carried out."),
    "unknown_node_kind": gettext_lazy("The node is of a kind this server does not know."),
    "engine_error": gettext_lazy("The engine could not process this customer; the error is in the log."),
    "exit_criteria": gettext_lazy("The customer met the flow's exit criteria."),
    "audience_missing": gettext_lazy("The schedule's audience could not be selected."),
}

FIELD_LABELS = {
    "name": gettext_lazy("Name"),
    "timezone": gettext_lazy("Time zone"),
    "launch_limit": gettext_lazy("Launch limit"),
    "launch_limit.mode": gettext_lazy("Launch limit"),
    "launch_limit.period": gettext_lazy("Launch limit period"),
    "launch_limit.max_total": gettext_lazy("At most, in total"),
    "schedule.start_at": gettext_lazy("Starts"),
    "schedule.end_at": gettext_lazy("Ends"),
    "key": gettext_lazy("Key"),
    "kind": gettext_lazy("Kind"),
    "title": gettext_lazy("Title"),
    "event_type": gettext_lazy("Event"),
    "filter": gettext_lazy("Start filter"),
    "max_age": gettext_lazy("Maximum age of the event"),
    "recurrence": gettext_lazy("Repeats"),
    "audience": gettext_lazy("Audience"),
    "audience.segment": gettext_lazy("Audience segment"),
    "audience.rule": gettext_lazy("Audience rule"),
    "rule": gettext_lazy("Rule"),
    "attribute": gettext_lazy("Attribute"),
    "branches": gettext_lazy("Branches"),
    "variants": gettext_lazy("Variants"),
    "relevance": gettext_lazy("Relevant for"),
    "steps": gettext_lazy("Steps"),
    "mode": gettext_lazy("Wait mode"),
    "duration": gettext_lazy("Wait for"),
    "field": gettext_lazy("Date field"),
    "offset": gettext_lazy("Offset"),
    "window": gettext_lazy("Time window"),
    "max": gettext_lazy("Maximum"),
    "period": gettext_lazy("Period"),
    "alert_below": gettext_lazy("Alert below"),
    # The A/B winner setting (flows/nodes/ab_winner_config.py).
    "winner": gettext_lazy("Pick a winner"),
    "winner.metric": gettext_lazy("Pick a winner"),
    "winner.min_per_variant": gettext_lazy("Customers per variant first"),
    "winner.confidence": gettext_lazy("Confidence"),
    "winner.auto": gettext_lazy("Send new customers to the winner"),
    "edges": gettext_lazy("Lines"),
    "nodes": gettext_lazy("Nodes"),
    # Inside a step.
    "template": gettext_lazy("template"),
    "channel": gettext_lazy("channel"),
    "pool": gettext_lazy("promo pool"),
    "segment": gettext_lazy("segment"),
    "action": gettext_lazy("action"),
    "value": gettext_lazy("value"),
    "event": gettext_lazy("event"),
}

ITEM_NOUNS = {
    "steps": gettext_lazy("Step %(n)s"),
    "branches": gettext_lazy("Branch %(n)s"),
    "variants": gettext_lazy("Variant %(n)s"),
}


def where(field: str) -> str:
    """'steps.0.template' -> 'Step 1, template'; 'relevance' -> 'Relevant for'."""
    if not field:
        return ""
    if field in FIELD_LABELS:
        return str(FIELD_LABELS[field])
    parts = field.split(".")
    # Inside a rule the path is the rule builder's business: name the rule.
    for rule_field in ("audience.rule", "rule", "filter"):
        if field.startswith(rule_field + "."):
            return str(FIELD_LABELS[rule_field])
    words: list[str] = []
    index = 0
    while index < len(parts):
        part = parts[index]
        following = parts[index + 1] if index + 1 < len(parts) else None
        if part in ITEM_NOUNS and following is not None and following.isdigit():
            words.append(str(ITEM_NOUNS[part]) % {"n": int(following) + 1})
            index += 2
            continue
        if part.startswith("edges") or part.isdigit():
            index += 1
            continue
        label = FIELD_LABELS.get(".".join(parts[: index + 1])) or FIELD_LABELS.get(part)
        words.append(str(label) if label else part.replace("_", " "))
        index += 1
    return ", ".join(words) if words else str(FIELD_LABELS.get(parts[0], parts[0]))


Rule = tuple[str, str, Callable[[re.Match, str], str]]

# (field pattern, message pattern, text) — fullmatch on the field, search on the message.
RULES: list[Rule] = [
    (r"steps\.(\d+)\.template", r"^missing", lambda m, w: _("Step %(n)s: choose a template to send") % _n(m)),
    (
        r"steps\.(\d+)\.template",
        r"no template '([^']*)'",
        lambda m, w: (
            _("Step %(n)s: the template “%(slug)s” does not exist; choose another one")
            % {**_n(m), "slug": m.group("msg1")}
        ),
    ),
    (r"steps\.(\d+)\.channel", r"", lambda m, w: _("Step %(n)s: choose the channel of the template") % _n(m)),
    (r"steps\.(\d+)\.pool", r"^missing", lambda m, w: _("Step %(n)s: choose a promo pool") % _n(m)),
    (r"steps\.(\d+)\.segment", r"^missing", lambda m, w: _("Step %(n)s: choose a segment") % _n(m)),
    (r"steps", r"non-empty list", lambda m, w: _("Add at least one step (send a message, set a field…)")),
    (r"relevance", r"^missing", lambda m, w: _("Say how long the steps stay relevant (e.g. 1 day)")),
    (r"event_type", r"", lambda m, w: _("Choose the event that starts the flow")),
    (r"recurrence(\..*)?", r"^missing", lambda m, w: _("Choose when the schedule runs")),
    (
        r"audience",
        r"^missing|segment, a rule",
        lambda m, w: _("Choose who enters: a segment, a rule or both"),
    ),
    (
        r"audience\.segment",
        r"no segment '([^']*)'",
        lambda m, w: (
            _("The segment “%(slug)s” does not exist; choose another one") % {"slug": m.group("msg1")}
        ),
    ),
    (r"rule", r"^missing", lambda m, w: _("Give the rule that decides between yes and no")),
    (r"duration", r"^missing", lambda m, w: _("Say how long to wait (e.g. 1 day)")),
    (r"window", r"^missing", lambda m, w: _("Choose the time window to wait for")),
    (r"key", r"already has the key", lambda m, w: _("Another node has the same key: change one of them")),
    (
        r"kind",
        r"exactly one start node",
        lambda m, w: _("A flow has one start node: remove this one or the other"),
    ),
    (r"nodes", r"needs a start node", lambda m, w: _("Add a start node: an Event or a Schedule")),
    (r"nodes", r"at most", lambda m, w: _("Too many nodes: %(detail)s") % {"detail": m.string}),
    (r"edges", r"not reachable", lambda m, w: _("Nothing leads to this node: connect it to the flow")),
    (
        r"edges",
        r"cycle without a wait",
        lambda m, w: _("This loop has no Wait node: add one so customers do not go round without a pause"),
    ),
    (
        r"edges\.\d+\.to",
        r"is the start node",
        lambda m, w: _("Nothing may lead into the start node: remove that line"),
    ),
    (
        r"edges\.\d+\.(from|to)",
        r"no node '([^']*)'",
        lambda m, w: _("A line leads to or from a node that is not there"),
    ),
    (
        r"edges\.\d+\.port",
        r"already connected",
        lambda m, w: _("Two lines leave the same exit: keep one of them"),
    ),
    (r"edges\.\d+\.port", r"has no port", lambda m, w: _("A line leaves an exit the node does not have")),
    (r"launch_limit\.period", r"^missing", lambda m, w: _("Launch limit: choose the period (e.g. 7 days)")),
    (
        r"launch_limit\.max_total",
        r"",
        lambda m, w: _("At most, in total: enter a whole number of 1 or more, or leave it empty"),
    ),
    (r"schedule\.end_at", r"after start_at", lambda m, w: _("The end must be after the start")),
    (r"(.*\.)?timezone", r"", lambda m, w: _("%(where)s: choose a time zone from the list") % {"where": w}),
    (
        r"(variants|branches)",
        r"add up to 100, not (\d+)",
        lambda m, w: _("The percentages must add up to 100 (now %(total)s)") % {"total": m.group("msg1")},
    ),
]

# Shapes of messages that any field may get.
GENERIC: list[tuple[str, Callable[[re.Match, str], str]]] = [
    (
        r"is not an ISO 8601 duration|must be a positive duration|duration must be",
        lambda m, w: _("%(where)s: enter a length of time, e.g. 2 hours or 3 days") % {"where": w},
    ),
    (
        r"is not an ISO 8601 date|date and time string",
        lambda m, w: _("%(where)s: enter a date and a time") % {"where": w},
    ),
    (
        r"^missing: (?P<what>.*)",
        lambda m, w: _("%(where)s is missing: %(what)s") % {"where": w, "what": _plain(m.group("what"))},
    ),
    (
        r"^unknown field",
        lambda m, w: _("%(where)s: this setting is not used by this kind of node; remove it") % {"where": w},
    ),
    (
        r"^must be one of (?P<what>.*)",
        lambda m, w: _("%(where)s: choose one of %(what)s") % {"where": w, "what": m.group("what")},
    ),
    (
        r"^must be an integer from (?P<a>[\d,]+) to (?P<b>[\d,]+)",
        lambda m, w: (
            _("%(where)s: enter a whole number from %(a)s to %(b)s")
            % {"where": w, "a": m.group("a"), "b": m.group("b")}
        ),
    ),
    (r"^must be a non-empty list", lambda m, w: _("%(where)s: add at least one") % {"where": w}),
    (r"^must be ", lambda m, w: _("%(where)s: %(message)s") % {"where": w, "message": _plain(m.string)}),
]


def _n(match: re.Match) -> dict[str, int]:
    return {"n": int(match.group(1)) + 1}


def _plain(text: str) -> str:
    """A message without JSON shapes and ISO codes: `e.g. P1D` reads `e.g. 1 day`."""
    text = re.sub(r"\(e\.g\. [^)]*[{}][^)]*\)", "", text)
    for code, words in (
        ("PT24H", "24 hours"),
        ("PT2H", "2 hours"),
        ("P1D", "1 day"),
        ("P3D", "3 days"),
        ("P7D", "7 days"),
    ):
        text = text.replace(code, words)
    return text.strip()


def explain(error: dict) -> str:
    """The marketer's sentence for one validation error {node, field, message}."""
    field = error.get("field") or ""
    message = str(error.get("message") or "")
    label = where(field) or _("The flow")
    for field_pattern, message_pattern, make in RULES:
        field_match = re.fullmatch(field_pattern, field)
        if field_match is None:
            continue
        message_match = re.search(message_pattern, message)
        if message_match is None:
            continue
        return make(_Merged(field_match, message_match), label)
    for pattern, make in GENERIC:
        match = re.search(pattern, message)
        if match is not None:
            return make(match, label)
    return f"{label}: {_plain(message)}" if field else _plain(message)


class _Merged:
    """The field's groups by number and the message's as msg1, msg2…; `string` is the message."""

    def __init__(self, field_match: re.Match, message_match: re.Match):
        self.field_match = field_match
        self.message_match = message_match
        self.string = message_match.string

    def group(self, name):
        if isinstance(name, str) and name.startswith("msg"):
            return self.message_match.group(int(name[3:]))
        return self.field_match.group(name)


def with_texts(errors: Iterable[dict]) -> list[dict]:
    """The errors, each with its `text` for people (the code stays)."""
    return [{**error, "text": explain(error)} for error in errors]


def stop_reason_text(reason: str | None) -> str:
    """'filter_failed' -> 'The customer did not pass the start filter.'; a
    failed send's "code: detail" keeps its detail."""
    if not reason:
        return ""
    code, _sep, detail = reason.partition(":")
    text = STOP_REASONS.get(code.strip())
    if text is None:
        return reason
    return f"{text} ({detail.strip()})" if detail.strip() else str(text)
