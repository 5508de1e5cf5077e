// The rule builder: the rule language (customers/rules, SPEC §5 and §13) as
// groups of conditions, without typing JSON. Groups match all / any of their
// conditions and can be negated (NOT); a condition picks a field from the
// catalogue (customer attributes, the custom fields and event payload keys
// seen in the data), an operator that fits the field's type and a typed
// value; an event condition counts the customer's events ("has done
// order_created at least 2 times in the last 30 days, where …"). JSON stays
// available as "advanced". The server validates every save.
//
// Used by the canvas side panel (flows/static/flows/node-forms.js), the
// segment form and the audience page (rule-builder-mount.js). The data comes
// from <admin>/customers/customer/rule-catalogue/ (customers/admin_catalogue.py),
// with the builder's words translated by Django.

const DEFAULT_URL = "/admin/customers/customer/rule-catalogue/";
const ALL_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists", "not_exists",
  "before", "after", "within_last"];
const EVENT_OPS = ["count_gte", "count_lte", "count_eq", "exists", "not_exists"];
const UNITS = [["PT{n}M", "unit_minutes"], ["PT{n}H", "unit_hours"], ["P{n}D", "unit_days"], ["P{n}W", "unit_weeks"], ["P{n}M", "unit_months"]];
const OTHER = "__other__";
const EMPTY_CATALOGUE = { attributes: [], fields: [], events: [], channels: ["email", "sms", "mobile_push", "web_push", "webhook"],
  statuses: ["subscribed", "requires_confirmation", "unsubscribed"], segments: [], pools: [], ops_by_type: {}, strings: {} };
// English words until the catalogue brings Django's translation of them.
const WORDS = {
  all: "all of", any: "any of", match: "Match", not: "not", negate: "Negate (NOT)", add_condition: "Add condition",
  add_event: "Add event condition", add_group: "Add group", remove: "Remove", field: "Field", other_path: "Other path…",
  path: "Path", operator: "Operator", value: "Value", values_hint: "Several values: separate them with commas",
  event_type: "Event type", has_done: "Has done", times: "Times", in_the_last: "In the last", any_time: "Any time",
  amount: "Amount", unit: "Unit", where: "Where (the counted event)", add_where: "Add a where", remove_where: "Remove the where",
  advanced: "Advanced: edit as JSON", back_to_builder: "Back to the builder", json_invalid: "This is not valid JSON.",
  json_unsupported: "The builder cannot show this rule; edit it as JSON.", empty_rule: "No condition yet: everyone matches.",
  add_filter: "Add a filter", remove_filter: "Remove the filter", true: "true", false: "false", group_customer: "Customer",
  group_fields: "Custom fields", group_subscriptions: "Subscriptions", group_loyalty: "Points, segments and promo pools",
  group_event: "Trigger event", choose: "— choose —", loading: "Loading the fields…",
  catalogue_failed: "The field list could not be loaded; type paths by hand.", unit_minutes: "minutes", unit_hours: "hours",
  unit_days: "days", unit_weeks: "weeks", unit_months: "months", op_eq: "is", op_ne: "is not", op_gt: "greater than",
  op_gte: "at least", op_lt: "less than", op_lte: "at most", op_in: "is one of", op_not_in: "is none of",
  op_contains: "contains", op_exists: "has a value", op_not_exists: "has no value", op_before: "before", op_after: "after",
  op_within_last: "within the last", ev_count_gte: "at least", ev_count_lte: "at most", ev_count_eq: "exactly",
  ev_exists: "at least once", ev_not_exists: "never", segment: "Segment membership", points: "Points balance",
  pool: "Free codes in promo pool {slug}", subscription: "Subscription: {channel}",
};

// --- the catalogue -------------------------------------------------------------

let catalogue = null;
let loading = null;
let failed = false;
const waiting = new Set(); // redraws of builders drawn before the catalogue came

export function catalogueUrl() {
  const holder = document.querySelector("[data-rule-catalogue-url]");
  return (holder && holder.dataset.ruleCatalogueUrl) || DEFAULT_URL;
}

