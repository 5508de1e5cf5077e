"""Hypothesis strategies for valid maestra.flow/1 documents: every node kind and
every config variant of SPEC §5, wired as a chain from the start node.

The documents are valid against CONTEXT (the templates, segments and pools it
names), so validation must find nothing in them."""

from __future__ import annotations

from hypothesis import strategies as st

from flows.document import FORMAT, WEEKDAYS
from flows.nodes.base import ValidationContext

CHANNELS = ("email", "sms", "mobile_push", "web_push", "webhook")
CONTEXT = ValidationContext(
    templates={f"t-{channel}": channel for channel in CHANNELS},
    segments={"static-seg": "static", "rule-seg": "rule"},
    pools={"pool"},
)
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu")

# Bounds the validators enforce (SPEC §12); the strategies reach them, so the
# engine test (test_engine_extremes.py) runs what is just still accepted.
MAX_INT = 2**31 - 1  # integer columns: a launch cap, a limitation's max, a points amount
MAX_NESTING = 32  # levels of JSON in a document, a payload, customer fields
LONGEST_DURATIONS = ["P100Y", "P1200M", "P36500D", "PT876000H", "PT3153600000S", "P99Y11M30DT23H59M59S"]

# Any text the product stores: valid UTF-8 (no lone surrogates) without NUL
# (PostgreSQL refuses it; validation too).
text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 _-ÄéЖ", min_size=1, max_size=10).filter(
    str.strip
)
# Stored events have their type stripped, so a type never begins or ends with a space.
event_types = names.map(str.strip)
big_numbers = st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324, MAX_INT])
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | big_numbers
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def nested(draw, levels: int, leaf=json_scalars):
    """A value exactly `levels` containers deep (objects and lists): deep but
    allowed. One draw for the whole spine keeps it cheap."""
    value = draw(leaf)
    for key in draw(st.lists(st.sampled_from(["a", "é", "", "[]"]), min_size=levels, max_size=levels)):
        value = [value] if key == "[]" else {key: value}
    return value


# A step's value or payload sits at level 7 of its document (document, nodes,
# node, config, steps, step, value), so it may nest 26 levels itself.
STEP_VALUE_LEVELS = MAX_NESTING - 6
step_values = json_values | nested(STEP_VALUE_LEVELS)
positive_durations = st.sampled_from(
    ["P1D", "PT24H", "PT30M", "P1W", "P1M", "P1Y2M3DT4H5M6S", "PT0.5S", *LONGEST_DURATIONS]
)
any_durations = positive_durations | st.sampled_from(
    ["-P3D", "-PT2H", "PT0S", "P0D", "-P100Y", "-PT876000H", "-P1200M"]
)
times = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
weekday_lists = st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True)


def optional(key: str, strategy):
    """A one-item dict or an empty one: the key is sometimes left out (defaults apply)."""
    return st.one_of(st.just({}), strategy.map(lambda value: {key: value}))


def merged(*parts):
    def merge(dicts):
        result = {}
        for part in dicts:
            result.update(part)
        return result

    return st.tuples(*parts).map(merge)


customer_leaves = st.one_of(
    st.builds(lambda v: {"field": "customer.email", "op": "eq", "value": v}, text),
    st.builds(
        lambda v: {"field": "customer.fields.tier", "op": "in", "value": v},
        st.lists(text, min_size=1, max_size=3),
    ),
    st.just({"field": "subscription.email", "op": "eq", "value": "subscribed"}),
    st.builds(lambda v: {"field": "points", "op": "gte", "value": v}, st.integers(-(2**53), 2**53)),
    st.builds(
        lambda v: {"field": "customer.fields.seen", "op": "within_last", "value": v},
        st.sampled_from(["PT0S", "P7D", *LONGEST_DURATIONS]),
    ),
    st.just({"field": "segment", "op": "in", "value": ["static-seg", "rule-seg"]}),
    st.just({"field": "promo_pool.pool.available", "op": "gt", "value": 0}),
)
event_leaves = st.one_of(
    st.just({"field": "event.total", "op": "exists"}),
    st.builds(lambda v: {"field": "event.total", "op": "lt", "value": v}, st.integers(-(2**53), 2**53)),
    st.builds(
        lambda v: {"field": "event.at", "op": "within_last", "value": v}, st.sampled_from(LONGEST_DURATIONS)
    ),
)


