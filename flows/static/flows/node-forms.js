// The side form of the canvas: one small form per node kind, writing the
// node's `config` in the maestra.flow/1 shapes (SPEC §5). The server
// validates every save; these widgets only make the right shapes easy.

import { eventTypeList, fieldPathList, ruleBuilder } from "../customers/rule-builder.js";

// Words of the forms go through Django's JavaScript catalogue
// (django.views.i18n.JavaScriptCatalog, loaded by the page) when it is there.
const gettext = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);

export const KIND_ORDER = ["event", "schedule", "condition", "steps", "splitter", "wait", "ab_test", "limitation"];
export const START_KINDS = ["event", "schedule"];
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ACTIONS = {
  send: "Send a message",
  issue_promo_code: "Issue a promo code",
  points: "Give or take points",
  set_field: "Set a customer field",
  add_to_segment: "Add to a segment",
  remove_from_segment: "Remove from a segment",
  emit_event: "Emit an event",
};
const DURATION_UNITS = [["PT{n}M", "minutes"], ["PT{n}H", "hours"], ["P{n}D", "days"], ["P{n}W", "weeks"]];

export function defaultConfig(kind) {
  switch (kind) {
    case "event": return { event_type: "" };
    case "schedule": return { recurrence: { every: "day", at: "10:00" }, timezone: "flow", audience: { segment: null, rule: null } };
    case "condition": return { rule: { field: "", op: "eq", value: "" } };
    case "steps": return { relevance: "P1D", steps: [{ action: "send", channel: "email", template: "" }] };
    case "splitter": return { branches: [{ name: "a", percent: 50 }, { name: "b", percent: 50 }] };
    case "wait": return { mode: "fixed", duration: "P1D" };
    case "ab_test": return { variants: [{ name: "A", percent: 50 }, { name: "B", percent: 50 }] };
    case "limitation": return { max: 1000, period: null };
    default: return {};
  }
}

function names(items) {
  return Array.isArray(items) ? items.filter((i) => i && typeof i.name === "string").map((i) => i.name) : [];
}

// The exits of a node, in the order the server's node kinds give them.
export function portsOf(kind, config) {
  config = config || {};
  switch (kind) {
    case "condition": return "branches" in config ? [...names(config.branches), "other"] : ["yes", "no"];
    case "splitter": return names(config.branches);
    case "ab_test": return names(config.variants);
    case "limitation": return ["within", "beyond"];
    default: return ["next"];
  }
}

// --- tiny DOM helpers ------------------------------------------------------------

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "className") el.className = value;
    else if (name === "value") el.value = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let uid = 0;
const LABELABLE = ["INPUT", "SELECT", "TEXTAREA"];
function field(label, input, path, hint) {
  const id = input.id || `nf-${++uid}`;
  input.id = id;
  // A single control gets a <label for>; a compound one (a duration, the
  // weekdays, a rule) becomes a group named by its label, so each control
  // inside is announced with it.
  let caption;
  if (LABELABLE.includes(input.tagName)) {
    caption = h("label", { for: id }, label);
  } else {
    caption = h("span", { className: "fe-label", id: `${id}-label` }, label);
    input.setAttribute("role", "group");
    input.setAttribute("aria-labelledby", `${id}-label`);
  }
  return h("div", { className: "nf-field", "data-field": path || null },
    caption, input, hint ? h("div", { className: "nf-hint" }, hint) : null,
    h("div", { className: "nf-error" }));
}

function textInput(value, onInput, attrs = {}) {
  return h("input", { type: "text", value: value ?? "", oninput: (e) => onInput(e.target.value), ...attrs });
}

function numberInput(value, onInput, attrs = {}) {
  return h("input", {
    type: "number", value: value ?? "", ...attrs,
    oninput: (e) => onInput(e.target.value === "" ? null : Number(e.target.value)),
  });
}

function select(options, value, onChange, attrs = {}) {
  const el = h("select", { onchange: (e) => onChange(e.target.value), ...attrs },
    options.map(([v, label]) => h("option", { value: v }, label)));
  if (value !== undefined && value !== null && !options.some(([v]) => v === value)) {
    el.prepend(h("option", { value }, `${value} (unknown)`));
  }
  el.value = value ?? "";
  return el;
}

