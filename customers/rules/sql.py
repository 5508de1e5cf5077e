"""A rule compiled to SQL: `to_q` gives a `Q` for a Customer queryset,
`segment_q` the members of a segment. It must agree row for row with the
Python predicate (customers/rules/predicate.py) on SQLite and on PostgreSQL;
tests/customers/test_rules_property.py compares them on random data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import BooleanField, Count, Exists, Expression, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact, GreaterThanOrEqual, LessThanOrEqual
from django.utils import timezone

from customers import queries
from customers.errors import RuleError
from customers.models import Customer, Event, Segment, SegmentMembership, Subscription
from customers.rules.facts import SegmentRow
from customers.rules.paths import (
    DATE_PATTERN,
    MOMENT_OPS,
    NEGATED,
    NUMERIC_OPS,
    is_number,
    parse_duration,
    parse_moment,
    parse_path,
    truncate,
    within_bounds,
)
from customers.rules.validate import require_valid, require_valid_segment_rule, validate_rule


@dataclass(frozen=True)
class _Param:
    value: Any


def _flatten(pieces: Any) -> list:
    flat: list = []
    for piece in pieces:
        if isinstance(piece, list | tuple):
            flat.extend(_flatten(piece))
        else:
            flat.append(piece)
    return flat


class _Predicate(Expression):
    """A boolean SQL condition written per database vendor around one source
    expression (the `fields` column, a points subquery, ...). It is wrapped in
    COALESCE(…, false) so it is never NULL: NOT, AND and OR then behave exactly
    like Python's two-valued logic."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, spec: Any, source: Any) -> None:
        super().__init__()
        self.spec = spec
        self.source = source

    def get_source_expressions(self) -> list:
        return [self.source]

    def set_source_expressions(self, exprs: list) -> None:
        (self.source,) = exprs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list]:
        source_sql, source_params = compiler.compile(self.source)
        parts: list[str] = []
        params: list = []
        for piece in _flatten(self.spec.render(connection.vendor)):
            if piece is _SOURCE:
                parts.append(source_sql)
                params.extend(source_params)
            elif isinstance(piece, _Param):
                parts.append("%s")
                params.append(piece.value)
            else:
                parts.append(piece)
        false = "FALSE" if connection.vendor == "postgresql" else "0"
        return f"COALESCE(({''.join(parts)}), {false})", params


_SOURCE = object()  # where the source expression's SQL goes in a rendered template


def _sql_number(value: Any, vendor: str) -> Any:
    # A float goes to PostgreSQL as the decimal Python prints for it, so numeric
    # comparisons order exactly like Python's (shortest repr round-trips).
    if vendor == "postgresql" and isinstance(value, float):
        return Decimal(repr(value))
    return value


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _sql(template: str, **parts: Any) -> list:
    """Pieces for `_Predicate`: the template's {name}s replaced by SQL pieces
    (lists, `_SOURCE`, `_Param`). Literal braces such as '{}' stay as they are."""
    chunks = _PLACEHOLDER.split(template)
    return [parts[chunk] if index % 2 else chunk for index, chunk in enumerate(chunks)]


