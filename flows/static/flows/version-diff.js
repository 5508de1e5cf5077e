// What a draft changes against the live version (computed on the server by
// node key, flows/version_diff.py): added and changed nodes get a badge and
// an outline on the canvas, and the Checks tab lists added, changed and
// removed nodes (removed ones are not on the canvas any more) and the flow
// settings that differ. Each list item selects its node.
"use strict";

const t = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);
const WHAT = {
  kind: () => t("kind"), title: () => t("title"), settings: () => t("settings"), lines: () => t("lines"),
};

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function paintDiff(canvas, diff) {
  const added = new Set(diff ? diff.added : []);
  const changed = new Map((diff ? diff.changed : []).map((c) => [c.key, c.what]));
  for (const [id, node] of canvas.nodes) {
    const element = canvas.element(id);
    if (!element) continue;
    const state = added.has(node.key) ? "added" : changed.has(node.key) ? "changed" : "";
    element.classList.toggle("fe-diff-added", state === "added");
    element.classList.toggle("fe-diff-changed", state === "changed");
    element.dataset.diff = state;
    let badge = element.querySelector(".fe-diff-badge");
    if (!state) { if (badge) badge.remove(); continue; }
    if (!badge) badge = element.querySelector(".fc-node").appendChild(el("span", { className: "fe-diff-badge" }));
    badge.textContent = state === "added" ? t("new") : t("changed");
    badge.title = state === "added"
      ? t("Not in the live version")
      : `${t("Changed against the live version:")} ${changed.get(node.key).map((w) => (WHAT[w] ? WHAT[w]() : w)).join(", ")}`;
  }
  renderList(canvas, diff);
}

function renderList(canvas, diff) {
  const box = canvas.root.querySelector(".fe-diff");
  if (!box) return;
  box.hidden = !diff;
  if (!diff) return;
  box.querySelector(".fe-diff-title").textContent =
    t("Changes against live v%s").replace("%s", String(diff.against));
  const list = box.querySelector(".fe-diff-list");
  const item = (cls, label, key, detail) => el("li", { className: cls },
    el("span", { className: "fe-diff-tag" }, label), " ",
    canvas.nodes.size && [...canvas.nodes.values()].some((n) => n.key === key)
      ? el("button", { type: "button", className: "fc-error-link", onclick: () => canvas.selectByKey(key) }, key)
      : el("span", {}, key),
    detail ? ` · ${detail}` : "");
  const items = [
    ...diff.added.map((key) => item("fe-diff-added", t("added"), key, "")),
    ...diff.changed.map((c) => item("fe-diff-changed", t("changed"), c.key, c.what.map((w) => (WHAT[w] ? WHAT[w]() : w)).join(", "))),
    ...diff.removed.map((n) => item("fe-diff-removed", t("removed"), n.key, n.title || n.kind)),
    ...diff.settings.map((name) => el("li", { className: "fe-diff-changed" },
      el("span", { className: "fe-diff-tag" }, t("setting")), ` ${name}`)),
  ];
  if (!items.length) items.push(el("li", {}, t("No change: the draft is the same as the live version.")));
  list.replaceChildren(...items);
}
