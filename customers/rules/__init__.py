"""The rule language shared by segments, start filters, conditions and audiences.

A rule is JSON::

    {"all": [RULE, ...]}      every sub-rule matches (non-empty list)
    {"any": [RULE, ...]}      at least one sub-rule matches (non-empty list)
    {"not": RULE}             the sub-rule does not match
    {"field": PATH, "op": OP, "value": V}
    {"event": TYPE, "where": RULE|null, "within": DURATION|null, "op": OP, "value": N}

Nesting is limited to 10 levels (a lone leaf is level 1; an event leaf's
`where` nests inside it and counts too).

One rule has two implementations that must agree row for row: `evaluate()` on
facts loaded in Python (`load_facts`) and `to_q()`, a `Q` for a `Customer`
queryset, on SQLite and on PostgreSQL. tests/customers/test_rules_property.py
compares them on random data on both databases. The semantics below were chosen
so that all three can implement them exactly.

Paths
-----
``customer.<attr>``
    external_id, email, phone, first_name, last_name, timezone (strings, never
    null) and created_at (a datetime). An empty string counts as "no value" for
    exists/not_exists only; eq "" matches an empty attribute.
``customer.fields.<name>[.<name>...]``
    The customer's JSON custom fields; dotted names walk nested objects
    (``customer.fields.address.city``). Names are ASCII letters, digits, ``_`` and
    ``-`` (Django stores other characters \\u-escaped, and SQLite's JSON paths
    would not find them). A name never indexes into an array.
``event.<name>[.<name>...]``
    The payload of the trigger event, same rules as custom fields. Only the
    payload: the event's type and time are not paths. Without a trigger event
    (a schedule audience, a segment) every event path has no value, and
    `to_q()` refuses event paths with `RuleError`.
``subscription.<channel>``
    email, sms, mobile_push, web_push, webhook. The value is the status
    (subscribed, requires_confirmation, unsubscribed); a customer without a
    subscription row for the channel has no value.
``segment``
    Only ops ``in``/``not_in`` with a list of segment slugs: ``in`` matches a
    member of any of them, ``not_in`` a member of none. Static segments by
    membership rows, rule segments by evaluating their rule (recursively; a
    segment that refers back to itself raises `RuleError`). Unknown slugs have
    no members. Segment rules are evaluated without the trigger event.
``points``
    The current balance: the sum of entries that never expire or expire after
    now. Always has a value (0 without entries), so it always exists.
``promo_pool.<slug>.available``
    The number of codes of the pool not yet issued (0 for an unknown pool).

Values and types (type-strict)
------------------------------
JSON values keep their type: the number 5 equals 5 and 5.0 but never the
string "5" nor ``true``; the string "5" equals only "5". Strings compare
case-sensitively, byte for byte. JSON ``null`` and a missing key are the same
thing: "no value".

- ``eq V`` / ``ne V``: V is a string, number or boolean. ``eq`` needs a value of
  the same type equal to V; ``ne`` is exactly ``not eq``, so a missing value
  satisfies ``ne``.
- ``gt gte lt lte V``: V is a number; only numeric values compare (a string
  "10" is not greater than 5). Bounds are inclusive for gte/lte.
- ``in LIST`` / ``not_in LIST``: a non-empty list of strings/numbers/booleans;
  ``in`` is ``eq`` with any element, ``not_in`` is ``not in``.
- ``contains V``: a string value containing V as a substring (case-sensitive),
  or a JSON array with an element ``eq`` V. Anything else does not match.
- ``exists`` / ``not_exists``: the value is present and not null (for customer
  string attributes: not empty). ``value`` is ignored and may be left out.
- ``before V`` / ``after V``: V is an ISO date or date-time string. The field
  is a datetime column or a JSON string in the same format; anything else does
  not match. Comparisons are on UTC instants at one-second precision
  (fractions of a second are dropped).
- ``within_last D``: D is a non-negative ISO 8601 duration (``P7D``,
  ``PT12H``, ``P1M``) of at most 100 years; matches when the field's moment lies in
  [now - D, now] (both ends inclusive, one-second precision; months and years
  counted on the UTC calendar). ``now`` is `django.utils.timezone.now()`.

Event history
-------------
``{"event": TYPE, "where": RULE|null, "within": D|null, "op": OP, "value": N}``
counts the customer's events of type TYPE that occurred in [at - D, at]
(both ends inclusive, one-second precision like ``within_last``; without
``within`` every event up to ``at``) and match ``where``, a rule on the
counted event's payload (``event.<key>`` paths only, no event leaf inside).
OP is count_gte, count_lte, count_eq (``value`` a whole number 0..2**31-1),
exists or not_exists (``value`` ignored). ``at`` is the evaluation time:
``RuleFacts.clock`` when set (a run's clock in flows: conditions pass it,
start filters the trigger event's time), else ``now``. An event later than
``at`` never counts. Allowed everywhere, segments and audiences included (it
does not read the trigger event). SQL: a correlated EXISTS / COUNT subquery
on the (customer, type, occurred_at) index; Python: `load_facts` loads the
events of the counted types in the needed window, one query per type.

Date strings (values and stored fields)::

    YYYY-MM-DD                                   midnight UTC
    YYYY-MM-DD[T| ]HH:MM[:SS[.ffffff]][Z|±HH:MM]  no offset means UTC

Years 1000-2999, real calendar days only (2023-02-30 is not a date), offsets
up to ±14:59. A string that is not in this form is not a date.

Numbers in rule values are limited to ±2**53 so that Python floats, SQLite
reals and PostgreSQL numerics order them identically.

API
---
This package's root is the language's public API; code outside it imports
from here (the modules inside import each other by their full path):

- paths.py: `parse_path`, the constants, value readers (`parse_moment`,
  `parse_duration`) and `read_path`, THE reader of a PATH in rows already
  loaded (the customer row, the trigger event's payload);
- validate.py: `validate_rule(rule, allow_event=True)` lists problems;
- predicate.py: `compile_predicate(rule)` validates once and returns a
  predicate over `RuleFacts` (what a batch should use), `evaluate` is the
  one-shot form;
- facts.py: `load_facts` loads a batch, `evaluate_many` matches one,
  `value_at` reads one path for a condition's branches;
- sql.py: `to_q`, `segment_q` and `segment_customer_ids_queryset` select in SQL.

Errors: `RuleError` (customers/errors.py).
"""

from customers.errors import RuleError
from customers.rules.facts import evaluate_many, load_facts, value_at
from customers.rules.paths import (
    CHANNELS,
    CUSTOMER_DATETIME_ATTRS,
    CUSTOMER_STRING_ATTRS,
    EVENT_OPS,
    OPS,
    Path,
    parse_duration,
    parse_moment,
    parse_path,
    read_path,
)
from customers.rules.predicate import RuleFacts, compile_predicate, evaluate
from customers.rules.sql import payload_q, segment_customer_ids_queryset, segment_q, to_q
from customers.rules.validate import validate_rule

__all__ = [
    "CHANNELS",
    "CUSTOMER_DATETIME_ATTRS",
    "CUSTOMER_STRING_ATTRS",
    "EVENT_OPS",
    "OPS",
    "Path",
    "RuleError",
    "RuleFacts",
    "compile_predicate",
    "evaluate",
    "evaluate_many",
    "load_facts",
    "parse_duration",
    "payload_q",
    "parse_moment",
    "parse_path",
    "read_path",
    "segment_customer_ids_queryset",
    "segment_q",
    "to_q",
    "validate_rule",
    "value_at",
]