// A picker of slugs from a catalogue; keeps a value it does not list.
function picker(items, value, onChange, { empty = "— choose —", filter } = {}) {
  const shown = filter ? items.filter(filter) : items;
  return select([["", empty], ...shown.map((i) => [i.slug, i.name ? `${i.slug} — ${i.name}` : i.slug])],
    value || "", (v) => onChange(v || ""));
}

function jsonArea(value, onValid, attrs = {}) {
  const area = h("textarea", { rows: 4, className: "nf-json", ...attrs });
  area.value = value === undefined || value === null ? "" : JSON.stringify(value, null, 2);
  area.addEventListener("input", () => {
    const text = area.value.trim();
    if (!text) { area.classList.remove("nf-invalid"); onValid(null); return; }
    try { const parsed = JSON.parse(text); area.classList.remove("nf-invalid"); onValid(parsed); }
    catch { area.classList.add("nf-invalid"); }
  });
  return area;
}

// A value typed by a person: JSON where it parses (numbers, true, lists), else text.
function looseValue(text) {
  if (text === "") return "";
  try { return JSON.parse(text); } catch { return text; }
}
function looseText(value) {
  return typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value);
}

// ISO 8601 duration as number + unit; anything else stays editable as text.
export function durationInput(value, onChange, { signed = false } = {}) {
  const match = /^(-)?P(?:(\d+)W|(\d+)D|T(\d+)H|T(\d+)M)$/.exec(value || "");
  const wrap = h("span", { className: "nf-duration" });
  let sign = match && match[1] ? "-" : "";
  let amount = match ? Number(match[2] || match[3] || match[4] || match[5]) : null;
  let unit = match ? (match[2] ? "P{n}W" : match[3] ? "P{n}D" : match[4] ? "PT{n}H" : "PT{n}M") : value ? "custom" : "P{n}D";
  const raw = textInput(value || "", (v) => onChange(v.trim()), { placeholder: "ISO 8601, e.g. P1D", className: "nf-iso", "aria-label": "ISO 8601 duration" });
  const emit = () => {
    if (unit === "custom") return;
    onChange(amount === null || Number.isNaN(amount) ? "" : sign + unit.replace("{n}", Math.max(0, Math.round(amount))));
    raw.value = amount === null ? "" : sign + unit.replace("{n}", Math.max(0, Math.round(amount)));
  };
  const number = numberInput(amount, (v) => { amount = v; emit(); }, { min: 0, step: 1, className: "nf-amount", "aria-label": "amount" });
  const units = select([...DURATION_UNITS, ["custom", gettext("ISO 8601…")]], unit, (v) => {
    unit = v; raw.hidden = unit !== "custom"; number.hidden = unit === "custom"; emit();
  }, { "aria-label": "unit" });
  raw.hidden = unit !== "custom";
  number.hidden = unit === "custom";
  if (signed) {
    wrap.append(select([["", gettext("after")], ["-", gettext("before")]], sign, (v) => { sign = v; emit(); }, { "aria-label": "direction" }));
  }
  wrap.append(number, units, raw);
  return wrap;
}

function timeInput(value, onChange) {
  return h("input", { type: "time", value: value || "", oninput: (e) => onChange(e.target.value) });
}

function weekdayBoxes(selected, onChange) {
  const chosen = new Set(Array.isArray(selected) ? selected : []);
  return h("span", { className: "nf-weekdays" }, WEEKDAYS.map((day) => h("label", {},
    h("input", {
      type: "checkbox", checked: chosen.has(day), onchange: (e) => {
        e.target.checked ? chosen.add(day) : chosen.delete(day);
        onChange(WEEKDAYS.filter((d) => chosen.has(d)));
      },
    }), day)));
}

function windowEditor(win, onChange, path) {
  win = win || { weekdays: ["mon", "tue", "wed", "thu", "fri"], from: "10:00", to: "18:00", timezone: "flow" };
  const set = (name, value) => { win[name] = value; onChange(win); };
  return h("fieldset", { className: "nf-window" }, h("legend", {}, gettext("Exit window")),
    field(gettext("Weekdays"), weekdayBoxes(win.weekdays, (v) => set("weekdays", v)), `${path}.weekdays`),
    field(gettext("From"), timeInput(win.from, (v) => set("from", v)), `${path}.from`),
    field(gettext("To"), timeInput(win.to, (v) => set("to", v)), `${path}.to`),
    field(gettext("Time zone"), textInput(win.timezone, (v) => set("timezone", v), { list: "nf-timezones" }), `${path}.timezone`,
      "flow, customer, or an IANA name such as Europe/Berlin"));
}

