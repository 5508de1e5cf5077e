// The recorded winner of an A/B node on the canvas statistics (SPEC §13):
// the variant, when it was picked, the p-value and every variant's counts at
// that moment. Data: the node's `ab_winner` in the statistics
// (flows/ab_winner_stats.py), null until the engine has picked one.

import { h } from "./node-forms.js";

const gettext = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);
const rate = (value) => (value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)} %`);
const pValue = (value) => (value === null || value === undefined ? "–" : value < 0.0001 ? "< 0.0001" : value.toFixed(4));
const METRICS = { goal: "conversions", click: "email clicks" };

export function abWinner(w) {
  const table = h("table", { className: "fc-ab-winner-counts" },
    h("tr", {}, ["variant", "entered", "converted", "rate", "p vs winner"].map((t) => h("th", {}, gettext(t)))),
    w.counts.map((c) => h("tr", { className: c.variant === w.variant ? "fc-ab-winner-row" : "" },
      h("td", {}, c.variant, c.control ? ` (${gettext("control")})` : ""), h("td", {}, c.entered),
      h("td", {}, c.converted), h("td", {}, rate(c.rate)), h("td", {}, pValue(c.p_value)))));
  return [
    h("h4", {}, gettext("A/B winner")),
    h("p", { className: "fc-ab-winner" },
      `${w.variant} ${gettext("won")} ${gettext("on")} ${gettext(METRICS[w.metric] || w.metric)} · p = ${pValue(w.p_value)} ` +
      `(${gettext("confidence")} ${(100 * w.confidence).toFixed(1)} %) · ${new Date(w.decided_at).toLocaleString()}`),
    table,
  ];
}