export function loadCatalogue(url = catalogueUrl()) {
  if (!loading) {
    loading = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(String(response.status)))))
      .then((data) => { catalogue = { ...EMPTY_CATALOGUE, ...data }; })
      .catch(() => { failed = true; })
      .finally(() => { for (const redraw of [...waiting]) redraw(); waiting.clear(); });
  }
  return loading;
}

function cat() { return catalogue || EMPTY_CATALOGUE; }

export function t(key, params = {}) {
  const text = (cat().strings || {})[key] ?? WORDS[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
}

// --- DOM helpers ------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "className") node.className = value;
    else if (name === "value") node.value = value;
    else if (name === "checked") node.checked = true;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let uid = 0;
// A control with its own visible <label>; `at` names the rule path its errors go to.
function labelled(text, control, at) {
  control.id = control.id || `rb-${++uid}`;
  return el("div", { className: "rb-ctl nf-field", "data-field": at || null },
    el("label", { for: control.id }, text), control, el("div", { className: "nf-error" }));
}

function options(pairs, value) {
  const list = pairs.map(([v, label]) => el("option", { value: v }, label));
  if (value !== undefined && value !== null && value !== "" && !pairs.some(([v]) => v === value)) {
    list.unshift(el("option", { value }, String(value)));
  }
  return list;
}

function selectOf(pairs, value, onChange, attrs = {}) {
  const select = el("select", { ...attrs, onchange: (e) => onChange(e.target.value) }, options(pairs, value));
  select.value = value ?? "";
  return select;
}

// --- rule <-> builder tree --------------------------------------------------------

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function fromRule(rule) {
  if (!isObject(rule)) return { kind: "raw", json: rule, negated: false };
  const keys = Object.keys(rule);
  for (const comb of ["all", "any"]) {
    if (keys.length === 1 && keys[0] === comb && Array.isArray(rule[comb])) {
      return { kind: "group", comb, negated: false, children: rule[comb].map(fromRule) };
    }
  }
  if (keys.length === 1 && keys[0] === "not") {
    const inner = fromRule(rule.not);
    if (inner.kind === "raw") return { kind: "raw", json: rule, negated: false };
    inner.negated = !inner.negated;
    return inner;
  }
  if ("event" in rule) {
    return { kind: "event", negated: false, event: rule.event ?? "", op: rule.op ?? "count_gte", value: rule.value,
      within: rule.within ?? null, where: rule.where ? asGroup(fromRule(rule.where)) : null };
  }
  if ("field" in rule && keys.every((k) => ["field", "op", "value"].includes(k))) {
    return { kind: "leaf", negated: false, field: rule.field ?? "", op: rule.op ?? "eq", value: rule.value, hasValue: "value" in rule };
  }
  return { kind: "raw", json: rule, negated: false };
}

function asGroup(node) {
  return node.kind === "group" ? node : { kind: "group", comb: "all", negated: false, children: [node] };
}

// The group's rule, without needless nesting: a lone condition of an "all"
// group stands for the group; an empty group is no rule (null).
function groupRule(group) {
  const children = group.children.map(toRule).filter((r) => r !== null);
  if (!children.length) return group.negated ? { not: { [group.comb]: [] } } : null;
  if (children.length === 1 && group.comb === "all" && !group.negated) return children[0];
  const rule = { [group.comb]: children };
  return group.negated ? { not: rule } : rule;
}

function toRule(node) {
  let rule;
  if (node.kind === "group") return groupRule(node);
  if (node.kind === "raw") rule = node.json;
  else if (node.kind === "event") {
    rule = { event: node.event, where: node.where ? groupRule(node.where) : null, within: node.within || null, op: node.op };
    if (node.op.startsWith("count_")) rule.value = node.value;
  } else {
    rule = { field: node.field, op: node.op };
    if (node.op !== "exists" && node.op !== "not_exists") rule.value = node.value;
  }
  return node.negated ? { not: rule } : rule;
}

// The rule path of each node as groupRule/toRule write it (for errors under fields).
function childPaths(group, at) {
  const live = group.children.filter((c) => toRule(c) !== null);
  const inner = group.negated ? `${at}.not` : at;
  const single = live.length === 1 && group.comb === "all" && !group.negated;
  const paths = new Map();
  live.forEach((child, index) => paths.set(child, single ? at : `${inner}.${group.comb}.${index}`));
  return paths;
}

// --- fields and their types -----------------------------------------------------------

function eventKeys(eventType) {
  const events = cat().events || [];
  const chosen = eventType === undefined ? events : events.filter((e) => e.type === eventType);
  const merged = new Map();
  for (const e of chosen) for (const key of e.keys || []) {
    const known = merged.get(key.path);
    merged.set(key.path, known && known !== key.type ? "any" : key.type);
  }
  return merged; // payload path -> type
}

function fieldGroups(scope) {
  const c = cat();
  if (scope.where !== undefined) {
    return [[t("where"), [...eventKeys(scope.where)].map(([p, type]) => [`event.${p}`, `event.${p}`, type])]];
  }
  const groups = [
    [t("group_customer"), (c.attributes || []).map((a) => [a.path, a.path, a.type])],
    [t("group_fields"), (c.fields || []).map((f) => [`customer.fields.${f.path}`, `customer.fields.${f.path}`, f.type])],
    [t("group_subscriptions"), (c.channels || []).map((ch) => [`subscription.${ch}`, t("subscription", { channel: ch }), "subscription"])],
    [t("group_loyalty"), [["points", t("points"), "number"], ["segment", t("segment"), "segment"],
      ...(c.pools || []).map((p) => [`promo_pool.${p.slug}.available`, t("pool", { slug: p.slug }), "number"])]],
  ];
  if (scope.allowEvent) {
    groups.push([t("group_event"), [...eventKeys()].map(([p, type]) => [`event.${p}`, `event.${p}`, type])]);
  }
  return groups;
}

function typeOf(path, scope) {
  if (typeof path !== "string" || !path) return "any";
  for (const [, items] of fieldGroups(scope)) for (const [value, , type] of items) if (value === path) return type;
  if (path.startsWith("subscription.")) return "subscription";
  if (path === "segment") return "segment";
  if (path === "points" || path.startsWith("promo_pool.")) return "number";
  if (path === "customer.created_at") return "datetime_attr";
  if (/^customer\.[a-z_]+$/.test(path)) return "string_attr";
  return "any";
}

function opsFor(type) {
  return (cat().ops_by_type || {})[type] || {
    string: ["eq", "ne", "in", "not_in", "contains", "exists", "not_exists"],
    number: ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "not_exists"],
    boolean: ["eq", "ne", "exists", "not_exists"],
    date: ["before", "after", "within_last", "exists", "not_exists"],
    subscription: ["eq", "ne", "in", "not_in", "exists", "not_exists"],
    segment: ["in", "not_in"],
    string_attr: ["eq", "ne", "in", "not_in", "contains", "exists", "not_exists"],
    datetime_attr: ["before", "after", "within_last", "exists", "not_exists"],
  }[type] || ALL_OPS;
}

