// The launch review: pressing Launch (or Launch draft) saves what is not
// saved yet, asks the server what the launch would do (flows/admin/editor.py
// launch_review: what starts the flow, who would enter now through the
// audience preview, the launch limit, the schedule, what changes against the
// live version) and shows it in the confirmation dialog (confirm.js). A
// paused flow also asks whether to resume. Confirm posts to the launch URL;
// Cancel changes nothing.
"use strict";

const t = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

export function reviewBody(review) {
  const list = el("dl", { className: "lr-facts" });
  const row = (label, ...value) => list.append(el("dt", {}, label), el("dd", {}, ...value));
  row(t("What starts it"), review.start);
  row(t("Audience now"), el("span", { className: "lr-audience" }, review.audience.text));
  row(t("Launch limit"), review.launch_limit);
  row(t("Schedule"), review.schedule);
  if (review.live_version !== null) {
    const changes = el("ul", { className: "lr-changes" }, ...review.changes.map((line) => el("li", {}, line)));
    row(interpolate(t("Changes against live v%s"), [review.live_version]), changes);
  }
  const body = el("div", { className: "lr-review" }, list);
  if (review.paused) {
    const choice = el("fieldset", { className: "lr-resume" },
      el("legend", {}, t("The flow is paused. After the launch:")));
    const option = (value, text, checked) => {
      const id = `lr-resume-${value}`;
      choice.append(el("div", {},
        el("input", { type: "radio", name: "lr-resume", id, value, checked }),
        " ", el("label", { htmlFor: id }, text)));
    };
    option("0", t("keep it paused (no new runs until you resume it)"), true);
    option("1", t("resume it: customers start entering again"), false);
    body.append(choice);
  }
  return body;
}

function interpolate(text, values) {
  if (typeof window.interpolate === "function") return window.interpolate(text, values);
  let i = 0;
  return text.replace(/%s/g, () => String(values[i++]));
}

async function openReview(button, config) {
  const canvas = window.flowCanvas;
  if (canvas) await canvas.flush();
  if (canvas && canvas.conflict) return; // the conflict banner says why
  const response = await fetch(config.urls.review, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const review = await response.json().catch(() => ({}));
  if (!response.ok) {
    await window.maestraConfirm({ title: t("The flow cannot be launched"), message: review.message || response.statusText, action: t("OK") });
    return;
  }
  const body = reviewBody(review);
  const yes = await window.maestraConfirm({
    title: interpolate(t("Launch draft v%s?"), [review.version]),
    body,
    action: t("Launch"),
  });
  if (!yes) return;
  const resume = body.querySelector("input[name=lr-resume]:checked");
  const form = el("form", { method: "post", action: config.urls.launch, hidden: true },
    el("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrfToken() }),
    el("input", { type: "hidden", name: "resume", value: resume ? resume.value : "1" }));
  document.body.append(form);
  if (canvas) canvas.submitting = true;
  form.submit();
}

export function bindLaunchReview(root, config) {
  if (!config.urls || !config.urls.review) return;
  for (const button of root.querySelectorAll('button.fc-transition[value="launch"]')) {
    button.dataset.review = "";
    button.textContent = button.textContent.replace(/…?$/, "…");
    // Capture: before confirm.js and the canvas's submit handler.
    button.addEventListener("click", (event) => {
      event.preventDefault();
      event.stopImmediatePropagation();
      if (!button.disabled) openReview(button, config);
    }, true);
  }
}
