"""Semantic validation of a well-formed flow document (SPEC §4).

Runs on every save of a draft; a flow with errors cannot be launched. Each
error names the node (None for the document as a whole) and the field, so the
editor can link straight to what is wrong:
    {"node": "ask", "field": "steps.0.template", "message": "no template 'x'"}
    {"node": None, "field": "launch_limit.period", "message": "..."}

Expects a document `parse_document` accepted; it never raises on one.
"""

from __future__ import annotations

from typing import Any

from flows.document.fields import (
    LAUNCH_LIMIT_MODES,
    datetime_problem,
    duration_problem,
    is_int,
    timezone_problem,
)
from flows.document.format import document_settings, graph_rows
from flows.engine.goals import document_problems as goal_problems
from flows.nodes import get_kind
from flows.nodes.base import NodeKind, ValidationContext
from maestra.sql import MAX_INT

MAX_NODES = 150


def validate_document(doc: dict, ctx: ValidationContext | None = None) -> list[dict]:
    """Every semantic error of `doc`, in a deterministic order: settings, then
    nodes in document order, then edges, then the shape of the graph.
    Loads the templates/segments/pools once when `ctx` is not given."""
    if ctx is None:
        ctx = ValidationContext.load()
    errors: list[dict] = []

    def add(node: str | None, field: str, message: str) -> None:
        errors.append({"node": node, "field": field, "message": message})

    _settings_errors(doc, add)
    errors += goal_problems(doc)  # goal and exit (SPEC §13): the validator the engine reads them with
    nodes, edges = graph_rows(doc)
    if len(nodes) > MAX_NODES:
        add(None, "nodes", f"a flow can have at most {MAX_NODES} nodes, this one has {len(nodes)}")

    kinds = _node_errors(nodes, ctx, add)
    usable_edges = _edge_errors(edges, nodes, kinds, add)
    _graph_errors(kinds, usable_edges, add)
    return errors


# --- Settings ----------------------------------------------------------------------


def _settings_errors(doc: dict, add) -> None:
    if "timezone" in doc and (message := timezone_problem(doc["timezone"])):
        add(None, "timezone", message)

    launch_limit = doc.get("launch_limit") or {}
    mode = launch_limit.get("mode", "every_time")
    if mode not in LAUNCH_LIMIT_MODES:
        add(None, "launch_limit.mode", f"must be one of {', '.join(LAUNCH_LIMIT_MODES)}")
    period = launch_limit.get("period")
    if period is not None and (message := duration_problem(period)):
        add(None, "launch_limit.period", message)
    elif period is None and mode == "periodic":
        add(None, "launch_limit.period", "missing: a periodic launch limit needs a period (e.g. P7D)")
    max_total = launch_limit.get("max_total")
    if max_total is not None and not (is_int(max_total) and 1 <= max_total <= MAX_INT):
        add(None, "launch_limit.max_total", f"must be an integer from 1 to {MAX_INT:,} or null (no cap)")

    schedule = doc.get("schedule") or {}
    moments_ok = True
    for name in ("start_at", "end_at"):
        if schedule.get(name) is not None and (message := datetime_problem(schedule[name])):
            add(None, f"schedule.{name}", message)
            moments_ok = False
    start_at, end_at = schedule.get("start_at"), schedule.get("end_at")
    if moments_ok and start_at is not None and end_at is not None:
        settings = document_settings(doc)
        if settings.end_at <= settings.start_at:
            add(None, "schedule.end_at", "must be after start_at")


# --- Nodes --------------------------------------------------------------------------