// A value typed as text, read as the field's type expects it.
function readValue(text, type) {
  if (type === "number") return text.trim() === "" || Number.isNaN(Number(text)) ? text : Number(text);
  if (type === "boolean") return text === "true" ? true : text === "false" ? false : text;
  if (type === "any") { try { return JSON.parse(text); } catch { return text; } }
  return text;
}
function showValue(value) {
  return typeof value === "string" ? value : value === undefined || value === null ? "" : JSON.stringify(value);
}

// ISO 8601 duration as amount + unit (P30D, PT12H, P1M...); anything else as text.
function durationControls(value, onChange, at) {
  const match = /^P(?:(\d+)M|(\d+)W|(\d+)D|T(\d+)H|T(\d+)M)$/.exec(value || "");
  let unit = match ? (match[1] ? "P{n}M" : match[2] ? "P{n}W" : match[3] ? "P{n}D" : match[4] ? "PT{n}H" : "PT{n}M") : "P{n}D";
  let amount = match ? Number(match[1] || match[2] || match[3] || match[4] || match[5]) : value ? "" : 30;
  const emit = () => onChange(amount === "" || amount === null ? "" : unit.replace("{n}", Math.max(0, Math.round(amount))));
  const number = el("input", { type: "number", min: 0, step: 1, value: amount, className: "rb-amount",
    oninput: (e) => { amount = e.target.value === "" ? "" : Number(e.target.value); emit(); } });
  const units = selectOf(UNITS.map(([v, key]) => [v, t(key)]), unit, (v) => { unit = v; emit(); });
  if (!match && value) emit();
  return [labelled(t("amount"), number, at), labelled(t("unit"), units, at)];
}

