// Run statistics on the canvas for a chosen period (SPEC §10): on each node
// the entered count and per-exit counts with % of the start node, runs
// waiting now, limitation places, messages by status; the selected node's
// details (stop reasons, A/B variants with a Wilson interval chart) beside it.

import { h } from "./node-forms.js";
import { abWinner } from "./canvas-ab-winner.js"; // HOOK(ab-winner)

// Words through Django's JavaScript catalogue when the page loads it.
const gettext = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);
const interpolate = (text, values) => (typeof window.interpolate === "function"
  ? window.interpolate(text, values) : text.replace(/%s/g, () => String(values.shift())));

const pct = (value) => (value === null || value === undefined ? "–" : `${Number(value).toFixed(1)} %`);
const isoDay = (date) => new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 10);

export class StatsOverlay {
  constructor(canvas, bar) {
    this.canvas = canvas;
    this.bar = bar;
    this.data = null;
    this.details = canvas.root.querySelector(".fc-stats-details");
    const today = new Date();
    this.from = bar.querySelector("[name=stats-from]");
    this.to = bar.querySelector("[name=stats-to]");
    this.test = bar.querySelector("[name=stats-test]");
    this.note = bar.querySelector(".fc-stats-note");
    this.from.value = isoDay(new Date(today.getTime() - 6 * 86400000));
    this.to.value = isoDay(today);
    bar.querySelector(".fc-stats-show").addEventListener("click", () => this.show());
    bar.querySelector(".fc-stats-hide").addEventListener("click", () => this.hide());
  }