// A rule: the rule builder (customers/static/customers/rule-builder.js):
// groups with AND / OR / NOT, fields from the data, event history; JSON as
// "advanced". Audiences have no trigger event, so no event.* fields there.
function ruleEditor(rule, onChange, path, { optional = false } = {}) {
  return ruleBuilder(rule, onChange, { path, optional, allowEvent: !path.startsWith("audience") });
}

// A list of {name, percent[, control]} rows (splitter branches, A/B variants).
function shareList(items, onChange, { path, withControl = false, max = 50, label = "Branch" }) {
  const wrap = h("div", { className: "nf-shares" });
  const draw = () => {
    const total = items.reduce((sum, i) => sum + (Number(i.percent) || 0), 0);
    wrap.replaceChildren(
      h("table", {}, h("tr", {}, h("th", {}, gettext("name")), h("th", {}, "%"), withControl ? h("th", {}, gettext("control")) : null, h("th", {})),
        items.map((item, index) => h("tr", { "data-field": `${path}.${index}` },
          h("td", {}, textInput(item.name, (v) => { item.name = v; onChange(items, true); }, { "aria-label": `${label} ${index + 1} name`, size: 8 })),
          h("td", {}, numberInput(item.percent, (v) => { item.percent = v; onChange(items); draw(); }, { min: 0, max: 100, "aria-label": `${label} ${index + 1} percent`, className: "nf-percent" })),
          withControl ? h("td", {}, h("input", { type: "checkbox", checked: !!item.control, "aria-label": `${label} ${index + 1} is the control`, onchange: (e) => { if (e.target.checked) item.control = true; else delete item.control; onChange(items); } })) : null,
          h("td", {}, h("button", { type: "button", className: "nf-small", "aria-label": `remove ${label} ${index + 1}`, onclick: () => { items.splice(index, 1); onChange(items, true); draw(); } }, "✕"))))),
      h("div", { className: total === 100 ? "nf-total" : "nf-total nf-invalid-text" }, gettext("Total: %s %").replace("%s", total)),
      items.length < max ? h("button", { type: "button", className: "nf-small", onclick: () => {
        const taken = new Set(items.map((i) => i.name));
        let n = items.length + 1; while (taken.has(withControl ? String.fromCharCode(64 + n) : String(n))) n++;
        items.push({ name: withControl ? String.fromCharCode(64 + n) : String(n), percent: 0 });
        onChange(items, true); draw();
      } }, gettext("Add %s").replace("%s", gettext(label).toLowerCase())) : null);
  };
  draw();
  return wrap;
}

// --- per kind ----------------------------------------------------------------------

function eventForm(config, ctx, changed) {
  return [
    field(gettext("Event type"), textInput(config.event_type, (v) => { config.event_type = v; changed(); }, { list: eventTypeList(), placeholder: "order_created" }), "event_type"),
    h("div", { className: "nf-group" }, h("div", { className: "nf-group-title" }, gettext("Filter (optional)")),
      ruleEditor(config.filter ?? null, (v) => { if (v === null) delete config.filter; else config.filter = v; changed(); }, "filter", { optional: true })),
    field(gettext("Ignore events older than"), durationInput(config.max_age ?? "P7D", (v) => { config.max_age = v; changed(); }), "max_age"),
  ];
}