def rules_of(leaves, *, max_leaves: int = 4):
    """Rules of these leaves nested in all/any/not (the customers rule tests use it too)."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda items: {"all": items}),
            st.lists(inner, min_size=1, max_size=3).map(lambda items: {"any": items}),
            inner.map(lambda item: {"not": item}),
        ),
        max_leaves=max_leaves,
    )


rules = rules_of(customer_leaves | event_leaves)
# A schedule audience has no trigger event.
audience_rules = rules_of(customer_leaves)


def unique_names(min_size: int, max_size: int, exclude: tuple[str, ...] = ()):
    return st.lists(
        names.filter(lambda n: n not in exclude), min_size=min_size, max_size=max_size, unique=True
    )


@st.composite
def percentages(draw, count: int) -> list[int]:
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=count - 1, max_size=count - 1)))
    bounds = [0, *cuts, 100]
    return [bounds[i + 1] - bounds[i] for i in range(count)]


# --- Configs per kind ---------------------------------------------------------------

event_configs = merged(
    st.builds(lambda t: {"event_type": t}, event_types),
    optional("filter", st.none() | rules),
    optional("max_age", positive_durations),
)

recurrences = st.one_of(
    st.builds(lambda t: {"every": "day", "at": t}, times),
    merged(
        st.just({"every": "week"}),
        optional("interval", st.integers(1, 52)),
        st.builds(lambda d, t: {"weekdays": d, "at": t}, weekday_lists, times),
    ),
    st.builds(
        lambda days, t: {"every": "month", "days": days, "at": t},
        st.lists(st.integers(1, 31) | st.just("last"), min_size=1, max_size=5, unique=True),
        times,
    ),
    st.builds(
        lambda n, day, t: {"every": "month", "nth_weekday": {"n": n, "weekday": day}, "at": t},
        st.sampled_from([1, 2, 3, 4, 5, -1]),
        st.sampled_from(WEEKDAYS),
        times,
    ),
    st.sampled_from(
        [
            "0 10 * * *",
            "30 9 * * mon,thu",
            "*/15 8-18 1,15 * 1-5",
            "0 0 1 jan,jul *",
            "0 0 29 2 *",  # leap days only
            "0 0 */31 jan mon",  # January 1sts that are Mondays: up to 12 years apart
            "0 0 31 * *",
            "59 23 30,31 1-12/2 7",
        ]
    ).map(lambda cron: {"cron": cron}),
)
audiences = st.one_of(
    st.just({"segment": "rule-seg"}),
    st.builds(lambda r: {"rule": r}, audience_rules),
    st.builds(lambda r: {"segment": "static-seg", "rule": r}, audience_rules),
    st.builds(lambda r: {"segment": None, "rule": r}, audience_rules),
)
schedule_configs = merged(
    st.builds(lambda r: {"recurrence": r}, recurrences),
    optional("timezone", st.sampled_from(("flow", *TIMEZONES))),
    st.builds(lambda a: {"audience": a}, audiences),
)

# The rule language limits numbers to ±2**53 (exact in floats and both databases).
rule_numbers = st.integers(-(2**53), 2**53)
ranges = st.one_of(
    st.builds(lambda low, span: {"min": low, "max": low + span}, st.integers(-100, 100), st.integers(0, 100)),
    st.builds(lambda low: {"min": low}, st.floats(-1e6, 1e6)),
    st.builds(lambda high: {"max": high}, rule_numbers),
)
# What a branch may compare, by the kind of attribute (as the rule op eq would).
BRANCH_VALUES = {
    "customer.fields.tier": text | rule_numbers | st.booleans() | ranges,
    "event.total": text | rule_numbers | st.booleans() | ranges,
    "points": rule_numbers | ranges,
    "customer.email": text,
    "subscription.email": st.sampled_from(["subscribed", "requires_confirmation", "unsubscribed"]),
}


@st.composite
def branch_condition_configs(draw) -> dict:
    attribute = draw(st.sampled_from(sorted(BRANCH_VALUES)))
    branch_names = draw(unique_names(1, 6, exclude=("other",)))
    return {
        "attribute": attribute,
        "branches": [
            {"name": name, "values": draw(st.lists(BRANCH_VALUES[attribute], min_size=1, max_size=4))}
            for name in branch_names
        ],
    }


condition_configs = st.one_of(st.builds(lambda r: {"rule": r}, rules), branch_condition_configs())

actions = st.one_of(
    st.sampled_from(CHANNELS).map(lambda c: {"action": "send", "channel": c, "template": f"t-{c}"}),
    st.just({"action": "issue_promo_code", "pool": "pool"}),
    merged(
        st.builds(
            lambda amount: {"action": "points", "amount": amount},
            (st.integers(-10_000, 10_000) | st.sampled_from([MAX_INT, -MAX_INT])).filter(bool),
        ),
        optional("expires_in", st.none() | positive_durations),
        optional("reason", text),
    ),
    st.builds(
        lambda f, v: {"action": "set_field", "field": f, "value": v},
        names.filter(lambda n: "." not in n),
        step_values,
    ),
    st.sampled_from(["add_to_segment", "remove_from_segment"]).map(
        lambda a: {"action": a, "segment": "static-seg"}
    ),
    merged(
        st.builds(lambda t: {"action": "emit_event", "event_type": t}, event_types),
        optional(
            "payload",
            st.dictionaries(text, json_values, max_size=3)
            | nested(STEP_VALUE_LEVELS - 1).map(lambda v: {"deep": v}),
        ),
    ),
)
steps_configs = st.builds(
    lambda relevance, steps: {"relevance": relevance, "steps": steps},
    positive_durations,
    st.lists(actions, min_size=1, max_size=4),
)


@st.composite
def shares(draw, *, max_count: int | None, with_control: bool) -> list[dict]:
    count = draw(st.integers(2, max_count or 8))
    items = [
        {"name": name, "percent": percent}
        for name, percent in zip(draw(unique_names(count, count)), draw(percentages(count)))
    ]
    if with_control:
        control = draw(st.none() | st.integers(0, count - 1))
        for index, item in enumerate(items):
            flag = draw(st.sampled_from([None, False])) if index != control else True
            if flag is not None:
                item["control"] = flag
    return items


splitter_configs = shares(max_count=None, with_control=False).map(lambda b: {"branches": b})
ab_test_configs = shares(max_count=5, with_control=True).map(lambda v: {"variants": v})


@st.composite
def windows(draw) -> dict:
    # to < from is an overnight window, to == from a whole day (flows/nodes/wait/windows.py).
    window = {"weekdays": draw(weekday_lists), "from": draw(times), "to": draw(times)}
    window.update(draw(optional("timezone", st.sampled_from(("flow", "customer", *TIMEZONES)))))
    return window


wait_configs = st.one_of(
    merged(
        st.builds(lambda d: {"mode": "fixed", "duration": d}, positive_durations),
        optional("window", st.none() | windows()),
    ),
    merged(
        st.builds(
            lambda f: {"mode": "dynamic", "field": f},
            st.sampled_from(["customer.fields.birthday", "customer.created_at", "event.delivery_date"]),
        ),
        optional("offset", any_durations),
        optional("window", st.none() | windows()),
    ),
    st.builds(lambda w: {"mode": "window", "window": w}, windows()),
)


@st.composite
def limitation_configs(draw) -> dict:
    maximum = draw(st.integers(1, 10_000) | st.just(MAX_INT))
    config = {"max": maximum}
    config.update(
        draw(
            optional(
                "period",
                st.none()
                | st.builds(
                    lambda unit, every: {"unit": unit, "every": every},
                    st.sampled_from(["hours", "days", "calendar_days", "weeks"]),
                    st.integers(1, 52) | st.just(1000),
                ),
            )
        )
    )
    config.update(draw(optional("alert_below", st.none() | st.integers(0, maximum - 1))))
    return config


CONFIGS = {
    "event": event_configs,
    "schedule": schedule_configs,
    "condition": condition_configs,
    "steps": steps_configs,
    "splitter": splitter_configs,
    "wait": wait_configs,
    "ab_test": ab_test_configs,
    "limitation": limitation_configs(),
}
MIDDLE_KINDS = ("condition", "steps", "splitter", "wait", "ab_test", "limitation")


def first_port(kind: str, config: dict) -> str:
    from flows.nodes import get_kind

    return get_kind(kind).ports(config)[0]


@st.composite
def documents(draw) -> dict:
    """A valid document: a start node and a chain through every middle kind
    (in a drawn order, some kinds more than once)."""
    start_kind = draw(st.sampled_from(["event", "schedule"]))
    middle = draw(st.permutations(MIDDLE_KINDS)) + draw(st.lists(st.sampled_from(MIDDLE_KINDS), max_size=4))
    nodes = []
    for index, kind in enumerate([start_kind, *middle]):
        node = {"key": f"n{index}", "kind": kind}
        node.update(draw(optional("title", text)))
        node["config"] = draw(CONFIGS[kind])
        node.update(
            draw(
                optional(
                    "position",
                    st.none()
                    | st.builds(
                        lambda x, y: {"x": x, "y": y},
                        st.integers(-5000, 5000),
                        st.floats(-1e4, 1e4, allow_nan=False),
                    ),
                )
            )
        )
        nodes.append(node)
    edges = []
    for source, target in zip(nodes, nodes[1:]):
        port = first_port(source["kind"], source["config"])
        edge = {"from": source["key"], "to": target["key"]}
        if port != "next" or draw(st.booleans()):
            edge["port"] = port
        edges.append(edge)

    doc = {"format": FORMAT, "name": draw(names)}
    doc.update(draw(optional("description", text)))
    doc.update(draw(optional("timezone", st.sampled_from(TIMEZONES))))
    doc.update(draw(optional("launch_limit", launch_limits())))
    doc.update(
        draw(
            optional(
                "schedule",
                st.sampled_from(
                    [
                        {"start_at": None, "end_at": None},
                        {"start_at": "2025-01-01T00:00:00+01:00"},
                        {"end_at": "2030-06-01T10:00:00Z"},
                        {"start_at": "2025-01-01T00:00:00+00:00", "end_at": "2025-01-01T00:00:01+00:00"},
                    ]
                ),
            )
        )
    )
    doc["nodes"] = nodes
    doc["edges"] = edges
    return doc


@st.composite
def launch_limits(draw) -> dict:
    mode = draw(st.sampled_from(["once", "every_time", "periodic"]))
    limit = {"mode": mode}
    if mode == "periodic":
        limit["period"] = draw(positive_durations)
    else:
        limit.update(draw(optional("period", st.none())))
    limit.update(draw(optional("max_total", st.none() | st.integers(1, 10**6) | st.just(MAX_INT))))
    return limit


# --- One node per config variant of SPEC §5 (deterministic coverage) ---------------

WINDOW = {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "from": "10:00", "to": "18:00", "timezone": "flow"}
RULE = {"field": "subscription.email", "op": "eq", "value": "requires_confirmation"}
VARIANTS = [
    ("event", {"event_type": "order_created", "filter": None, "max_age": "P7D"}),
    ("event", {"event_type": "order_created", "filter": RULE}),
    ("schedule", {"recurrence": {"every": "day", "at": "10:00"}, "timezone": "flow", "audience": {"segment": "rule-seg"}}),
    ("schedule", {"recurrence": {"every": "week", "interval": 2, "weekdays": ["mon", "thu"], "at": "09:30"}, "timezone": "Europe/Berlin", "audience": {"segment": None, "rule": RULE}}),
    ("schedule", {"recurrence": {"every": "month", "days": [1, 15, "last"], "at": "08:00"}, "audience": {"segment": "static-seg", "rule": RULE}}),
    ("schedule", {"recurrence": {"every": "month", "nth_weekday": {"n": 2, "weekday": "tue"}, "at": "08:00"}, "audience": {"segment": "static-seg", "rule": None}}),
    ("schedule", {"recurrence": {"cron": "0 10 * * 1-5"}, "timezone": "UTC", "audience": {"segment": "static-seg"}}),
    ("condition", {"rule": RULE}),
    ("condition", {"attribute": "customer.fields.tier", "branches": [{"name": "gold", "values": ["gold"]}, {"name": "big", "values": [{"min": 100, "max": 1000}, 5]}]}),
    ("steps", {"relevance": "P1D", "steps": [
        {"action": "send", "channel": "email", "template": "t-email"},
        {"action": "send", "channel": "sms", "template": "t-sms"},
        {"action": "send", "channel": "mobile_push", "template": "t-mobile_push"},
        {"action": "send", "channel": "web_push", "template": "t-web_push"},
        {"action": "send", "channel": "webhook", "template": "t-webhook"},
        {"action": "issue_promo_code", "pool": "pool"},
        {"action": "points", "amount": 100, "expires_in": "P30D", "reason": "welcome"},
        {"action": "points", "amount": -50, "expires_in": None, "reason": "correction"},
        {"action": "set_field", "field": "vip", "value": True},
        {"action": "add_to_segment", "segment": "static-seg"},
        {"action": "remove_from_segment", "segment": "static-seg"},
        {"action": "emit_event", "event_type": "vip_reached", "payload": {}},
    ]}),
    ("splitter", {"branches": [{"name": "1", "percent": 50}, {"name": "2", "percent": 50}]}),
    ("wait", {"mode": "fixed", "duration": "PT24H", "window": None}),
    ("wait", {"mode": "fixed", "duration": "P3D", "window": WINDOW}),
    ("wait", {"mode": "dynamic", "field": "customer.fields.birthday", "offset": "-P3D", "window": None}),
    ("wait", {"mode": "dynamic", "field": "event.delivery_date", "offset": "PT2H", "window": {**WINDOW, "timezone": "customer"}}),
    ("wait", {"mode": "window", "window": {**WINDOW, "timezone": "America/New_York"}}),
    ("ab_test", {"variants": [{"name": "A", "percent": 45}, {"name": "B", "percent": 45}, {"name": "control", "percent": 10, "control": True}]}),
    ("limitation", {"max": 1000, "period": None, "alert_below": None}),
    *[("limitation", {"max": 10, "period": {"unit": unit, "every": 1}, "alert_below": 2}) for unit in ("hours", "days", "calendar_days", "weeks")],
]  # fmt: skip


def every_variant_documents() -> list[dict]:
    """Valid documents that together hold every config variant above: one per
    start variant, each with the chain of every middle variant."""
    middle = [(kind, config) for kind, config in VARIANTS if kind not in ("event", "schedule")]
    docs = []
    for index, start in enumerate(v for v in VARIANTS if v[0] in ("event", "schedule")):
        nodes = [
            {
                "key": f"v{i}",
                "kind": kind,
                "title": f"{kind} {i}",
                "config": config,
                "position": {"x": i * 10, "y": 0.5},
            }
            for i, (kind, config) in enumerate([start, *middle])
        ]
        edges = [
            {"from": a["key"], "to": b["key"], "port": first_port(a["kind"], a["config"])}
            for a, b in zip(nodes, nodes[1:])
        ]
        docs.append(
            {
                "format": FORMAT,
                "name": f"Every variant {index}",
                "timezone": "Europe/Berlin",
                "launch_limit": {"mode": "periodic", "period": "P7D", "max_total": 3},
                "schedule": {"start_at": "2025-01-01T00:00:00+01:00", "end_at": None},
                "nodes": nodes,
                "edges": edges,
            }
        )
    return docs