@dataclass(frozen=True)
class _JsonSpec:
    """A condition on one JSON value inside the `fields` column."""

    keys: tuple[str, ...]
    op: str  # eq in gt gte lt lte contains exists before after within_last
    values: tuple  # the rule value(s); for moment ops the UTC bounds as "YYYY-MM-DD HH:MM:SS"

    def render(self, vendor: str) -> list:
        if vendor == "postgresql":
            return self._postgresql()
        if vendor == "sqlite":
            return self._sqlite()
        raise RuleError(f"rules are not compiled for the {vendor} database")

    # SQLite: json_type() tells integer/real/text/true/false/null/array/object;
    # json_extract() gives the SQL value (booleans become 1/0, hence the types).
    # Keys are quoted, so a name never indexes an array.
    def _sqlite(self) -> list:
        path = _Param("$" + "".join(f'."{key}"' for key in self.keys))
        kind = _sql("json_type({source}, {path})", source=_SOURCE, path=path)
        value = _sql("json_extract({source}, {path})", source=_SOURCE, path=path)
        op = self.op
        if op == "exists":
            return _sql("{kind} <> 'null'", kind=kind)
        if op in ("eq", "in"):
            return _any_of([_sqlite_eq(kind, value, item) for item in self.values])
        if op in NUMERIC_OPS:
            return _sql(
                "CASE WHEN {kind} IN ('integer', 'real') THEN {value}{op}{bound} ELSE 0 END",
                kind=kind, value=value, op=_SQL_OPS[op], bound=_Param(self.values[0]),
            )  # fmt: skip
        if op == "contains":
            expected = self.values[0]
            in_text = _sql("instr({value}, {expected}) > 0", value=value, expected=_Param(expected))
            in_array = _sql(
                "EXISTS (SELECT 1 FROM json_each({source}, {path}) AS rule_item WHERE {match})",
                source=_SOURCE, path=path, match=_sqlite_eq("rule_item.type", "rule_item.value", expected),
            )  # fmt: skip
            return _sql(
                "CASE WHEN {kind} = 'text' THEN {in_text} WHEN {kind} = 'array' THEN {in_array} ELSE 0 END",
                kind=kind, in_text=in_text if isinstance(expected, str) else "0", in_array=in_array,
            )  # fmt: skip
        # A date string as "YYYY-MM-DD HH:MM:SS" in UTC, else NULL. Through
        # julianday(), 2023-02-30 comes back as 2023-03-02, so comparing the day
        # with itself rejects non-days (date() of the bare text would echo it).
        # The fraction is cut off before strftime, which would round it.
        moment = _sql(
            "CASE WHEN {kind} = 'text' AND {value} REGEXP {pattern}"
            " AND date(julianday(substr({value}, 1, 10))) = substr({value}, 1, 10)"
            " THEN strftime({format}, CASE WHEN substr({value}, 20, 1) = '.'"
            " THEN substr({value}, 1, 19) || ltrim(substr({value}, 21), '0123456789')"
            " ELSE {value} END) END",
            kind=kind, value=value, pattern=_Param(DATE_PATTERN), format=_Param("%Y-%m-%d %H:%M:%S"),
        )  # fmt: skip
        return _moment_compare(moment, self.op, [_Param(bound) for bound in self.values])

    # PostgreSQL: `->` with a text key never indexes an array (like SQLite's
    # quoted keys and Python's dict walk). Casts sit behind CASE: AND does not
    # promise an evaluation order, and a failed cast is an error, not a NULL.
    def _postgresql(self) -> list:
        value = ["(", _SOURCE, *[[" -> ", _Param(key)] for key in self.keys], ")"]
        kind = _sql("jsonb_typeof({value})", value=value)
        text = _sql("({value} #>> '{}')", value=value)
        op = self.op
        if op == "exists":
            return _sql("{kind} <> 'null'", kind=kind)
        if op in ("eq", "in"):
            return _any_of([_postgresql_eq(kind, value, text, item) for item in self.values])
        if op in NUMERIC_OPS:
            return _sql(
                "CASE WHEN {kind} = 'number' THEN CAST({value} AS numeric){op}{bound} ELSE FALSE END",
                kind=kind, value=value, op=_SQL_OPS[op], bound=_Param(_sql_number(self.values[0], "postgresql")),
            )  # fmt: skip
        if op == "contains":
            expected = self.values[0]
            in_text = _sql("strpos({text}, {expected}) > 0", text=text, expected=_Param(expected))
            # @> with a one-element array: some element equals it (type-strict, 5 = 5.0).
            in_array = _sql(
                "{value} @> CAST({items} AS jsonb)", value=value, items=_Param(json.dumps([expected]))
            )
            return _sql(
                "CASE WHEN {kind} = 'string' THEN {in_text} WHEN {kind} = 'array' THEN {in_array} ELSE FALSE END",
                kind=kind, in_text=in_text if isinstance(expected, str) else "FALSE", in_array=in_array,
            )  # fmt: skip
        # The day-of-month check keeps 2023-02-30 away from the cast, which would raise.
        moment = _sql(
            "CASE WHEN {kind} = 'string' AND {text} ~ {pattern} THEN"
            " CASE WHEN CAST(substr({text}, 9, 2) AS integer) <= EXTRACT(DAY FROM"
            " CAST(substr({text}, 1, 7) || '-01' AS date) + INTERVAL '1 month' - INTERVAL '1 day')"
            " THEN date_trunc('second', CASE WHEN {text} ~ {offset}"
            " THEN CAST({text} AS timestamptz) AT TIME ZONE 'UTC' ELSE CAST({text} AS timestamp) END)"
            " END END",
            kind=kind, text=text, pattern=_Param(DATE_PATTERN), offset=_Param(_OFFSET_PATTERN),
        )  # fmt: skip
        return _moment_compare(
            moment,
            self.op,
            [_sql("CAST({bound} AS timestamp)", bound=_Param(bound)) for bound in self.values],
        )


