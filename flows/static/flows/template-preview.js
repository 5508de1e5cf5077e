// Template preview and send-a-test from the steps node's side panel: under
// each "send a message" step, "Preview and test" shows the chosen template
// rendered for a customer (or the sample customer) exactly as the engine
// renders it, in a sandboxed frame fed by the template admin's own preview
// (channels/admin.py preview_html_view), links to the full preview, and
// sends a test through the template admin's send-test page (channels
// send_test service), which opens in a new tab with the result.
"use strict";

const t = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);
let uid = 0;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node && name !== "list") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function urlFor(pattern, id, customer = "") {
  const url = pattern.replace("__id__", encodeURIComponent(id));
  return customer ? `${url}?${new URLSearchParams({ customer })}` : url;
}

function previewBox(step, config) {
  const urls = config.urls || {};
  const templates = (config.catalog && config.catalog.templates) || [];
  const template = () => templates.find((x) => x.slug === step.template);
  const n = ++uid;
  const frame = el("iframe", { className: "tp-frame", sandbox: "", title: t("Template preview"), hidden: true, referrerPolicy: "no-referrer" });
  const note = el("p", { className: "tp-note", role: "status" });
  const customer = el("input", { type: "text", id: `tp-customer-${n}`, name: "customer", autocomplete: "off", className: "tp-customer" });
  const full = el("a", { href: "#", target: "_blank", rel: "noopener", className: "tp-full" }, t("Open the full preview"));
  const show = () => {
    const chosen = template();
    if (!chosen) {
      note.textContent = t("Choose a template first.");
      frame.hidden = true;
      return;
    }
    frame.src = urlFor(urls.templatePreviewHtml, chosen.id, customer.value.trim());
    frame.hidden = chosen.channel !== "email";
    full.href = urlFor(urls.templatePreview, chosen.id, customer.value.trim());
    note.textContent = customer.value.trim()
      ? t("Rendered for this customer, as the engine would send it.")
      : t("Rendered for the sample customer, as the engine would send it.");
  };
  const to = el("input", { type: "text", id: `tp-to-${n}`, name: "to", autocomplete: "off" });
  const sendCustomer = el("input", { type: "hidden", name: "customer" });
  const form = el("form", { method: "post", target: "_blank", className: "tp-send",
    onsubmit: (event) => {
      const chosen = template();
      sendCustomer.value = customer.value.trim();
      if (!chosen || !sendCustomer.value) {
        event.preventDefault();
        note.textContent = chosen ? t("Name the customer to render the test for.") : t("Choose a template first.");
        customer.focus();
        return;
      }
      form.action = urlFor(urls.templateSendTest, chosen.id);
    } },
    el("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrfToken() }),
    sendCustomer,
    el("div", { className: "nf-field" },
      el("label", { htmlFor: to.id }, t("Send the test to (empty: the customer's own address)")), to),
    el("button", { type: "submit", className: "nf-small tp-send-button" }, t("Send a test")));
  return el("details", { className: "tp-box" },
    el("summary", {}, t("Preview and test")),
    el("div", { className: "nf-field" },
      el("label", { htmlFor: customer.id }, t("Customer (id, email or phone; empty: a sample customer)")), customer),
    el("div", { className: "nf-row" },
      el("button", { type: "button", className: "nf-small tp-show", onclick: show }, t("Show preview")), full),
    note, frame, form);
}

// Called after the node's form is drawn (node-forms.js ctx.decorate).
export function attachTemplatePreviews(root, node, config) {
  const urls = config.urls || {};
  if (node.kind !== "steps" || !urls.templatePreview) return;
  const steps = (node.config && node.config.steps) || [];
  steps.forEach((step, index) => {
    if (!step || step.action !== "send") return;
    const fieldset = root.querySelector(`fieldset[data-field="steps.${index}"]`);
    if (!fieldset) return;
    // Drawn after the read-only form disables its controls: a launched
    // version's templates may still be previewed and tested (not edits).
    fieldset.append(previewBox(step, config));
  });
}