function scheduleForm(config, ctx, changed, redraw) {
  const rec = config.recurrence = config.recurrence && typeof config.recurrence === "object" ? config.recurrence : { every: "day", at: "10:00" };
  const audience = config.audience = config.audience && typeof config.audience === "object" ? config.audience : { segment: null, rule: null };
  const parts = [
    field(gettext("Repeat"), select([["day", gettext("every day")], ["week", gettext("chosen weekdays")], ["month", gettext("chosen month days")]], rec.every, (v) => {
      config.recurrence = v === "day" ? { every: "day", at: rec.at || "10:00" }
        : v === "week" ? { every: "week", interval: 1, weekdays: ["mon"], at: rec.at || "10:00" }
          : { every: "month", days: [1], at: rec.at || "10:00" };
      changed(true); redraw();
    }), "recurrence.every"),
    field(gettext("At"), timeInput(rec.at, (v) => { rec.at = v; changed(); }), "recurrence.at"),
  ];
  if (rec.every === "week") {
    parts.push(field(gettext("Every N weeks"), numberInput(rec.interval ?? 1, (v) => { rec.interval = v; changed(); }, { min: 1, max: 52 }), "recurrence.interval"),
      field(gettext("Weekdays"), weekdayBoxes(rec.weekdays, (v) => { rec.weekdays = v; changed(); }), "recurrence.weekdays"));
  }
  if (rec.every === "month") {
    const byNth = rec.nth_weekday != null;
    parts.push(field(gettext("Which days"), select([["days", gettext("days of the month")], ["nth", gettext("n-th weekday")]], byNth ? "nth" : "days", (v) => {
      if (v === "nth") { delete rec.days; rec.nth_weekday = { n: 1, weekday: "mon" }; } else { delete rec.nth_weekday; rec.days = [1]; }
      changed(); redraw();
    }), "recurrence"));
    if (byNth) {
      parts.push(field(gettext("n"), select([["1", "1st"], ["2", "2nd"], ["3", "3rd"], ["4", "4th"], ["5", "5th"], ["-1", "last"]], String(rec.nth_weekday.n), (v) => { rec.nth_weekday.n = Number(v); changed(); }), "recurrence.nth_weekday.n"),
        field(gettext("Weekday"), select(WEEKDAYS.map((d) => [d, d]), rec.nth_weekday.weekday, (v) => { rec.nth_weekday.weekday = v; changed(); }), "recurrence.nth_weekday.weekday"));
    } else {
      parts.push(field(gettext("Days"), textInput((rec.days || []).join(", "), (v) => {
        rec.days = v.split(",").map((s) => s.trim()).filter(Boolean).map((s) => (s === "last" ? s : Number(s)));
        changed();
      }), "recurrence.days", 'e.g. 1, 15, last'));
    }
  }
  parts.push(
    field(gettext("Time zone"), textInput(config.timezone ?? "flow", (v) => { config.timezone = v; changed(); }, { list: "nf-timezones" }), "timezone", "flow or an IANA name"),
    field(gettext("Audience segment"), picker(ctx.catalog.segments, audience.segment, (v) => { audience.segment = v || null; changed(); }, { empty: "— none (use the rule) —" }), "audience.segment"),
    h("div", { className: "nf-group" }, h("div", { className: "nf-group-title" }, gettext("Audience rule (optional)")),
      ruleEditor(audience.rule ?? null, (v) => { audience.rule = v; changed(); }, "audience.rule", { optional: true })));
  return parts;
}

function conditionForm(config, ctx, changed, redraw) {
  const byBranches = "branches" in config;
  const parts = [field(gettext("Decide by"), select([["rule", gettext("a rule (yes / no)")], ["branches", gettext("branches on one attribute")]], byBranches ? "branches" : "rule", (v) => {
    for (const key of Object.keys(config)) delete config[key];
    if (v === "rule") config.rule = { field: "", op: "eq", value: "" };
    else Object.assign(config, { attribute: "", branches: [{ name: "branch1", values: [] }] });
    changed(true); redraw();
  }), "")];
  if (!byBranches) {
    parts.push(ruleEditor(config.rule, (v) => { config.rule = v; changed(); }, "rule"));
    return parts;
  }
  parts.push(field(gettext("Attribute"), textInput(config.attribute, (v) => { config.attribute = v; changed(); }, { list: fieldPathList() }), "attribute"));
  const list = h("div", { className: "nf-branches" });
  const draw = () => {
    list.replaceChildren(...config.branches.map((branch, index) => h("div", { className: "nf-branch", "data-field": `branches.${index}` },
      textInput(branch.name, (v) => { branch.name = v; changed(true); }, { "aria-label": `branch ${index + 1} name`, size: 10 }),
      textInput((branch.values || []).map(looseText).join(", "), (v) => { branch.values = v.split(",").map((s) => s.trim()).filter(Boolean).map(looseValue); changed(); }, { "aria-label": `branch ${index + 1} values`, placeholder: "values, comma separated" }),
      h("button", { type: "button", className: "nf-small", "aria-label": `remove branch ${index + 1}`, onclick: () => { config.branches.splice(index, 1); changed(true); draw(); } }, "✕"))),
    config.branches.length < 50 ? h("button", { type: "button", className: "nf-small", onclick: () => { config.branches.push({ name: `branch${config.branches.length + 1}`, values: [] }); changed(true); draw(); } }, gettext("Add branch")) : null,
    h("div", { className: "nf-hint" }, 'First match wins; customers matching none leave through "other".'));
  };
  draw();
  parts.push(list);
  return parts;
}

