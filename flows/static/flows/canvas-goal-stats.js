// Goal statistics on the canvas (SPEC §13): the flow's conversions in the
// stats note, "converted" on each node, and per exit port (A/B variants,
// splitter branches) in the selected node's details. The figures come from
// flows/goal_stats.py through canvas_stats ("goal" at the top and per node).

import { h } from "./node-forms.js";

const gettext = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);
const rate = (value) => (value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)} %`);
const money = (value) => Number(value || 0).toFixed(2);

// One sentence for the stats bar; "" for a flow without a goal.
export function goalNote(goal) {
  if (!goal) return "";
  return ` ${gettext("Goal")} ${goal.event_type}: ${goal.converted} ${gettext("of")} ${goal.entered} ${gettext("converted")}` +
    ` (${rate(goal.rate)}) ${gettext("within")} ${goal.window}${goal.value_field ? ` · ${gettext("value")} ${money(goal.value)}` : ""}.`;
}

// The line painted on a node.
export function goalBadge(figures) {
  if (!figures) return null;
  return h("div", { className: "fc-stat-goal" }, `${gettext("converted")} ${figures.converted} · ${rate(figures.rate)}`);
}

// The selected node's goal section: the node, then each of its exit ports.
export function goalDetails(figures) {
  if (!figures) return null;
  const row = (label, f) => h("tr", {}, h("td", {}, label), h("td", {}, f.entered), h("td", {}, f.converted),
    h("td", {}, rate(f.rate)), h("td", {}, money(f.value)));
  return [h("h4", {}, gettext("Goal conversions")), h("table", { className: "fc-goal" },
    h("tr", {}, [gettext("runs"), gettext("passed"), gettext("converted"), gettext("rate"), gettext("value")].map((t) => h("th", {}, t))),
    row(gettext("this node"), figures),
    Object.entries(figures.ports || {}).map(([port, f]) => row(`→ ${port}`, f)))];
}
