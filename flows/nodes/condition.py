"""Condition: a yes/no rule, or branches on one attribute (first match wins)."""

from __future__ import annotations

from typing import Any

from customers.rules import RuleError, compile_predicate, load_facts, parse_path, validate_rule
from flows.document.fields import port_name_problem
from flows.engine.batch import Batch
from flows.nodes.base import NodeKind, Problem, ValidationContext, register, unknown_fields

MAX_BRANCHES = 50
# The exit of a customer no branch matched; no branch may take its name.
OTHER_PORT = "other"


def rule_problems(
    rule: Any, field: str, ctx: ValidationContext, *, allow_event: bool = True
) -> list[Problem]:
    """Problems of a rule (the rule language of customers/rules.py) found at
    `field` of a config, plus segments and promo pools it names that do not exist."""

    found = validate_rule(rule, allow_event=allow_event)
    if not found:
        found = _missing_references(rule, "", ctx)
    return [Problem(f"{field}.{path}" if path else field, message) for path, message in found]


def _missing_references(rule: dict, at: str, ctx: ValidationContext) -> list[tuple[str, str]]:
    """Unknown segment and pool slugs in a valid rule (the rule language treats
    them as empty; in a flow they are a mistake)."""
    prefix = f"{at}." if at else ""
    if "not" in rule:
        return _missing_references(rule["not"], f"{prefix}not", ctx)
    for combinator in ("all", "any"):
        if combinator in rule:
            return [
                problem
                for index, child in enumerate(rule[combinator])
                for problem in _missing_references(child, f"{prefix}{combinator}.{index}", ctx)
            ]
    if "event" in rule:  # an event-history leaf names no segment or pool
        return []
    field = rule["field"]
    if field == "segment":
        return [
            (f"{prefix}value.{index}", f"no segment {slug!r}")
            for index, slug in enumerate(rule["value"])
            if slug not in ctx.segments
        ]
    if field.startswith("promo_pool.") and field.split(".")[1] not in ctx.pools:
        return [(f"{prefix}field", f"no promo code pool {field.split('.')[1]!r}")]
    return []


