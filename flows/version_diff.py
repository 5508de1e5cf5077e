"""What a version changes against another (a draft against the live
version), node by node: matched by node key, as the engine moves runs in
flight between versions. A node is changed when its kind, title, settings
or outgoing lines differ; moving it on the canvas is no change."""

from __future__ import annotations

from typing import Any

from flows.models import Flow, FlowVersion


def _nodes(document: dict | None) -> dict[str, dict]:
    nodes = (document or {}).get("nodes")
    if not isinstance(nodes, list):
        return {}
    return {
        node["key"]: node for node in nodes if isinstance(node, dict) and isinstance(node.get("key"), str)
    }


def _exits(document: dict | None) -> dict[str, dict[str, str]]:
    exits: dict[str, dict[str, str]] = {}
    edges = (document or {}).get("edges")
    for edge in edges if isinstance(edges, list) else []:
        if isinstance(edge, dict) and isinstance(edge.get("from"), str):
            exits.setdefault(edge["from"], {})[str(edge.get("port") or "next")] = str(edge.get("to"))
    return exits


def diff_documents(*, before: dict | None, after: dict | None) -> dict[str, Any]:
    """{"added": [key], "removed": [{"key", "kind", "title"}], "changed":
    [{"key", "what": ["kind" | "title" | "settings" | "lines"]}], "settings":
    [document keys of the flow's own settings that differ]}."""
    old, new = _nodes(before), _nodes(after)
    old_exits, new_exits = _exits(before), _exits(after)
    changed = []
    for key, node in new.items():
        if key not in old:
            continue
        what = [
            name
            for name, differs in (
                ("kind", old[key].get("kind") != node.get("kind")),
                ("title", (old[key].get("title") or "") != (node.get("title") or "")),
                ("settings", old[key].get("config") != node.get("config")),
                ("lines", old_exits.get(key, {}) != new_exits.get(key, {})),
            )
            if differs
        ]
        if what:
            changed.append({"key": key, "what": what})
    settings = [
        name
        for name in ("name", "timezone", "launch_limit", "schedule", "description", "goal", "exit")
        if (before or {}).get(name) != (after or {}).get(name)
    ]
    return {
        "added": [key for key in new if key not in old],
        "removed": [
            {"key": key, "kind": node.get("kind", ""), "title": node.get("title") or ""}
            for key, node in old.items()
            if key not in new
        ],
        "changed": changed,
        "settings": settings,
    }


def diff_against_live(*, flow: Flow, version: FlowVersion | None) -> dict[str, Any] | None:
    """The diff of `version` against the flow's live version, with the live
    version's number; None when there is nothing to compare (no live version,
    or `version` is the live one)."""
    if version is None or flow.live_version_id is None or version.pk == flow.live_version_id:
        return None
    live = FlowVersion.objects.only("id", "number", "document_json").get(pk=flow.live_version_id)
    return {"against": live.number, **diff_documents(before=live.document, after=version.document)}
