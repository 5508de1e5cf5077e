// Live status on the flow page: while the flow is in a status a worker moves
// it out of (launching, creating a draft), the page asks the status endpoint
// (flows/admin/editor.py status_view) every few seconds. When the status
// settles, the badge, the version line and the toolbar's buttons are
// refreshed in place from a fresh copy of the page: no reload, the canvas
// and its view stay as they are.
"use strict";

const t = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);

export class LiveStatus {
  constructor(root, config, { announce = () => {} } = {}) {
    this.root = root;
    this.config = config;
    this.announce = announce;
    this.status = config.status;
    this.timer = null;
    if (config.transient && config.urls && config.urls.status) this.schedule(config.pollSeconds || 3);
  }

  schedule(seconds) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.poll(), seconds * 1000);
  }

  async poll() {
    let data;
    try {
      const response = await fetch(this.config.urls.status, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.statusText);
      data = await response.json();
    } catch (error) {
      this.schedule(10); // the server is busy or away: ask again later
      return;
    }
    if (data.status !== this.status) this.show(data);
    this.status = data.status;
    if (data.transient) this.schedule(data.poll_seconds || 3);
    else this.refreshToolbar();
  }

  show(data) {
    const badge = this.root.querySelector(".fe-state");
    if (badge) {
      badge.className = `fe-state fe-state-${data.status}`;
      badge.textContent = data.label;
    }
    this.root.dataset.status = data.status;
    this.announce(t("The flow is now %s.").replace("%s", data.label));
  }

  // The buttons a settled flow offers (and the version line) come from the
  // server's own rendering of the page.
  async refreshToolbar() {
    try {
      const response = await fetch(location.pathname, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const selector of [".fc-version", "form.fc-actions"]) {
        const fresh = page.querySelector(`#flow-canvas ${selector}`);
        const current = this.root.querySelector(selector);
        if (fresh && current) current.replaceChildren(...[...fresh.childNodes].map((n) => document.importNode(n, true)));
      }
      this.root.dispatchEvent(new CustomEvent("flow:toolbar-refreshed", { bubbles: true }));
    } catch (error) {
      // The badge is right already; the buttons follow on the next visit.
    }
  }
}