def _node_errors(nodes: list[dict], ctx: ValidationContext, add) -> dict[str, NodeKind | None]:
    """Config errors per node; returns the kind of each (first) key, None when unknown."""
    kinds: dict[str, NodeKind | None] = {}
    starts = 0
    for node in nodes:
        key = node["key"]
        kind = get_kind(node["kind"])
        if key in kinds:
            add(key, "key", f"another node already has the key {key!r}")
            continue
        kinds[key] = kind
        if kind is None:
            add(key, "kind", f"unknown node kind {node['kind']!r}")
            continue
        if kind.is_start:
            starts += 1
            if starts > 1:
                add(key, "kind", "a flow has exactly one start node (event or schedule); this is another one")
        for problem in kind.validate(node["config"], ctx):
            add(key, problem.field, problem.message)
    if starts == 0:
        add(None, "nodes", "a flow needs a start node (event or schedule)")
    return kinds


# --- Edges --------------------------------------------------------------------------


def _edge_errors(
    edges: list[dict], nodes: list[dict], kinds: dict[str, NodeKind | None], add
) -> list[tuple[str, str]]:
    """Errors of the edges; returns (from, to) of the edges the engine could follow."""
    configs: dict[str, dict] = {}
    for node in nodes:
        configs.setdefault(node["key"], node["config"])
    ports: dict[str, list[str]] = {}
    taken: dict[tuple[str, str], int] = {}
    usable = []
    for index, edge in enumerate(edges):
        source, port, target = edge["from_key"], edge["port"], edge["to_key"]
        ok = True
        if source not in kinds:
            add(None, f"edges.{index}.from", f"no node {source!r}")
            ok = False
        if target not in kinds:
            add(None, f"edges.{index}.to", f"no node {target!r}")
            ok = False
        elif kinds[target] is not None and kinds[target].is_start:
            add(None, f"edges.{index}.to", f"{target!r} is the start node; nothing may lead into it")
            ok = False
        if source in kinds and kinds[source] is not None:
            if source not in ports:
                ports[source] = kinds[source].ports(configs[source])
            if port not in ports[source]:
                exits = ", ".join(ports[source]) or "none"
                add(None, f"edges.{index}.port", f"{source!r} has no port {port!r} (its ports: {exits})")
                ok = False
        elif source in kinds:
            ok = False  # unknown kind: already an error on the node
        if (source, port) in taken:
            add(
                None,
                f"edges.{index}.port",
                f"port {port!r} of {source!r} is already connected (edges.{taken[(source, port)]})",
            )
            ok = False
        else:
            taken[(source, port)] = index
        if ok:
            usable.append((source, target))
    return usable


# --- Graph ---------------------------------------------------------------------------


def _graph_errors(kinds: dict[str, NodeKind | None], edges: list[tuple[str, str]], add) -> None:
    order = list(kinds)  # unique keys in document order
    successors: dict[str, list[str]] = {key: [] for key in order}
    for source, target in edges:
        successors[source].append(target)

    starts = [key for key in order if kinds[key] is not None and kinds[key].is_start]
    if starts:
        reached = set(starts)
        stack = list(starts)
        while stack:
            for target in successors[stack.pop()]:
                if target not in reached:
                    reached.add(target)
                    stack.append(target)
        for key in order:
            if key not in reached:
                add(key, "edges", "not reachable from the start node")

    # Cycles: strongly connected components of the graph without wait nodes.
    def breaks(key: str) -> bool:
        return kinds[key] is not None and kinds[key].breaks_cycles

    plain = {key: [t for t in successors[key] if not breaks(t)] for key in order if not breaks(key)}
    position = {key: index for index, key in enumerate(order)}
    for component in _strongly_connected(plain):
        if len(component) == 1 and component[0] not in plain[component[0]]:
            continue
        component.sort(key=position.__getitem__)
        path = " → ".join([*component, component[0]]) if len(component) <= 5 else ", ".join(component)
        add(component[0], "edges", f"cycle without a wait node ({path}); a loop must pass through a wait")


def _strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit), in a deterministic order."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index_of:
            continue
        work: list[tuple[str, Any]] = [(root, iter(graph[root]))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index_of:
                    index_of[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index_of[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index_of[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components
