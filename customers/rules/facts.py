"""What a rule needs and loading it in a batch: `load_facts` reads only what a
rule (and the rule segments it names) looks at, in a fixed number of queries
whatever the number of customers; `evaluate_many` and `value_at` work on the
loaded facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from customers import queries
from customers.errors import RuleError
from customers.models import Customer, Event, Segment
from customers.rules.paths import parse_duration, parse_path, read_keys, read_path, truncate, within_bounds
from customers.rules.predicate import RuleFacts, compile_predicate
from customers.rules.validate import require_valid, require_valid_segment_rule
from maestra import sql
from maestra.durations import Duration


def _leaves(node: Any):
    if "all" in node or "any" in node:
        for child in node.get("all") or node.get("any"):
            yield from _leaves(child)
    elif "not" in node:
        yield from _leaves(node["not"])
    elif "event" in node:
        yield None, node  # an event-history leaf (its where reads the counted events only)
    else:
        yield parse_path(node["field"]), node


@dataclass
class _Needs:
    attrs: set[str] = field(default_factory=set)
    fields: bool = False
    channels: set[str] = field(default_factory=set)
    points: bool = False
    pools: set[str] = field(default_factory=set)
    # Event history: type -> HistoryNeed (the window and whether payloads are read).
    events: dict[str, HistoryNeed] = field(default_factory=dict)

    def add_rule(self, rule: Any) -> set[str]:
        """Record what `rule` reads; returns the segment slugs it names."""
        named: set[str] = set()
        for path, node in _leaves(rule):
            if path is None:
                need = self.events.setdefault(node["event"], HistoryNeed())
                need.add(node)
            elif path.source == "customer":
                self.attrs.add(path.name)
            elif path.source == "fields":
                self.fields = True
            elif path.source == "subscription":
                self.channels.add(path.name)
            elif path.source == "points":
                self.points = True
            elif path.source == "promo_pool":
                self.pools.add(path.name)
            elif path.source == "segment":
                named.update(node["value"])
        return named


@dataclass
class HistoryNeed:
    """The events of one type a rule counts: the windows back from the
    evaluation time (`unbounded`: one leaf counts all of them) and whether a
    where reads payloads."""

    windows: list[Duration] = field(default_factory=list)
    unbounded: bool = False
    payload: bool = False

    def add(self, node: dict) -> None:
        self.payload = self.payload or node.get("where") is not None
        if node.get("within") is None:
            self.unbounded = True
        else:
            self.windows.append(parse_duration(node["within"]))

    def since(self, earliest: datetime) -> datetime | None:
        """The first moment an evaluation at or after `earliest` counts from."""
        if self.unbounded or not self.windows:
            return None
        return min(within_bounds(window, earliest)[0] for window in self.windows)


@dataclass(frozen=True)
class SegmentRow:
    """A segment as the evaluators need it (also the SQL compiler's cache)."""

    id: int
    slug: str
    kind: str
    rule: Any


def _load_segments(rule: Any, needs: _Needs) -> dict[str, SegmentRow]:
    """Every segment the rule names, directly or through rule segments: one query
    per level of segment nesting, whatever the number of customers. A slug that
    names no segment is left out (it has no members)."""
    segments: dict[str, SegmentRow] = {}
    asked: set[str] = set()
    pending = needs.add_rule(rule)
    while pending:
        asked |= pending
        rows = Segment.objects.filter(slug__in=sorted(pending)).values_list("id", "slug", "kind", "rule")
        pending = set()
        for segment_id, slug, kind, segment_rule in rows:
            segments[slug] = SegmentRow(segment_id, slug, kind, segment_rule)
            if kind == Segment.Kind.RULE:
                require_valid_segment_rule(slug, segment_rule)
                pending |= needs.add_rule(segment_rule)
        pending -= asked
    return segments


def _rule_segment_order(segments: dict[str, SegmentRow]) -> list[SegmentRow]:
    """Rule segments, each after the rule segments its rule names; raises on a cycle."""
    order: list[SegmentRow] = []
    state: dict[str, str] = {}

    def visit(slug: str, trail: list[str]) -> None:
        row = segments.get(slug)
        if row is None or row.kind != Segment.Kind.RULE or state.get(slug) == "done":
            return
        if state.get(slug) == "visiting":
            raise RuleError("segments refer to each other: " + " -> ".join([*trail, slug]))
        state[slug] = "visiting"
        for _, node in _leaves(row.rule):
            if node.get("field") == "segment":
                for inner in node["value"]:
                    visit(inner, [*trail, slug])
        state[slug] = "done"
        order.append(row)

    for slug in sorted(segments):
        visit(slug, [])
    return order


def load_facts(
    rule: Any,
    customer_ids: list[int],
    *,
    events: dict[int, dict] | None = None,
    clocks: list[datetime] | None = None,
) -> dict[int, RuleFacts]:
    """RuleFacts for each id in `customer_ids`, loading only what `rule` (and the
    rule segments it names) reads, in a fixed number of queries: one for the
    segments per level of segment nesting, then at most one each for customer
    columns, subscriptions, static memberships, points and promo pools.
    `events` maps customer id -> trigger event payload. Ids without a customer
    row are left out of the result. Event-history leaves add one query per
    event type counted: `clocks` are the evaluation times the facts will be
    used at (the runs' clocks, set per run as RuleFacts.clock), now by default;
    the events of the counted windows around them are loaded."""
    require_valid(rule)
    return _load_facts(rule, customer_ids, events=events, now=timezone.now(), clocks=clocks)


def _load_facts(
    rule: Any,
    customer_ids: list[int],
    *,
    events: dict[int, dict] | None,
    now: datetime,
    clocks: list[datetime] | None = None,
) -> dict[int, RuleFacts]:
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    needs = _Needs()
    segments = _load_segments(rule, needs)
    segment_order = _rule_segment_order(segments)
    events = events or {}
    facts: dict[int, RuleFacts] = {}
    # Always one customer query, even for a rule reading no column: it drops
    # ids whose customer is gone.
    columns = sorted(needs.attrs) + (["fields"] if needs.fields else [])
    for row in Customer.objects.filter(id__in=sql.in_values(ids)).values("id", *columns):
        customer_id = row.pop("id")
        one = facts[customer_id] = RuleFacts(event=events.get(customer_id))
        if needs.fields:
            fields_value = row.pop("fields")
            one.fields = fields_value if isinstance(fields_value, dict) else {}
        one.customer = row
    if not facts:
        return facts
    ids = list(facts)
    if needs.channels:
        statuses = queries.subscription_statuses(customer_ids=ids, channels=needs.channels)
        for customer_id, by_channel in statuses.items():
            facts[customer_id].subscriptions = by_channel
    static = {row.id: row.slug for row in segments.values() if row.kind == Segment.Kind.STATIC}
    if static:
        memberships = queries.static_memberships(customer_ids=ids, segment_ids=static)
        for customer_id, segment_ids in memberships.items():
            facts[customer_id].segments = {static[segment_id] for segment_id in segment_ids}
    if needs.points:
        for customer_id, balance in queries.points_balances(customer_ids=ids, at=now).items():
            facts[customer_id].points = balance
    if needs.pools:
        free = queries.free_code_counts(pool_slugs=needs.pools)
        available = {slug: free.get(slug, 0) for slug in needs.pools}
        for one in facts.values():
            one.pool_available = available
    if needs.events:
        _load_history(facts, needs.events, clocks=[*(clocks or ()), now])
    # Rule segments after the segments they depend on, so nested ones are known.
    for row in segment_order:
        matches = compile_predicate(row.rule, allow_event=False)
        for one in facts.values():
            if matches(one, now):  # segment rules never read the event (validated)
                one.segments.add(row.slug)
    return facts


def _load_history(
    facts: dict[int, RuleFacts], needs: dict[str, HistoryNeed], *, clocks: list[datetime]
) -> None:
    """The counted events of every customer in `facts`: one query per event
    type, served by the (customer, type, occurred_at) index."""
    ids = list(facts)
    until = truncate(max(clocks)) + timedelta(seconds=1)
    for event_type, need in needs.items():
        rows = Event.objects.filter(
            customer_id__in=sql.in_values(ids), type=event_type, occurred_at__lt=until
        )
        since = need.since(min(clocks))
        if since is not None:
            rows = rows.filter(occurred_at__gte=since)
        columns = (
            ("customer_id", "occurred_at", "payload") if need.payload else ("customer_id", "occurred_at")
        )
        for row in rows.order_by().values_list(*columns):
            payload = row[2] if need.payload else None
            facts[row[0]].history.setdefault(event_type, []).append((truncate(row[1]), payload))


def evaluate_many(rule: Any, customer_ids: list[int], *, events: dict[int, dict] | None = None) -> set[int]:
    """The ids among `customer_ids` whose customers match `rule`."""
    matches = compile_predicate(rule)
    now = timezone.now()  # one clock for the points balance and the date ops
    facts = _load_facts(rule, customer_ids, events=events, now=now)
    return {customer_id for customer_id, one in facts.items() if matches(one, now)}


def value_at(path_text: str, facts: RuleFacts) -> Any:
    """The value the rule language sees at a PATH for one customer, None when
    there is none (for a condition node's branches on one attribute). Load the
    facts with a rule naming the path, e.g. {"field": path, "op": "exists"}.
    `segment` has no single value and raises RuleError."""
    path = parse_path(path_text)
    if path.kind == "segment":
        raise RuleError("segment has no single value; use a rule with op in/not_in")
    if path.source == "fields":
        return read_keys(facts.fields, path.keys)
    if path.source in ("customer", "event"):
        return read_path(path, customer=facts.customer, event=facts.event)
    if path.kind == "subscription":
        return facts.subscriptions.get(path.name)
    if path.source == "points":
        return facts.points
    return facts.pool_available.get(path.name, 0)