function actionFields(step, index, ctx, changed, redraw) {
  const path = `steps.${index}`;
  const set = (name) => (v) => { step[name] = v; changed(); };
  switch (step.action) {
    case "send": return [
      field(gettext("Channel"), select(ctx.catalog.channels.map((c) => [c.value, c.label]), step.channel, (v) => { step.channel = v; changed(); redraw(); }), `${path}.channel`),
      field(gettext("Template"), picker(ctx.catalog.templates, step.template, set("template"), { filter: (t) => t.channel === step.channel }), `${path}.template`)];
    case "issue_promo_code": return [field(gettext("Promo pool"), picker(ctx.catalog.pools, step.pool, set("pool")), `${path}.pool`)];
    case "points": return [
      field(gettext("Amount"), numberInput(step.amount, set("amount"), { step: 1 }), `${path}.amount`, "negative to take points"),
      field(gettext("Expire after"), durationInput(step.expires_in || "", (v) => { step.expires_in = v || null; changed(); }), `${path}.expires_in`, "empty: never"),
      field(gettext("Reason"), textInput(step.reason, set("reason")), `${path}.reason`)];
    case "set_field": return [
      field(gettext("Field"), textInput(step.field, set("field")), `${path}.field`),
      field(gettext("Value"), textInput(looseText(step.value), (v) => { step.value = looseValue(v); changed(); }), `${path}.value`)];
    case "add_to_segment":
    case "remove_from_segment": return [field(gettext("Segment"), picker(ctx.catalog.segments, step.segment, set("segment"), { filter: (s) => s.kind === "static" }), `${path}.segment`, "static segments")];
    case "emit_event": return [
      field(gettext("Event type"), textInput(step.event_type, set("event_type")), `${path}.event_type`),
      field(gettext("Payload (JSON)"), jsonArea(step.payload ?? {}, (v) => { step.payload = v ?? {}; changed(); }), `${path}.payload`)];
    default: return [];
  }
}

function newAction(action) {
  switch (action) {
    case "send": return { action, channel: "email", template: "" };
    case "issue_promo_code": return { action, pool: "" };
    case "points": return { action, amount: 100, expires_in: null, reason: "" };
    case "set_field": return { action, field: "", value: "" };
    case "emit_event": return { action, event_type: "", payload: {} };
    default: return { action, segment: "" };
  }
}

function stepsForm(config, ctx, changed, redraw) {
  if (!Array.isArray(config.steps)) config.steps = [];
  const parts = [field(gettext("Relevant for"), durationInput(config.relevance, (v) => { config.relevance = v; changed(); }), "relevance",
    "Steps not executed within this time after the run arrived are dropped.")];
  config.steps.forEach((step, index) => {
    parts.push(h("fieldset", { className: "nf-step", "data-field": `steps.${index}` },
      h("legend", {}, `${gettext("Step")} ${index + 1}`),
      field(gettext("Action"), select(Object.entries(ACTIONS), step.action, (v) => { config.steps[index] = newAction(v); changed(); redraw(); }), `steps.${index}.action`),
      ...actionFields(step, index, ctx, changed, redraw),
      h("div", { className: "nf-row" },
        index > 0 ? h("button", { type: "button", className: "nf-small", onclick: () => { config.steps.splice(index - 1, 0, ...config.steps.splice(index, 1)); changed(); redraw(); } }, gettext("↑ up")) : null,
        h("button", { type: "button", className: "nf-small", onclick: () => { config.steps.splice(index, 1); changed(); redraw(); } }, gettext("Remove step")))));
  });
  parts.push(h("button", { type: "button", className: "nf-small", onclick: () => { config.steps.push(newAction("send")); changed(); redraw(); } }, gettext("Add step")));
  return parts;
}