// --- drawing ----------------------------------------------------------------------------

export function ruleBuilder(rule, onChange, { allowEvent = true, optional = false, path = "rule", jsonTarget = null } = {}) {
  const root = el("div", { className: "rb" });
  let tree = rule === null || rule === undefined ? { kind: "group", comb: "all", negated: false, children: [] } : asGroup(fromRule(rule));
  let present = !(optional && (rule === null || rule === undefined));
  let asJson = false;
  const scope = { allowEvent };

  const emit = () => {
    const value = present ? groupRule(tree) : null;
    if (jsonTarget) jsonTarget.value = value === null ? "" : JSON.stringify(value, null, 2);
    onChange(value);
  };
  const redraw = () => {
    const focused = document.activeElement && root.contains(document.activeElement) ? controlKey(document.activeElement) : null;
    // A read-only host (a launched version on the canvas) disabled the controls: keep them so.
    const disabled = root.querySelector("input:disabled, select:disabled, textarea:disabled, button:disabled") !== null;
    draw();
    if (disabled) for (const control of root.querySelectorAll("input, select, textarea, button")) control.disabled = true;
    // Keyboard users stay where they were: the same control of the same condition.
    if (focused) [...root.querySelectorAll("input, select, textarea, button")].find((c) => controlKey(c) === focused)?.focus();
  };

  function leafRow(node, rowAt, group, inWhere) {
    const at = node.negated ? `${rowAt}.not` : rowAt; // where the leaf's keys are in the emitted rule
    const nodeScope = inWhere !== undefined ? { where: inWhere } : scope;
    const groups = fieldGroups(nodeScope);
    const known = groups.some(([, items]) => items.some(([v]) => v === node.field));
    const other = node.field !== "" && !known;
    const fieldSelect = el("select", { className: "rb-field", onchange: (e) => {
      if (e.target.value === OTHER) { node.field = node.field || ""; node.other = true; }
      else { node.field = e.target.value; node.other = false; }
      fixOp(node, nodeScope); emit(); redraw();
    } }, el("option", { value: "" }, t("choose")),
    groups.filter(([, items]) => items.length).map(([label, items]) => el("optgroup", { label },
      items.map(([v, text]) => el("option", { value: v }, text)))),
    el("option", { value: OTHER }, t("other_path")));
    fieldSelect.value = other || node.other ? OTHER : node.field;
    const parts = [labelled(t("field"), fieldSelect, `${at}.field`)];
    if (other || node.other) {
      parts.push(labelled(t("path"), el("input", { type: "text", value: node.field, className: "rb-path",
        placeholder: inWhere !== undefined ? "event.total" : "customer.fields.tier",
        onchange: (e) => { node.field = e.target.value.trim(); fixOp(node, nodeScope); emit(); redraw(); } }), `${at}.field`));
    }
    const type = typeOf(node.field, nodeScope);
    const ops = opsFor(type);
    parts.push(labelled(t("operator"), selectOf((ops.includes(node.op) ? ops : [node.op, ...ops]).map((o) => [o, t(`op_${o}`)]), node.op, (v) => {
      node.op = v; fixValue(node, type); emit(); redraw();
    }, { className: "rb-op" }), `${at}.op`));
    parts.push(...valueControls(node, type, `${at}.value`));
    return row(node, rowAt, group, parts);
  }

  function fixOp(node, nodeScope) {
    const ops = opsFor(typeOf(node.field, nodeScope));
    if (!ops.includes(node.op)) node.op = ops[0];
    fixValue(node, typeOf(node.field, nodeScope));
  }
  function fixValue(node, type) {
    if (node.op === "exists" || node.op === "not_exists") return;
    if (node.op === "in" || node.op === "not_in") { if (!Array.isArray(node.value)) node.value = []; return; }
    if (Array.isArray(node.value)) node.value = "";
    if (node.op === "within_last" && !/^P/.test(String(node.value || ""))) node.value = "P30D";
    if (type === "boolean" && typeof node.value !== "boolean") node.value = true;
    if (node.value === undefined) node.value = "";
  }

  function valueControls(node, type, at) {
    const op = node.op;
    if (op === "exists" || op === "not_exists") return [];
    const set = (v) => { node.value = v; emit(); };
    if (op === "within_last") return durationControls(node.value, set, at);
    if (type === "segment") {
      const chosen = new Set(Array.isArray(node.value) ? node.value : []);
      const list = el("select", { multiple: true, size: 4, className: "rb-value", onchange: (e) => set([...e.target.selectedOptions].map((o) => o.value)) },
        options((cat().segments || []).map((s) => [s.slug, s.name ? `${s.slug} — ${s.name}` : s.slug]), undefined));
      for (const slug of chosen) if (![...list.options].some((o) => o.value === slug)) list.append(el("option", { value: slug }, slug));
      for (const option of list.options) option.selected = chosen.has(option.value);
      return [labelled(t("value"), list, at)];
    }
    if (op === "in" || op === "not_in") {
      const text = (Array.isArray(node.value) ? node.value : []).map(showValue).join(", ");
      const input = el("input", { type: "text", value: text, className: "rb-value", title: t("values_hint"), placeholder: "a, b, c",
        oninput: (e) => set(e.target.value.split(",").map((s) => s.trim()).filter(Boolean).map((s) => readValue(s, type === "subscription" ? "string" : type))) });
      return [labelled(t("value"), input, at)];
    }
    if (type === "subscription") {
      return [labelled(t("value"), selectOf([["", t("choose")], ...(cat().statuses || []).map((s) => [s, s])], node.value, set, { className: "rb-value" }), at)];
    }
    if (type === "boolean") {
      return [labelled(t("value"), selectOf([["true", t("true")], ["false", t("false")]], String(node.value), (v) => set(v === "true"), { className: "rb-value" }), at)];
    }
    if (op === "before" || op === "after" || type === "date" || type === "datetime_attr") {
      const plainDay = node.value === "" || /^\d{4}-\d{2}-\d{2}$/.test(String(node.value));
      const input = el("input", { type: plainDay ? "date" : "text", value: showValue(node.value), className: "rb-value", oninput: (e) => set(e.target.value) });
      return [labelled(t("value"), input, at)];
    }
    if (type === "number") {
      return [labelled(t("value"), el("input", { type: "number", step: "any", value: showValue(node.value), className: "rb-value", oninput: (e) => set(readValue(e.target.value, "number")) }), at)];
    }
    return [labelled(t("value"), el("input", { type: "text", value: showValue(node.value), className: "rb-value", oninput: (e) => set(readValue(e.target.value, type)) }), at)];
  }

  function eventRow(node, rowAt, group) {
    const at = node.negated ? `${rowAt}.not` : rowAt;
    const list = ensureEventList();
    const parts = [
      labelled(t("has_done"), el("input", { type: "text", value: node.event, list, className: "rb-event", placeholder: "order_created",
        onchange: (e) => { node.event = e.target.value.trim(); emit(); redraw(); } }), `${at}.event`),
      labelled(t("operator"), selectOf(EVENT_OPS.map((o) => [o, t(`ev_${o}`)]), node.op, (v) => {
        node.op = v; if (v.startsWith("count_") && !Number.isInteger(node.value)) node.value = 1; emit(); redraw();
      }, { className: "rb-event-op" }), `${at}.op`),
    ];
    if (node.op.startsWith("count_")) {
      parts.push(labelled(t("times"), el("input", { type: "number", min: 0, step: 1, value: node.value ?? 1, className: "rb-count",
        oninput: (e) => { node.value = e.target.value === "" ? null : Number(e.target.value); emit(); } }), `${at}.value`));
    }
    const anyTime = el("input", { type: "checkbox", checked: !node.within, className: "rb-any-time", onchange: (e) => {
      node.within = e.target.checked ? null : "P30D"; emit(); redraw();
    } });
    parts.push(labelled(t("any_time"), anyTime, `${at}.within`));
    if (node.within) {
      parts.push(el("span", { className: "rb-within", role: "group", "aria-label": t("in_the_last") }, el("span", { className: "rb-word" }, t("in_the_last")),
        durationControls(node.within, (v) => { node.within = v || null; emit(); }, `${at}.within`)));
    }
    const whereBox = el("div", { className: "rb-where" });
    if (node.where) {
      const whereAt = `${at}.where`;
      whereBox.append(groupBox(node.where, whereAt, null, node.event),
        el("button", { type: "button", className: "rb-small", onclick: () => { node.where = null; emit(); redraw(); } }, t("remove_where")));
    } else {
      whereBox.append(el("button", { type: "button", className: "rb-small rb-add-where", onclick: () => {
        node.where = { kind: "group", comb: "all", negated: false, children: [{ kind: "leaf", negated: false, field: "", op: "eq", value: "" }] };
        redraw();
      } }, t("add_where")));
    }
    return row(node, rowAt, group, parts, whereBox, "rb-event-row");
  }

  function row(node, at, group, parts, extra = null, className = "rb-leaf") {
    const negate = el("input", { type: "checkbox", checked: node.negated, className: "rb-negate", onchange: (e) => { node.negated = e.target.checked; emit(); redraw(); } });
    return el("div", { className: `rb-row ${className}`, "data-rule-path": at },
      labelled(t("not"), negate), el("div", { className: "rb-parts" }, parts), extra,
      group ? el("button", { type: "button", className: "rb-small rb-remove", "aria-label": `${t("remove")} (${at})`,
        onclick: () => { group.children.splice(group.children.indexOf(node), 1); emit(); redraw(); } }, "✕") : null);
  }

  function rawRow(node, at, group) {
    const area = el("textarea", { rows: 3, className: "rb-raw" });
    area.value = JSON.stringify(node.json, null, 2);
    area.addEventListener("input", () => {
      try { node.json = JSON.parse(area.value); area.classList.remove("nf-invalid"); emit(); } catch { area.classList.add("nf-invalid"); }
    });
    return row(node, at, group, [labelled(t("json_unsupported"), area, at)]);
  }

  function groupBox(group, at, parent, inWhere) {
    const paths = childPaths(group, at);
    const body = el("div", { className: "rb-children" }, group.children.map((child, index) => {
      const childAt = paths.get(child) || `${at}.${group.comb}.${index}`;
      if (child.kind === "group") return groupBox(child, childAt, group, inWhere);
      if (child.kind === "event") return eventRow(child, childAt, group);
      if (child.kind === "raw") return rawRow(child, childAt, group);
      return leafRow(child, childAt, group, inWhere);
    }));
    const comb = selectOf([["all", t("all")], ["any", t("any")]], group.comb, (v) => { group.comb = v; emit(); redraw(); }, { className: "rb-comb" });
    const negate = el("input", { type: "checkbox", checked: group.negated, className: "rb-group-negate", onchange: (e) => { group.negated = e.target.checked; emit(); redraw(); } });
    const add = (child) => { group.children.push(child); emit(); redraw(); };
    const adds = [
      el("button", { type: "button", className: "rb-small rb-add", onclick: () => add({ kind: "leaf", negated: false, field: "", op: "eq", value: "" }) }, t("add_condition")),
      inWhere === undefined ? el("button", { type: "button", className: "rb-small rb-add-event", onclick: () => add({ kind: "event", negated: false, event: "", op: "count_gte", value: 1, within: "P30D", where: null }) }, t("add_event")) : null,
      el("button", { type: "button", className: "rb-small rb-add-group", onclick: () => add({ kind: "group", comb: "all", negated: false, children: [{ kind: "leaf", negated: false, field: "", op: "eq", value: "" }] }) }, t("add_group")),
      parent ? el("button", { type: "button", className: "rb-small rb-remove", onclick: () => { parent.children.splice(parent.children.indexOf(group), 1); emit(); redraw(); } }, t("remove")) : null,
    ];
    return el("fieldset", { className: `rb-group${group.negated ? " rb-negated" : ""}`, "data-rule-path": at },
      el("legend", {}, labelled(t("match"), comb), labelled(t("negate"), negate)),
      group.children.length ? body : el("p", { className: "rb-empty" }, t("empty_rule")),
      el("div", { className: "rb-adds" }, adds));
  }

  function draw() {
    root.replaceChildren();
    if (!catalogue && !failed) {
      waiting.add(redraw);
      loadCatalogue();
    }
    if (failed) root.append(el("p", { className: "rb-note" }, t("catalogue_failed")));
    if (!present) {
      root.append(el("button", { type: "button", className: "rb-small rb-add-filter", onclick: () => { present = true; emit(); redraw(); } }, t("add_filter")));
      return;
    }
    if (asJson) {
      const area = el("textarea", { rows: 6, className: "rb-json nf-json" });
      area.value = JSON.stringify(groupRule(tree), null, 2);
      area.addEventListener("input", () => {
        const text = area.value.trim();
        try {
          const parsed = text ? JSON.parse(text) : null;
          tree = parsed === null ? { kind: "group", comb: "all", negated: false, children: [] } : asGroup(fromRule(parsed));
          area.classList.remove("nf-invalid"); emit();
        } catch { area.classList.add("nf-invalid"); }
      });
      root.append(labelled(t("advanced"), area, path),
        el("button", { type: "button", className: "rb-small rb-builder", onclick: () => { asJson = false; redraw(); } }, t("back_to_builder")));
      return;
    }
    root.append(groupBox(tree, path, null, undefined));
    root.append(el("div", { className: "rb-foot" },
      jsonTarget ? null : el("button", { type: "button", className: "rb-small rb-advanced", onclick: () => { asJson = true; redraw(); } }, t("advanced")),
      optional ? el("button", { type: "button", className: "rb-small rb-remove-filter", onclick: () => { present = false; emit(); redraw(); } }, t("remove_filter")) : null));
  }

  root.setRule = (value) => { tree = value === null || value === undefined ? { kind: "group", comb: "all", negated: false, children: [] } : asGroup(fromRule(value)); redraw(); };
  draw();
  return root;
}

