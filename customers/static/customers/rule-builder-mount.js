// Mounts the rule builder over every <textarea data-rule-builder> of the page
// (the segment form's rule, the audience page's rule). The textarea stays the
// form's field and the "advanced" JSON view: the builder writes it on every
// change, and typing JSON there redraws the builder.
import { loadCatalogue, ruleBuilder, t } from "./rule-builder.js";

function mount(area) {
  let initial = null;
  let broken = false; // JSON that does not parse (sent back by a failed save) stays in view
  const text = area.value.trim();
  if (text) {
    try { initial = JSON.parse(text); } catch { broken = true; }
  }
  const builder = ruleBuilder(initial, () => {}, {
    allowEvent: area.dataset.allowEvent === "true",
    path: area.dataset.rulePath || "rule",
    jsonTarget: area,
  });
  const toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "rb-small rb-advanced";
  toggle.setAttribute("aria-expanded", "false");
  toggle.setAttribute("aria-controls", area.id);
  const label = () => { toggle.textContent = area.hidden ? t("advanced") : t("back_to_builder"); };
  toggle.addEventListener("click", () => {
    area.hidden = !area.hidden;
    toggle.setAttribute("aria-expanded", String(!area.hidden));
    label();
  });
  area.addEventListener("input", () => {
    const value = area.value.trim();
    if (!value) { builder.setRule(null); return; }
    try { builder.setRule(JSON.parse(value)); } catch { /* keep the builder until the JSON parses */ }
  });
  area.hidden = !broken;
  label();
  loadCatalogue().then(label); // the words come translated with the catalogue
  const host = document.createElement("div");
  host.className = "rb-host";
  host.append(builder, toggle);
  area.before(host);
}

function mountAll() {
  for (const area of document.querySelectorAll("textarea[data-rule-builder]")) {
    if (!area.dataset.ruleBuilderMounted) { area.dataset.ruleBuilderMounted = "true"; mount(area); }
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
else mountAll();