_OFFSET_PATTERN = r"(Z|[+-][0-9]{2}:[0-9]{2})\Z"
_SQL_OPS = {"gt": " > ", "gte": " >= ", "lt": " < ", "lte": " <= ", "eq": " = "}


def _any_of(conditions: list) -> list:
    pieces: list = ["("]
    for index, condition in enumerate(conditions):
        pieces += [" OR " if index else "", "(", condition, ")"]
    return [*pieces, ")"]


def _moment_compare(moment: list, op: str, bounds: list) -> list:
    if op == "before":
        return _sql("({moment}) < {bound}", moment=moment, bound=bounds[0])
    if op == "after":
        return _sql("({moment}) > {bound}", moment=moment, bound=bounds[0])
    return _sql("({moment}) BETWEEN {low} AND {high}", moment=moment, low=bounds[0], high=bounds[1])


def _sqlite_eq(kind: Any, value: Any, expected: Any) -> list:
    if isinstance(expected, bool):
        return _sql("{kind} = {name}", kind=kind, name=_Param("true" if expected else "false"))
    if is_number(expected):
        return _sql("({kind} IN ('integer', 'real') AND {value} = {expected})", kind=kind, value=value, expected=_Param(expected))  # fmt: skip
    return _sql(
        "({kind} = 'text' AND {value} = {expected})", kind=kind, value=value, expected=_Param(expected)
    )


def _postgresql_eq(kind: Any, value: Any, text: Any, expected: Any) -> list:
    if isinstance(expected, bool):
        return _sql("({kind} = 'boolean' AND {text} = {name})", kind=kind, text=text, name=_Param("true" if expected else "false"))  # fmt: skip
    if is_number(expected):
        return _sql(
            "CASE WHEN {kind} = 'number' THEN CAST({value} AS numeric) = {expected} ELSE FALSE END",
            kind=kind, value=value, expected=_Param(_sql_number(expected, "postgresql")),
        )  # fmt: skip
    return _sql(
        "({kind} = 'string' AND {text} = {expected})", kind=kind, text=text, expected=_Param(expected)
    )


@dataclass(frozen=True)
class _CompareSpec:
    """`source OP value` for a number (points, free codes); `in` takes several values."""

    op: str  # eq in gt gte lt lte
    values: tuple

    def render(self, vendor: str) -> list:
        numbers = [_Param(_sql_number(value, vendor)) for value in self.values]
        if self.op == "in":
            listed = [[", " if index else "", number] for index, number in enumerate(numbers)]
            return _sql("{source} IN ({listed})", source=_SOURCE, listed=listed)
        return _sql("{source}{op}{bound}", source=_SOURCE, op=_SQL_OPS[self.op], bound=numbers[0])


@dataclass(frozen=True)
class _ContainsSpec:
    """Case-sensitive substring test on a text column (LIKE folds case on SQLite)."""

    value: str

    def render(self, vendor: str) -> list:
        function = "strpos" if vendor == "postgresql" else "instr"
        return [function, "(", _SOURCE, ", ", _Param(self.value), ") > 0"]


_NEVER = Q(pk__in=[])
_ALWAYS = ~Q(pk__in=[])