function waitForm(config, ctx, changed, redraw) {
  const mode = config.mode;
  const parts = [field(gettext("Wait"), select([["fixed", gettext("a fixed time")], ["dynamic", gettext("until a date (customer or event)")], ["window", gettext("only for the exit window")]], mode, (v) => {
    const keep = config.window;
    for (const key of Object.keys(config)) delete config[key];
    config.mode = v;
    if (v === "fixed") config.duration = "P1D";
    if (v === "dynamic") Object.assign(config, { field: "", offset: "P0D" });
    if (v === "window" || keep) config.window = keep || { weekdays: ["mon", "tue", "wed", "thu", "fri"], from: "10:00", to: "18:00", timezone: "flow" };
    changed(); redraw();
  }), "mode")];
  if (mode === "fixed") parts.push(field(gettext("Duration"), durationInput(config.duration, (v) => { config.duration = v; changed(); }), "duration"));
  if (mode === "dynamic") {
    parts.push(field(gettext("Date field"), textInput(config.field, (v) => { config.field = v; changed(); }, { list: fieldPathList("date"), placeholder: "customer.fields.birthday or event.delivery_date" }), "field"),
      field(gettext("Offset"), durationInput(config.offset || "", (v) => { config.offset = v || "P0D"; changed(); }, { signed: true }), "offset"));
  }
  if (mode !== "window") {
    parts.push(field(gettext("Only leave inside a window"), h("input", { type: "checkbox", checked: !!config.window, onchange: (e) => {
      if (e.target.checked) config.window = { weekdays: ["mon", "tue", "wed", "thu", "fri"], from: "10:00", to: "18:00", timezone: "flow" };
      else delete config.window;
      changed(); redraw();
    } }), "window"));
  }
  if (config.window) parts.push(windowEditor(config.window, (w) => { config.window = w; changed(); }, "window"));
  return parts;
}

function limitationForm(config, ctx, changed, redraw) {
  const period = config.period;
  return [
    field(gettext("At most (passes)"), numberInput(config.max, (v) => { config.max = v; changed(); }, { min: 1 }), "max"),
    field(gettext("Per"), select([["", gettext("all time")], ["hours", gettext("hours (rolling)")], ["days", gettext("days (rolling)")], ["calendar_days", gettext("calendar days")], ["weeks", gettext("calendar weeks")]], period ? period.unit : "", (v) => {
      config.period = v ? { unit: v, every: period ? period.every : 1 } : null; changed(); redraw();
    }), "period.unit"),
    period ? field(gettext("Every"), numberInput(period.every, (v) => { period.every = v; changed(); }, { min: 1 }), "period.every") : null,
    field(gettext("Alert below (places left)"), numberInput(config.alert_below ?? null, (v) => { if (v === null) delete config.alert_below; else config.alert_below = v; changed(); }, { min: 0 }), "alert_below"),
  ];
}

// The A/B node's `winner` setting (SPEC §13): off, or the metric, the
// minimum sample per variant, the confidence and whether later customers go
// to the winner automatically. Missing numbers take the engine's defaults.
function winnerForm(config, changed, redraw) {
  const w = config.winner;
  const toggle = select([["", gettext("no (report only the figures)")], ["goal", gettext("yes, by conversions")], ["click", gettext("yes, by email clicks")]],
    w ? w.metric : "", (v) => {
      config.winner = v ? { metric: v, min_per_variant: w?.min_per_variant ?? 100, confidence: w?.confidence ?? 0.95, auto: w?.auto ?? false } : null;
      changed(); redraw();
    });
  if (!w) return [field(gettext("Pick a winner"), toggle, "winner")];
  return [
    field(gettext("Pick a winner"), toggle, "winner.metric"),
    field(gettext("Customers per variant first"), numberInput(w.min_per_variant ?? 100, (v) => { w.min_per_variant = v; changed(); }, { min: 10, step: 1 }), "winner.min_per_variant",
      gettext("Every variant but the control needs this many before the test is made.")),
    field(gettext("Confidence"), select([["0.9", "90 %"], ["0.95", "95 %"], ["0.99", "99 %"]], String(w.confidence ?? 0.95), (v) => { w.confidence = Number(v); changed(); }), "winner.confidence"),
    field(gettext("Then send new customers to the winner"), h("input", { type: "checkbox", checked: !!w.auto, onchange: (e) => { w.auto = e.target.checked; changed(); } }), "winner.auto",
      gettext("The control keeps its share; customers already in a variant stay there.")),
  ];
}