@register
class Condition(NodeKind):
    kind = "condition"
    label = "Condition"

    def validate(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        # Not NodeKind.validate: the allowed keys depend on the form (rule, or
        # attribute and branches), and so does the unknown-field message.
        if "rule" in config:
            problems = [
                Problem(key, "unknown field (a condition has either rule, or attribute and branches)")
                for key in config
                if key != "rule"
            ]
            if config["rule"] is None:
                return [*problems, Problem("rule", "missing: a condition needs a rule")]
            return problems + rule_problems(config["rule"], "rule", ctx)
        if "attribute" not in config and "branches" not in config:
            return [Problem("rule", "missing: give a rule (yes/no) or an attribute with branches")]
        problems = unknown_fields(config, ("attribute", "branches"))
        attribute = config.get("attribute")
        attribute_problems = _attribute_problems(attribute)
        problems += attribute_problems
        return problems + _branches_problems(
            config.get("branches"), None if attribute_problems else attribute
        )

    def ports(self, config: dict) -> list[str]:
        if "branches" not in config:
            return ["yes", "no"]
        branches = config["branches"] if isinstance(config["branches"], list) else []
        names = [b["name"] for b in branches if isinstance(b, dict) and isinstance(b.get("name"), str)]
        return [*names, OTHER_PORT]

    def process(self, batch: Batch) -> None:
        config = batch.config
        if "rule" in config:
            tests = [("yes", config["rule"])]
            fallback = "no"
        else:
            tests = [
                (branch["name"], branch_rule(config["attribute"], branch["values"]))
                for branch in config["branches"]
            ]
            fallback = OTHER_PORT
        # One load for every rule of the node: facts for the whole batch at once.
        facts = load_facts(
            {"any": [rule for _, rule in tests]},
            sorted({run.customer_id for run in batch.runs}),
            clocks=[run.clock for run in batch.runs],  # event history counts back from the run's clock
        )
        # Validated and compiled once for the batch, not once per customer.
        predicates = [(name, compile_predicate(rule)) for name, rule in tests]
        now = batch.now
        for run in batch.runs:
            customer_facts = facts.get(run.customer_id)
            if customer_facts is None:
                batch.stop(run, "customer_missing")
                continue
            event = batch.event_of(run)
            # Set on the customer's facts for this run's evaluation only (the
            # next run of the same customer sets its own): no copy per run.
            customer_facts.event = (event or {}).get("payload") if event else None
            customer_facts.clock = run.clock
            port = next((name for name, matches in predicates if matches(customer_facts, now)), fallback)
            batch.exit(run, port)


def _attribute_problems(attribute: Any) -> list[Problem]:
    if not isinstance(attribute, str) or not attribute.strip():
        return [
            Problem("attribute", "missing: the attribute the branches compare (e.g. customer.fields.tier)")
        ]
    # The attribute is a path of the rule language: conditions accept exactly
    # the paths rules accept.
    try:
        path = parse_path(attribute)
    except RuleError as error:
        return [Problem("attribute", str(error))]
    if path.kind in ("segment", "datetime_attr"):
        return [Problem("attribute", f"branches cannot compare {attribute}; use a rule instead")]
    return []


def _branches_problems(branches: Any, attribute: str | None) -> list[Problem]:
    if not isinstance(branches, list) or not branches:
        return [Problem("branches", "must be a non-empty list of {name, values}")]
    problems = []
    if len(branches) > MAX_BRANCHES:
        problems.append(Problem("branches", f"at most {MAX_BRANCHES} branches"))
    seen: set[str] = set()
    for index, branch in enumerate(branches):
        prefix = f"branches.{index}"
        if not isinstance(branch, dict):
            problems.append(Problem(prefix, "a branch must be an object {name, values}"))
            continue
        problems += unknown_fields(branch, ("name", "values"), prefix)
        name = branch.get("name")
        if message := port_name_problem(name):
            problems.append(Problem(f"{prefix}.name", message))
        elif name == OTHER_PORT:
            problems.append(
                Problem(f"{prefix}.name", f'"{OTHER_PORT}" is reserved for customers no branch matches')
            )
        elif name in seen:
            problems.append(Problem(f"{prefix}.name", f"another branch is already named {name!r}"))
        else:
            seen.add(name)
        problems += _values_problems(branch.get("values"), f"{prefix}.values", attribute)
    return problems


def _values_problems(values: Any, field: str, attribute: str | None) -> list[Problem]:
    """A branch matches a value equal to one of `values` (compared like the rule
    op `eq`), or within a numeric range {"min", "max"} (bounds inclusive,
    either one may be left out). `attribute` is None when it is invalid."""

    if not isinstance(values, list) or not values:
        return [Problem(field, "must be a non-empty list of values")]
    problems = []
    for index, value in enumerate(values):
        where = f"{field}.{index}"
        if isinstance(value, dict):
            problems += _range_problems(value, where, attribute)
        elif attribute is not None:
            problems += [
                Problem(where, message)
                for path, message in validate_rule({"field": attribute, "op": "eq", "value": value})
                if path == "value"
            ]
        elif not isinstance(value, (str, int, float)):
            problems.append(Problem(where, "must be a string, a number, a boolean or {min, max}"))
    return problems


def _range_problems(value: dict, field: str, attribute: str | None) -> list[Problem]:
    problems = unknown_fields(value, ("min", "max"), field)
    bounds = {key: value[key] for key in ("min", "max") if value.get(key) is not None}
    if not bounds:
        return [*problems, Problem(field, "a range needs min and/or max")]
    if attribute is not None and validate_rule({"field": attribute, "op": "gte", "value": 0}):
        return [*problems, Problem(field, f"{attribute} is not numeric; a range compares numbers")]
    for key, bound in bounds.items():
        # Bounds are numbers as the rule ops gte/lte take them.
        for _path, message in validate_rule({"field": "points", "op": "gte", "value": bound}):
            problems.append(Problem(f"{field}.{key}", message))
    if not problems and len(bounds) == 2 and bounds["min"] > bounds["max"]:
        problems.append(Problem(field, "min must not be greater than max"))
    return problems


def branch_rule(attribute: str, values: list) -> dict:
    """A branch as a rule: equal to any value, or inside any {min, max} range (inclusive)."""
    options = []
    for value in values:
        if isinstance(value, dict):
            bounds = (
                [{"field": attribute, "op": "gte", "value": value["min"]}]
                if value.get("min") is not None
                else []
            )
            if value.get("max") is not None:
                bounds.append({"field": attribute, "op": "lte", "value": value["max"]})
            options.append({"all": bounds})
        else:
            options.append({"field": attribute, "op": "eq", "value": value})
    return {"any": options}
