// Asks before posting what cannot be undone: a form with data-confirm asks
// when it is submitted, a submit button with data-confirm when it is pressed.
// It replaces inline onsubmit/onclick handlers, which the admin's
// Content-Security-Policy does not run.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-confirm], input[type=submit][data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (message && !window.confirm(message)) event.preventDefault();
});