const FORMS = {
  event: eventForm,
  schedule: scheduleForm,
  condition: conditionForm,
  steps: stepsForm,
  splitter: (config, ctx, changed) => {
    if (!Array.isArray(config.branches)) config.branches = [];
    return [shareList(config.branches, (items, ports) => { config.branches = items; changed(ports); }, { path: "branches", label: "Branch" })];
  },
  wait: waitForm,
  ab_test: (config, ctx, changed, redraw) => {
    if (!Array.isArray(config.variants)) config.variants = [];
    return [shareList(config.variants, (items, ports) => { config.variants = items; changed(ports); }, { path: "variants", label: "Variant", withControl: true, max: 5 }),
      h("div", { className: "nf-hint" }, gettext("A customer keeps their variant in every later pass. The control variant gets no interactions.")),
      ...winnerForm(config, changed, redraw)];
  },
  limitation: limitationForm,
};

// Draws the form of `node` into `root`. ctx: {catalog, readOnly, onChange(node, {ports, renamedFrom})}.
export function renderNodeForm(root, node, ctx) {
  const redraw = () => renderNodeForm(root, node, ctx);
  const changed = (ports = false) => ctx.onChange(node, { ports });
  node.config = node.config && typeof node.config === "object" ? node.config : {};
  const form = FORMS[node.kind];
  root.replaceChildren(
    h("h3", {}, `${ctx.labels[node.kind] || node.kind} node`),
    field(gettext("Key"), textInput(node.key, (v) => { const old = node.key; node.key = v.trim(); ctx.onChange(node, { renamedFrom: old }); }, { pattern: "[A-Za-z0-9_\\-]+", required: true }), "key",
      "Letters, digits, _ and -; the same key in a later version is the same node."),
    field(gettext("Title"), textInput(node.title, (v) => { node.title = v; ctx.onChange(node, { title: true }); }), "title"),
    // A form leaves out a field it does not show as null: never as the text "null".
    ...(form ? form(node.config, ctx, changed, redraw) : [h("p", {}, gettext("Unknown kind %s: edit the document as JSON.").replace("%s", node.kind))])
      .filter((part) => part !== null && part !== undefined && part !== false),
  );
  if (ctx.readOnly) {
    for (const el of root.querySelectorAll("input, select, textarea, button")) el.disabled = true;
  }
  // Extras beside the fields (template-preview.js), drawn again with the form.
  if (ctx.decorate) ctx.decorate(root, node);
  showFieldErrors(root, ctx.errors || []);
}

// Puts each validation error of the node under its field (or at the top).
export function showFieldErrors(root, errors) {
  for (const el of root.querySelectorAll(".nf-error")) { el.textContent = ""; el.title = ""; }
  for (const el of root.querySelectorAll(".nf-has-error")) el.classList.remove("nf-has-error");
  let top = root.querySelector(".nf-errors-top");
  if (top) top.remove();
  const rest = [];
  for (const error of errors) {
    const path = error.field || "";
    // The closest field: "steps.0.template" -> "steps.0" -> "steps".
    let target = null;
    for (let parts = path.split("."); parts.length && !target; parts.pop()) {
      target = root.querySelector(`.nf-field[data-field="${CSS.escape(parts.join("."))}"]`);
    }
    if (target) {
      target.classList.add("nf-has-error");
      const slot = target.querySelector(".nf-error");
      // Plain words (error.text from the server); the code as the tooltip.
      slot.textContent = [slot.textContent, error.text || error.message].filter(Boolean).join("; ");
      slot.title = [slot.title, `${path}: ${error.message}`].filter(Boolean).join("\n");
    } else rest.push(error);
  }
  if (rest.length) {
    top = h("ul", { className: "nf-errors-top" }, rest.map((e) => h("li", { title: `${e.field || "node"}: ${e.message}` }, e.text || `${e.field || "node"}: ${e.message}`)));
    root.querySelector("h3").after(top);
  }
}
