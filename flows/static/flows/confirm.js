// Asks before posting what cannot be undone, in an accessible modal dialog
// (a native <dialog>: focus moves into it and comes back, Escape cancels,
// the rest of the page is inert while it is open) instead of window.confirm.
//
// - A submit button with data-confirm asks when it is pressed; a form with
//   data-confirm asks when it is submitted. data-confirm-title and
//   data-confirm-action give the dialog's heading and its confirm button.
// - window.maestraConfirm({title, message, body, action}) resolves to true or
//   false: other scripts (the canvas, a future launch review) open the same
//   dialog with content of their own (`body`: a DOM node).
// It replaces inline onsubmit/onclick handlers, which the admin's
// Content-Security-Policy does not run.
"use strict";

(function () {
  const text = (value) => (typeof window.gettext === "function" ? window.gettext(value) : value);
  let dialog = null;

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "mc-dialog";
    dialog.setAttribute("aria-labelledby", "mc-dialog-title");
    dialog.setAttribute("aria-describedby", "mc-dialog-body");
    dialog.innerHTML = `<form method="dialog">
      <h2 id="mc-dialog-title"></h2>
      <div id="mc-dialog-body" class="mc-dialog-body"></div>
      <div class="mc-dialog-buttons">
        <button type="submit" value="cancel" class="mc-cancel"></button>
        <button type="submit" value="confirm" class="mc-confirm"></button>
      </div></form>`;
    document.body.append(dialog);
    return dialog;
  }

  function maestraConfirm({ title, message, body, action, cancel } = {}) {
    const box = dialog || build();
    box.querySelector("h2").textContent = title || text("Are you sure?");
    const slot = box.querySelector(".mc-dialog-body");
    slot.replaceChildren();
    if (message) slot.append(Object.assign(document.createElement("p"), { textContent: message }));
    if (body) slot.append(body);
    box.querySelector(".mc-confirm").textContent = action || text("Confirm");
    box.querySelector(".mc-cancel").textContent = cancel || text("Cancel");
    box.returnValue = "";
    return new Promise((resolve) => {
      box.addEventListener("close", () => resolve(box.returnValue === "confirm"), { once: true });
      box.showModal();
      // The safe answer has the focus: Enter alone never confirms.
      box.querySelector(".mc-cancel").focus();
    });
  }
  window.maestraConfirm = maestraConfirm;

  // Buttons and forms already answered for: their next submit goes through.
  const answered = new WeakSet();

  function ask(element, then) {
    maestraConfirm({
      title: element.dataset.confirmTitle,
      message: element.dataset.confirm,
      action: element.dataset.confirmAction,
    }).then((yes) => {
      if (!yes) return;
      answered.add(element);
      then();
    });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-confirm], input[type=submit][data-confirm]");
    if (!button || answered.has(button) || !button.form) return;
    event.preventDefault();
    ask(button, () => button.form.requestSubmit(button));
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const submitter = event.submitter;
    if (submitter && answered.has(submitter)) {
      answered.delete(submitter);
      return;
    }
    if (!form.dataset || !form.dataset.confirm) return;
    if (answered.has(form)) {
      answered.delete(form);
      return;
    }
    event.preventDefault();
    ask(form, () => form.requestSubmit(submitter || undefined));
  });
})();
