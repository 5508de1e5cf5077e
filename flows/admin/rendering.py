"""HTML pieces of the Flow admin pages: validation error lists whose node
errors link to the node's row, the nodes and edges tables of a document,
the draft's state in words, a refusal of the lifecycle as a message."""

from __future__ import annotations

import json
from collections import defaultdict

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from flows.errors import LifecycleError
from flows.models import Flow, FlowVersion


def node_anchor(key: str) -> str:
    return f"node-{key}"


def render_errors(errors: list[dict], *, base_url: str = "", node_keys: set[str] | None = None) -> SafeString:
    """A validation error list; an error of a node links to its row in the
    nodes table (#node-<key>)."""

    def label(error: dict) -> SafeString:
        node = error.get("node")
        field = error.get("field") or ""
        if node and (node_keys is None or node in node_keys):
            where = format_html('<a href="{}#{}">{}</a>', base_url, node_anchor(node), node)
        elif node:
            where = format_html("{}", node)
        else:
            where = mark_safe("flow")
        if field:
            where = format_html("{} · {}", where, field)
        return format_html("{}: {}", where, error.get("message", ""))

    return format_html(
        '<ul class="flow-errors">{}</ul>', format_html_join("", "<li>{}</li>", ((label(e),) for e in errors))
    )


def lifecycle_error_message(error: LifecycleError, *, flow: Flow | None = None) -> SafeString:
    if not error.errors:
        return format_html("{}", error.message)
    base_url = reverse("admin:flows_flow_change", args=[flow.pk]) if flow is not None else ""
    return format_html("{}{}", error.message, render_errors(error.errors, base_url=base_url))


def draft_state(draft: FlowVersion | None) -> str:
    if draft is None:
        return ""
    count = len(draft.errors)
    if not count:
        return "draft: valid"
    return f"draft: {count} error{'s' if count != 1 else ''}"


def render_nodes_table(document: dict, errors: list[dict]) -> SafeString:
    """The document's nodes, one row each with id="node-<key>" so error links
    land on it; a node with errors is highlighted and lists them."""
    by_node: dict[str, list[dict]] = defaultdict(list)
    for error in errors:
        if error.get("node"):
            by_node[error["node"]].append(error)
    rows = []
    seen: set[str] = set()
    for node in document.get("nodes", []):
        key = node.get("key", "")
        node_errors = by_node.get(key, [])
        # A repeated key is a validation error; only its first row gets the anchor.
        row_id = format_html(' id="{}"', node_anchor(key)) if key not in seen else ""
        seen.add(key)
        rows.append(
            format_html(
                '<tr{}{}><td><strong>{}</strong></td><td>{}</td><td>{}</td><td><pre class="flow-config">{}</pre></td><td>{}</td></tr>',
                row_id,
                mark_safe(' class="flow-node-error"') if node_errors else "",
                key,
                node.get("kind", ""),
                node.get("title", ""),
                json.dumps(node.get("config", {}), indent=2, ensure_ascii=False),
                format_html_join(
                    "",
                    "<div>{}: {}</div>",
                    ((e.get("field") or "node", e.get("message", "")) for e in node_errors),
                ),
            )
        )
    if not rows:
        return mark_safe("<p>No nodes yet.</p>")
    return format_html(
        '<table class="flow-nodes"><thead><tr><th>key</th><th>kind</th><th>title</th><th>config</th>'
        "<th>errors</th></tr></thead><tbody>{}</tbody></table>",
        mark_safe("".join(rows)),
    )


def render_edges_table(document: dict) -> SafeString:
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (edge.get("from", ""), edge.get("port", "next"), edge.get("to", ""))
            for edge in document.get("edges", [])
        ),
    )
    if not rows:
        return mark_safe("<p>No edges.</p>")
    return format_html(
        '<table class="flow-edges"><thead><tr><th>from</th><th>port</th><th>to</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        rows,
    )


def when(value) -> str:
    if not value:
        return "—"
    if isinstance(value, str):
        return value
    return value.strftime("%Y-%m-%d %H:%M")