  async show() {
    const query = new URLSearchParams({ from: this.from.value, to: this.to.value });
    if (this.test.checked) query.set("test", "1");
    this.note.textContent = gettext("Loading…");
    const response = await fetch(`${this.canvas.config.urls.stats}?${query}`, { credentials: "same-origin" });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      this.note.textContent = (data.errors || []).map((e) => e.message).join("; ") || response.statusText;
      return;
    }
    this.data = data;
    this.canvas.root.classList.add("fc-with-stats");
    this.note.textContent = `${data.start_entered} entered the start node in this period${data.test ? " (test runs)" : ""}.`;
    this.paint();
    const selected = this.canvas.selected;
    this.renderDetails(selected === null ? null : this.canvas.nodes.get(selected).key);
  }

  hide() {
    this.data = null;
    this.canvas.root.classList.remove("fc-with-stats");
    this.note.textContent = "";
    for (const el of this.canvas.area.querySelectorAll(".fc-node-stats")) el.replaceChildren();
    for (const el of this.canvas.area.querySelectorAll(".fc-port-count")) el.remove();
    this.renderDetails(null);
  }

  paint() {
    for (const [id, node] of this.canvas.nodes) {
      const element = this.canvas.element(id);
      const stats = this.data.nodes[node.key];
      const box = element.querySelector(".fc-node-stats");
      box.replaceChildren();
      for (const el of element.querySelectorAll(".fc-port-count")) el.remove();
      if (!stats) continue;
      box.append(h("div", { className: "fc-stat-entered" }, `entered ${stats.entered}`,
        stats.entered_percent !== null ? ` · ${pct(stats.entered_percent)}` : ""));
      if (node.kind === "wait" || stats.waiting_now) box.append(h("div", { className: "fc-stat-waiting" }, `waiting now ${stats.waiting_now}`));
      const messages = Object.entries(stats.messages || {});
      if (messages.length) box.append(h("div", { className: "fc-stat-messages" }, messages.map(([s, n]) => `${s} ${n}`).join(" · ")));
      if (stats.email && stats.email.sent) {
        const e = stats.email;
        box.append(h("div", { className: "fc-stat-email" }, `opened ${e.opened} · clicked ${e.clicked} of ${e.sent} sent`));
      }
      if (stats.limitation) {
        const l = stats.limitation;
        box.append(h("div", { className: "fc-stat-limitation" }, `used ${l.used}${l.max !== null ? ` / ${l.max} · ${l.remaining} left` : ""}`));
      }
      const stops = (stats.stops || []).reduce((sum, s) => sum + s.count, 0);
      if (stops) box.append(h("div", { className: "fc-stat-stops" }, `stopped ${stops} (click for reasons)`));
      const exits = new Map((stats.exits || []).map((e) => [e.port, e]));
      this.canvas.ports.get(id).forEach((port, index) => {
        const output = element.querySelector(`.outputs .output_${index + 1}`);
        const exit = exits.get(port);
        if (!output) return;
        // Inside the node above the exit's dot, under its name (canvas.js labelPorts).
        (output.querySelector(".fc-port-box") || output).append(
          h("span", { className: "fc-port-count" }, exit ? `${exit.count} · ${pct(exit.percent)}` : "0"));
      });
    }
    if (this.canvas.view) this.canvas.view.refresh();
  }

  renderDetails(key) {
    const box = this.details;
    const stats = this.data && key ? this.data.nodes[key] : null;
    box.hidden = !stats;
    if (!stats) { box.replaceChildren(); return; }
    const rows = (items, label) => items.length
      ? h("table", {}, h("tr", {}, h("th", {}, label), h("th", {}, gettext("runs")), h("th", {}, gettext("% of start"))),
        items.map((i) => h("tr", {}, h("td", { title: i.reason || "" }, i.port || i.text || i.reason), h("td", {}, i.count), h("td", {}, pct(i.percent)))))
      : h("p", {}, gettext("none"));
    box.replaceChildren(...[
      h("h3", {}, gettext("Statistics of %s").replace("%s", key)),
      h("p", {}, interpolate(gettext("Entered %s (%s of the start node) · waiting now %s"), [stats.entered, pct(stats.entered_percent), stats.waiting_now])),
      h("h4", {}, gettext("Exits")), rows(stats.exits || [], "exit"),
      h("h4", {}, gettext("Stopped, by reason")), h("div", { className: "fc-stop-reasons" }, rows(stats.stops || [], "reason")),
      Object.keys(stats.messages || {}).length
        ? [h("h4", {}, gettext("Messages")), h("table", {}, Object.entries(stats.messages).map(([s, n]) => h("tr", {}, h("td", {}, s), h("td", {}, n))))]
        : null,
      stats.email ? this.email(stats.email) : null,
      stats.limitation ? this.limitation(stats.limitation) : null,
      stats.ab_test ? this.abTest(stats.ab_test) : null,
      stats.ab_winner ? abWinner(stats.ab_winner) : null, // HOOK(ab-winner)
    ].flat().filter(Boolean));
  }

  email(e) {
    // Unique opens and clicks: messages opened / clicked at least once (channels/tracking.py).
    return [h("h4", {}, gettext("Email engagement")), h("table", { className: "fc-email" },
      h("tr", {}, ["sent", "opened", "clicked"].map((t) => h("th", {}, t))),
      h("tr", {}, h("td", {}, e.sent), h("td", {}, `${e.opened} (${pct(e.open_rate)})`), h("td", {}, `${e.clicked} (${pct(e.click_rate)})`)))];
  }

  limitation(l) {
    const span = l.window_start ? `window since ${new Date(l.window_start).toLocaleString()}` : l.rolling_since ? `rolling, since ${new Date(l.rolling_since).toLocaleString()}` : "all time";
    return [h("h4", {}, gettext("Capacity")), h("p", { className: "fc-limitation" }, `${l.used} used, ${l.remaining ?? "?"} remaining of ${l.max ?? "?"} (${span})`)];
  }

  abTest(ab) {
    const table = h("table", { className: "fc-ab" },
      h("tr", {}, ["variant", "entered", "conversions", "rate", "95 % interval", "revenue"].map((t) => h("th", {}, t))),
      ab.variants.map((v) => h("tr", {},
        h("td", {}, v.variant, v.control ? " (control)" : ""), h("td", {}, v.entered), h("td", {}, v.conversions),
        h("td", {}, v.rate === null ? "–" : pct(100 * v.rate)),
        h("td", {}, v.ci_low === null ? "–" : `${pct(100 * v.ci_low)} – ${pct(100 * v.ci_high)}`),
        h("td", {}, v.revenue.toFixed(2)))));
    return [h("h4", {}, gettext("A/B test")), table, abChart(ab.variants),
      h("p", { className: "fc-hint" }, `Conversion: ${ab.event_types.join(" or ")} within ${ab.window} after the split.`)];
  }
}

// Conversion rate per variant as bars with their Wilson interval as whiskers.
function abChart(variants) {
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const width = 280, rowHeight = 26, left = 70, right = 40;
  const top = Math.max(0.05, ...variants.map((v) => v.ci_high || 0));
  const scale = (value) => left + (width - left - right) * (value / top);
  const svg = el("svg", { width, height: rowHeight * variants.length + 20, class: "fc-ab-chart", role: "img",
    "aria-label": gettext("Conversion rate per variant with 95 % intervals") });
  variants.forEach((v, i) => {
    const y = 6 + i * rowHeight;
    svg.append(el("text", { x: 0, y: y + 13, class: "fc-ab-label" }, v.variant));
    if (v.rate === null) return;
    svg.append(el("rect", { x: left, y, width: Math.max(1, scale(v.rate) - left), height: 16, class: v.control ? "fc-ab-bar fc-ab-control" : "fc-ab-bar" }));
    svg.append(el("line", { x1: scale(v.ci_low), x2: scale(v.ci_high), y1: y + 8, y2: y + 8, class: "fc-ab-ci" }));
    svg.append(el("text", { x: scale(v.ci_high) + 4, y: y + 13, class: "fc-ab-value" }, `${(100 * v.rate).toFixed(1)}%`));
  });
  svg.append(el("line", { x1: left, x2: left, y1: 0, y2: rowHeight * variants.length + 6, class: "fc-ab-axis" }));
  return svg;
}