// A control's identity across redraws: its condition's rule path, its kind and its name.
function controlKey(control) {
  const holder = control.closest("[data-rule-path]");
  const name = (control.labels && control.labels[0] && control.labels[0].textContent) || control.textContent || control.className;
  return `${holder ? holder.dataset.rulePath : ""}|${control.tagName}|${name}`;
}

// The id of a <datalist> of the event types received (for an event start's
// type box); filled when the catalogue arrives.
export function eventTypeList() {
  loadCatalogue().then(ensureEventList);
  return ensureEventList();
}

// A datalist of every field path the catalogue knows (customer attributes,
// the custom fields of the data, subscriptions, points, event payload keys)
// for a text box that takes a path (a condition's branches attribute); with
// `only` "date", the paths whose values are dates (a dynamic wait's date
// field). Returns the datalist's id.
export function fieldPathList(only) {
  loadCatalogue().then(() => ensureFieldList(only));
  return ensureFieldList(only);
}

function ensureFieldList(only) {
  const id = only === "date" ? "rb-date-paths" : "rb-field-paths";
  let list = document.getElementById(id);
  if (!list) {
    list = el("datalist", { id });
    document.body.append(list);
  }
  const paths = fieldGroups({ allowEvent: true }).flatMap(([, items]) => items)
    .filter(([value, , type]) => value !== "segment" && (only !== "date" || type === "date" || type === "datetime_attr"));
  if (list.options.length !== paths.length) {
    list.replaceChildren(...paths.map(([value, text]) => el("option", { value }, text === value ? "" : text)));
  }
  return id;
}

function ensureEventList() {
  let list = document.getElementById("rb-event-types");
  if (!list) {
    list = el("datalist", { id: "rb-event-types" });
    document.body.append(list);
  }
  const types = (cat().events || []).map((e) => e.type);
  if (list.options.length !== types.length) list.replaceChildren(...types.map((type) => el("option", { value: type })));
  return "rb-event-types";
}
