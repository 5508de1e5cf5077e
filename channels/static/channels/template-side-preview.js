// The preview beside the template form (issue #14, item 7). It shows the
// saved template rendered for the sample customer or a chosen one: the parts
// are taken from the template's preview page (channels/admin.py
// preview_view: every part escaped, the HTML part in a sandboxed iframe with
// its own policy), so the side and the full preview never disagree. Edits
// are not previewed before they are saved (the server renders with the
// engine's own renderer and budget); the note says when the form has
// unsaved changes, and "Save and continue editing" brings them in.
"use strict";

(function () {
  const aside = document.getElementById("tpl-side-preview");
  if (!aside) return;
  const t = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);
  const base = aside.dataset.previewUrl;
  const output = aside.querySelector(".tpl-side-output");
  const note = aside.querySelector(".tpl-side-note");
  const customer = aside.querySelector("#tpl-side-customer");
  const full = aside.querySelector(".tpl-side-full");
  let dirty = false;

  function say(text, isWarning) {
    note.textContent = text;
    note.classList.toggle("tpl-side-dirty", Boolean(isWarning));
  }

  async function show() {
    const query = customer.value.trim();
    const url = query ? `${base}?${new URLSearchParams({ customer: query })}` : base;
    full.href = url;
    output.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) {
        output.replaceChildren();
        say(`${t("The preview could not be loaded")} (${response.status} ${response.statusText}).`, true);
        return;
      }
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const parts = page.querySelectorAll(
        "#content-main .errornote, #content-main .render-error, #content-main table.template-preview",
      );
      output.replaceChildren(...[...parts].map((part) => document.importNode(part, true)));
      if (dirty) say(t("Unsaved changes are not shown: “Save and continue editing” brings them in."), true);
      else say(query ? t("The saved template, rendered for this customer.") : t("The saved template, rendered for a sample customer."));
    } catch (error) {
      say(`${t("The preview could not be loaded")}: ${error.message}`, true);
    } finally {
      output.removeAttribute("aria-busy");
    }
  }

  aside.querySelector(".tpl-side-show").addEventListener("click", show);
  // Enter in the customer box previews; it must not submit the template form.
  customer.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      show();
    }
  });
  const form = aside.closest("form");
  if (form) {
    const changed = (event) => {
      if (aside.contains(event.target) || dirty) return;
      dirty = true;
      say(t("Unsaved changes are not shown: “Save and continue editing” brings them in."), true);
    };
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
  }
  show();
})();