def to_q(rule: Any) -> Q:
    """A `Q` selecting the customers that match `rule` (a Customer queryset
    filter), agreeing with `evaluate()` on SQLite and PostgreSQL. Raises
    RuleError for invalid rules, event paths (there is no event in SQL) and
    segments that refer to each other."""
    require_valid(rule)
    return _SqlCompiler(now=timezone.now()).node(rule, trail=())


def payload_q(rule: Any) -> Q:
    """A `Q` on an `Event` queryset: the events whose payload matches `rule`,
    a rule of `event.<payload key>` paths only (the `where` of an
    event-history leaf; flow goals and exit criteria filter with it). Raises
    RuleError for anything else."""
    errors = validate_rule({"event": "x", "where": rule, "op": "exists"})
    if errors:
        path, message = errors[0]
        raise RuleError(f"{path.removeprefix('where.')}: {message}")
    return _SqlCompiler(now=timezone.now(), payload=True).node(rule, trail=())


@dataclass
class _SqlCompiler:
    now: datetime
    segments: dict[str, SegmentRow | None] = field(default_factory=dict)
    # Compiling an event-history leaf's where: event paths read Event.payload.
    payload: bool = False

    def node(self, node: dict, *, trail: tuple[str, ...]) -> Q:
        if "all" in node or "any" in node:
            children = [self.node(child, trail=trail) for child in node.get("all") or node.get("any")]
            combined = children[0]
            for child in children[1:]:
                combined = combined & child if "all" in node else combined | child
            return combined
        if "not" in node:
            return ~self.node(node["not"], trail=trail)
        if "event" in node:
            return self.event_history(node)
        return self.leaf(node, trail=trail)

    def event_history(self, node: dict) -> Q:
        """A correlated subquery on the customer's events of one type inside
        [now - within, now] (one-second precision, like within_last) matching
        the where: EXISTS for exists/not_exists, COUNT(*) for the counts."""
        events = Event.objects.filter(
            customer_id=OuterRef("pk"),
            type=node["event"],
            occurred_at__lt=truncate(self.now) + timedelta(seconds=1),
        )
        if node.get("within") is not None:
            events = events.filter(
                occurred_at__gte=within_bounds(parse_duration(node["within"]), self.now)[0]
            )
        if node.get("where") is not None:
            events = events.filter(_SqlCompiler(now=self.now, payload=True).node(node["where"], trail=()))
        op = node["op"]
        if op in ("exists", "not_exists"):
            found = Q(Exists(events))
            return found if op == "exists" else ~found
        counted = events.order_by().values("customer_id").annotate(total=Count("pk")).values("total")
        total = Coalesce(Subquery(counted), 0)
        compare = {"count_gte": GreaterThanOrEqual, "count_lte": LessThanOrEqual, "count_eq": Exact}[op]
        return Q(compare(total, node["value"]))

    def leaf(self, node: dict, *, trail: tuple[str, ...]) -> Q:
        path = parse_path(node["field"])
        op, expected = node["op"], node.get("value")
        if op in NEGATED:
            return ~self.leaf({**node, "op": NEGATED[op]}, trail=trail)
        if path.source == "event" and self.payload:
            return Q(_Predicate(_JsonSpec(path.keys, op, self.json_values(op, expected)), F("payload")))
        if path.source == "event":
            raise RuleError(
                f"{node['field']}: event fields only exist for a trigger event, not in a customer query"
            )
        if path.kind == "string_attr":
            return self.string_attr(path.name, op, expected)
        if path.kind == "datetime_attr":
            return self.datetime_attr(path.name, op, expected)
        if path.source == "fields":
            return Q(_Predicate(_JsonSpec(path.keys, op, self.json_values(op, expected)), F("fields")))
        if path.kind == "subscription":
            subscriptions = Subscription.objects.filter(customer_id=OuterRef("pk"), channel=path.name)
            if op == "eq":
                subscriptions = subscriptions.filter(status=expected)
            elif op == "in":
                subscriptions = subscriptions.filter(status__in=expected)
            return Q(Exists(subscriptions))
        if path.kind == "segment":
            return self.segments_q(expected, trail=trail)
        if op == "exists":
            return _ALWAYS  # points and free codes are numbers, 0 at least
        if path.source == "points":
            source = queries.points_balance_expression(at=self.now)
        else:
            source = queries.free_code_count_expression(pool_slug=path.name)
        values = tuple(expected) if op == "in" else (expected,)
        return Q(_Predicate(_CompareSpec(op, values), source))

    def string_attr(self, name: str, op: str, expected: Any) -> Q:
        if op == "eq":
            return Q(**{name: expected})
        if op == "in":
            return Q(**{f"{name}__in": expected})
        if op == "contains":
            return Q(_Predicate(_ContainsSpec(expected), F(name)))
        return ~Q(**{name: ""})  # exists

    def datetime_attr(self, name: str, op: str, expected: Any) -> Q:
        # The column keeps microseconds; comparing with whole-second bounds this
        # way equals comparing the truncated moment (see the module docstring).
        if op == "exists":
            return _ALWAYS  # created_at is NOT NULL
        if op == "before":
            return Q(**{f"{name}__lt": parse_moment(expected)})
        if op == "after":
            return Q(**{f"{name}__gte": parse_moment(expected) + timedelta(seconds=1)})
        low, high = within_bounds(parse_duration(expected), self.now)
        return Q(**{f"{name}__gte": low, f"{name}__lt": high + timedelta(seconds=1)})

    def json_values(self, op: str, expected: Any) -> tuple:
        if op in MOMENT_OPS:
            return (_bound_text(parse_moment(expected)),)
        if op == "within_last":
            return tuple(_bound_text(bound) for bound in within_bounds(parse_duration(expected), self.now))
        if op == "in":
            return tuple(expected)
        return (expected,)

    def segments_q(self, slugs: list[str], *, trail: tuple[str, ...]) -> Q:
        unknown = [slug for slug in slugs if slug not in self.segments]
        if unknown:
            found = {
                slug: SegmentRow(segment_id, slug, kind, rule)
                for segment_id, slug, kind, rule in Segment.objects.filter(slug__in=unknown).values_list(
                    "id", "slug", "kind", "rule"
                )
            }
            for slug in unknown:
                self.segments[slug] = found.get(slug)
        rows = [self.segments[slug] for slug in dict.fromkeys(slugs) if self.segments[slug] is not None]
        static_ids = [row.id for row in rows if row.kind != Segment.Kind.RULE]
        parts: list[Q] = []
        if static_ids:
            members = SegmentMembership.objects.filter(customer_id=OuterRef("pk"), segment_id__in=static_ids)
            parts.append(Q(Exists(members)))
        for row in rows:
            if row.kind == Segment.Kind.RULE:
                parts.append(self.rule_segment_q(row, trail=trail))
        if not parts:
            return _NEVER
        combined = parts[0]
        for part in parts[1:]:
            combined |= part
        return combined

    def rule_segment_q(self, row: SegmentRow, *, trail: tuple[str, ...]) -> Q:
        if row.slug in trail:
            raise RuleError("segments refer to each other: " + " -> ".join([*trail, row.slug]))
        require_valid_segment_rule(row.slug, row.rule)
        return self.node(row.rule, trail=(*trail, row.slug))


def _bound_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def segment_q(segment: Segment) -> Q:
    """The members of `segment`: membership rows of a static segment, the
    customers matching the rule of a rule segment."""
    if segment.kind == Segment.Kind.RULE:
        compiler = _SqlCompiler(now=timezone.now())
        row = SegmentRow(segment.id, segment.slug, segment.kind, segment.rule)
        compiler.segments[segment.slug] = row
        return compiler.rule_segment_q(row, trail=())
    return Q(Exists(SegmentMembership.objects.filter(customer_id=OuterRef("pk"), segment_id=segment.id)))


def segment_customer_ids_queryset(slug: str) -> QuerySet:
    """Ids of the customers in the segment `slug` (a values_list queryset, usable
    as a subquery). Raises RuleError for an unknown slug."""
    segment = Segment.objects.filter(slug=slug).first()
    if segment is None:
        raise RuleError(f"unknown segment {slug!r}")
    return Customer.objects.filter(segment_q(segment)).values_list("id", flat=True)
