// The flow canvas on the Flow admin page. The stored maestra.flow/1 document
// is the source of truth: Drawflow (vendored, global `Drawflow`) only draws
// it. Every change rebuilds the document from the drawing and autosaves it
// through the admin's JSON endpoint, which validates it; the errors come back
// onto the nodes and into a list that selects the failing node.

import { KIND_ORDER, START_KINDS, defaultConfig, h, portsOf, renderNodeForm, showFieldErrors } from "./node-forms.js";
import { StatsOverlay } from "./canvas-stats.js";

const SAVE_DELAY_MS = 300;
const GRID_X = 300;
const GRID_Y = 150;

class FlowCanvas {
  constructor(root, config) {
    performance.mark("flow-canvas-start");
    this.root = root;
    this.config = config;
    this.editable = config.editable;
    this.labels = Object.fromEntries(config.kinds.map((k) => [k.kind, k.label]));
    this.doc = structuredClone(config.document || { format: "maestra.flow/1", name: "", nodes: [], edges: [] });
    this.errors = config.errors || [];
    this.nodes = new Map(); // drawflow id -> document node (the objects of this.doc.nodes)
    this.ports = new Map(); // drawflow id -> current port names
    this.strayEdges = []; // edges the drawing cannot show (unknown node or port); kept in the document
    this.selected = null;
    this.saving = false;
    this.dirty = false;
    this.timer = null;
    this.loading = false;

    this.area = root.querySelector(".fc-area");
    this.panel = root.querySelector(".fc-form");
    this.errorList = root.querySelector(".fc-error-list");
    this.nodeList = root.querySelector(".fc-node-list");
    this.statusLine = root.querySelector(".fc-status");
    this.textarea = document.getElementById("id_draft_document");
    this.stats = new StatsOverlay(this, root.querySelector(".fc-stats-bar"));

    this.startEditor();
    this.buildPalette(root.querySelector(".fc-palette"));
    this.load(this.doc);
    this.renderErrors();
    this.bindPage();
    const hash = decodeURIComponent(location.hash || "");
    if (hash.startsWith("#node-")) this.selectByKey(hash.slice(6));
    // A live flow opens with its statistics of the last 7 days.
    if (config.isLive && !this.editable) this.stats.show();
    performance.measure("flow-canvas-draw", "flow-canvas-start");
  }

  // --- the editor ---------------------------------------------------------------

  startEditor() {
    const editor = (this.editor = new window.Drawflow(this.area));
    editor.reroute = false;
    editor.curvature = 0.4;
    editor.editor_mode = this.editable ? "edit" : "fixed";
    // Keys are ours (Delete, Escape), so they respect the side form's inputs
    // and our own selection, which the node list can set too.
    editor.key = (event) => this.onKey(event);
    editor.start();
    editor.on("nodeSelected", (id) => this.select(Number(id)));
    editor.on("nodeUnselected", () => this.deselect());
    // A selected connection takes the Delete key from the node.
    editor.on("connectionSelected", () => this.deselect());
    editor.on("nodeMoved", () => this.changed());
    editor.on("nodeRemoved", (id) => this.onNodeRemoved(Number(id)));
    editor.on("connectionCreated", (c) => this.onConnectionCreated(c));
    editor.on("connectionRemoved", () => this.changed());
    // In read-only ("fixed") mode Drawflow selects nothing: clicks are ours.
    this.area.addEventListener("click", (event) => {
      const element = event.target.closest(".drawflow-node");
      if (element) this.select(Number(element.id.replace("node-", "")));
    });
  }

  load(doc) {
    this.loading = true;
    this.editor.clear();
    this.nodes.clear();
    this.ports.clear();
    this.strayEdges = [];
    this.doc = doc;
    if (!Array.isArray(doc.nodes)) doc.nodes = [];
    if (!Array.isArray(doc.edges)) doc.edges = [];
    const layout = autoLayout(doc);
    for (const node of doc.nodes) {
      const position = node.position || layout.get(node.key) || { x: 40, y: 40 };
      this.draw(node, position);
    }
    const byKey = new Map([...this.nodes].map(([id, node]) => [node.key, id]));
    // Drawflow redraws both nodes' paths after each added connection, which
    // makes the browser lay the page out twice per edge; draw the paths once
    // per node after all of them exist instead.
    const update = this.editor.updateConnectionNodes;
    this.editor.updateConnectionNodes = () => {};
    for (const edge of doc.edges) {
      const from = byKey.get(edge.from);
      const to = byKey.get(edge.to);
      const index = from === undefined ? -1 : this.ports.get(from).indexOf(edge.port || "next");
      if (to === undefined || index < 0 || START_KINDS.includes(this.nodes.get(to).kind)) {
        this.strayEdges.push(edge);
        continue;
      }
      this.editor.addConnection(from, to, `output_${index + 1}`, "input_1");
    }
    this.editor.updateConnectionNodes = update;
    this.drawAllPaths();
    this.loading = false;
    this.renderNodeList();
    this.renderStrayEdges();
  }

  // Every connection's path from its ports' positions: all reads first, then
  // all writes, so the browser lays the page out once (same geometry as
  // Drawflow's updateConnectionNodes).
  drawAllPaths() {
    const editor = this.editor;
    const origin = editor.precanvas.getBoundingClientRect();
    const centre = (element) => {
      const box = element.getBoundingClientRect();
      return [element.offsetWidth / 2 + (box.x - origin.x) / editor.zoom,
        element.offsetHeight / 2 + (box.y - origin.y) / editor.zoom];
    };
    const paths = [];
    for (const svg of editor.precanvas.querySelectorAll("svg.connection")) {
      const classes = [...svg.classList];
      const to = classes.find((c) => c.startsWith("node_in_")).slice("node_in_".length);
      const from = classes.find((c) => c.startsWith("node_out_")).slice("node_out_".length);
      const output = editor.precanvas.querySelector(`#${from} .outputs .${classes.find((c) => c.startsWith("output_"))}`);
      const input = editor.precanvas.querySelector(`#${to} .inputs .${classes.find((c) => c.startsWith("input_"))}`);
      if (output && input) paths.push([svg.firstElementChild, ...centre(output), ...centre(input)]);
    }
    for (const [path, x1, y1, x2, y2] of paths) {
      path.setAttributeNS(null, "d", editor.createCurvature(x1, y1, x2, y2, editor.curvature, "openclose"));
    }
  }

  draw(node, position) {
    const ports = portsOf(node.kind, node.config);
    const inputs = START_KINDS.includes(node.kind) ? 0 : 1;
    const id = this.editor.addNode(node.kind, inputs, ports.length, position.x, position.y,
      `fc-kind-${node.kind}`, {}, nodeHtml(node, this.labels));
    this.nodes.set(id, node);
    this.ports.set(id, ports);
    this.element(id).dataset.key = node.key;
    this.labelPorts(id);
    return id;
  }

  labelPorts(id) {
    const element = this.element(id);
    if (!element) return;
    this.ports.get(id).forEach((port, index) => {
      const output = element.querySelector(`.outputs .output_${index + 1}`);
      if (!output) return;
      output.dataset.port = port;
      output.title = `exit "${port}": drag to a node to connect`;
      let label = output.querySelector(".fc-port");
      if (!label) label = output.appendChild(h("span", { className: "fc-port" }));
      label.textContent = port;
    });
  }

  element(id) {
    return this.area.querySelector(`#node-${id}`);
  }

  refreshNode(id) {
    const node = this.nodes.get(id);
    const element = this.element(id);
    if (!element) return;
    element.querySelector(".fc-title").textContent = node.title || node.key;
    element.querySelector(".fc-key").textContent = node.key;
    element.dataset.key = node.key;
  }

  // Keeps the node's outputs in step with its config (branches, variants).
  syncPorts(id) {
    const node = this.nodes.get(id);
    const wanted = portsOf(node.kind, node.config);
    const current = [...this.ports.get(id)];
    while (current.length > wanted.length) {
      // The first position where the names differ is the one removed.
      let index = current.findIndex((port, i) => port !== wanted[i]);
      if (index < 0 || index >= current.length) index = current.length - 1;
      this.editor.removeNodeOutput(id, `output_${index + 1}`);
      current.splice(index, 1);
    }
    while (current.length < wanted.length) {
      this.editor.addNodeOutput(id);
      current.push(wanted[current.length]);
    }
    this.ports.set(id, wanted);
    this.labelPorts(id);
    this.editor.updateConnectionNodes(`node-${id}`);
  }

  // --- building the document ------------------------------------------------------

  document() {
    const data = this.editor.drawflow.drawflow[this.editor.module].data;
    const edges = [];
    for (const [id, node] of this.nodes) {
      const drawn = data[id];
      if (!drawn) continue;
      node.position = { x: Math.round(drawn.pos_x), y: Math.round(drawn.pos_y) };
      this.ports.get(id).forEach((port, index) => {
        const output = drawn.outputs[`output_${index + 1}`];
        for (const connection of output ? output.connections : []) {
          const target = this.nodes.get(Number(connection.node));
          if (!target) continue;
          edges.push(port === "next" ? { from: node.key, to: target.key } : { from: node.key, port, to: target.key });
        }
      });
    }
    this.doc.nodes = [...this.nodes.values()];
    this.doc.edges = [...edges, ...this.strayEdges];
    return this.doc;
  }

  // --- changes and autosave --------------------------------------------------------

  changed() {
    if (this.loading || !this.editable) return;
    this.dirty = true;
    const doc = this.document();
    if (this.textarea) this.textarea.value = JSON.stringify(doc, null, 2);
    this.setStatus("Unsaved changes…", "pending");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(), SAVE_DELAY_MS);
  }

  async save() {
    if (this.saving) return; // the running save picks the change up when it ends
    this.saving = true;
    try {
      while (this.dirty) {
        this.dirty = false;
        this.setStatus("Saving…", "pending");
        const body = JSON.stringify({ document: this.document() });
        const response = await fetch(this.config.urls.save, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
          body,
          credentials: "same-origin",
        });
        const result = await response.json().catch(() => ({}));
        if (response.ok) {
          this.errors = result.errors || [];
          this.renderErrors();
          const count = this.errors.length;
          this.setStatus(`Saved draft v${result.version} · ${count ? `${count} error${count === 1 ? "" : "s"}` : "valid, ready to launch"}`,
            count ? "warning" : "ok");
          const summary = document.querySelector(".field-state_summary .readonly");
          if (summary && result.summary) summary.textContent = result.summary;
        } else {
          const message = result.message || (result.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ") || response.statusText;
          this.setStatus(`Not saved: ${message}`, "error");
          if (response.status === 400 && result.errors) { this.errors = result.errors; this.renderErrors(); }
          break;
        }
      }
    } catch (error) {
      this.setStatus(`Not saved: ${error.message}`, "error");
      this.dirty = true;
    } finally {
      this.saving = false;
    }
  }

  setStatus(text, level) {
    this.statusLine.textContent = text;
    this.statusLine.dataset.level = level;
  }

  // --- adding, removing, connecting --------------------------------------------------

  addNode(kind, position) {
    if (!this.editable) return null;
    if (this.nodes.size >= this.config.maxNodes) {
      this.setStatus(`A flow has at most ${this.config.maxNodes} nodes.`, "error");
      return null;
    }
    const taken = new Set([...this.nodes.values()].map((n) => n.key));
    let n = 1;
    while (taken.has(`${kind}_${n}`)) n++;
    const node = { key: `${kind}_${n}`, kind, config: defaultConfig(kind) };
    position = position || this.freeSpot();
    const id = this.draw(node, position);
    this.renderNodeList();
    this.select(id);
    this.changed();
    return id;
  }

  freeSpot() {
    const data = this.editor.drawflow.drawflow[this.editor.module].data;
    const used = new Set(Object.values(data).map((d) => `${Math.round(d.pos_x / GRID_X)}:${Math.round(d.pos_y / GRID_Y)}`));
    const left = Math.max(0, Math.round(-this.editor.canvas_x / this.editor.zoom / GRID_X));
    const top = Math.max(0, Math.round(-this.editor.canvas_y / this.editor.zoom / GRID_Y));
    for (let row = top; ; row++) {
      for (let col = left; col < left + 4; col++) {
        if (!used.has(`${col}:${row}`)) return { x: col * GRID_X + 40, y: row * GRID_Y + 40 };
      }
    }
  }

  removeNode(id) {
    if (!this.editable || !this.nodes.has(id)) return;
    this.editor.removeNodeId(`node-${id}`); // fires nodeRemoved
  }

  onNodeRemoved(id) {
    const node = this.nodes.get(id);
    this.nodes.delete(id);
    this.ports.delete(id);
    if (node) this.strayEdges = this.strayEdges.filter((e) => e.from !== node.key && e.to !== node.key);
    if (this.selected === id) this.deselect();
    this.renderNodeList();
    this.renderStrayEdges();
    this.changed();
  }

  onConnectionCreated({ output_id, input_id, output_class }) {
    // A port leads to one node at most: a new connection replaces the old one.
    const output = this.editor.getNodeFromId(output_id).outputs[output_class];
    for (const connection of [...output.connections]) {
      if (String(connection.node) !== String(input_id)) {
        this.editor.removeSingleConnection(output_id, connection.node, output_class, connection.output);
      }
    }
    this.changed();
  }

  // --- selection, keyboard --------------------------------------------------------------

  select(id) {
    if (!this.nodes.has(id)) return;
    for (const el of this.area.querySelectorAll(".drawflow-node.fc-selected")) el.classList.remove("fc-selected");
    this.selected = id;
    const element = this.element(id);
    element.classList.add("fc-selected");
    for (const item of this.nodeList.querySelectorAll("[data-node]")) {
      item.setAttribute("aria-selected", String(Number(item.dataset.node) === id));
    }
    this.renderForm();
    this.stats.renderDetails(this.nodes.get(id).key);
  }

  selectByKey(key, { reveal = true } = {}) {
    for (const [id, node] of this.nodes) {
      if (node.key === key) {
        this.select(id);
        if (reveal) this.reveal(id);
        return id;
      }
    }
    return null;
  }

  deselect() {
    this.selected = null;
    for (const el of this.area.querySelectorAll(".drawflow-node.fc-selected")) el.classList.remove("fc-selected");
    this.panel.replaceChildren(h("p", { className: "fc-hint" }, this.editable
      ? "Select a node to edit its settings, drag one from the palette, or drag from an exit to a node to connect."
      : "Select a node to see its settings."));
    this.stats.renderDetails(null);
  }

  // Pans the canvas so the node is in view.
  reveal(id) {
    const drawn = this.editor.getNodeFromId(id);
    const editor = this.editor;
    editor.canvas_x = this.area.clientWidth / 2 - (drawn.pos_x + 110) * editor.zoom;
    editor.canvas_y = this.area.clientHeight / 2 - (drawn.pos_y + 40) * editor.zoom;
    editor.precanvas.style.transform = `translate(${editor.canvas_x}px, ${editor.canvas_y}px) scale(${editor.zoom})`;
  }

  onKey(event) {
    const target = event.target;
    const typing = target && (target.closest("input, textarea, select, [contenteditable]"));
    if (typing) return;
    if (event.key === "Escape") { this.deselect(); return; }
    if (!this.editable || (event.key !== "Delete" && !(event.key === "Backspace" && event.metaKey))) return;
    if (this.selected !== null) {
      event.preventDefault();
      this.removeNode(this.selected);
    } else if (this.editor.connection_selected) {
      event.preventDefault();
      this.editor.removeConnection();
    }
  }

  renderForm() {
    const id = this.selected;
    if (id === null) return this.deselect();
    const node = this.nodes.get(id);
    const container = h("div", { className: "fc-form-body" });
    renderNodeForm(container, node, {
      catalog: this.config.catalog,
      labels: this.labels,
      readOnly: !this.editable,
      errors: this.errors.filter((e) => e.node === node.key),
      onChange: (changedNode, { ports, renamedFrom }) => {
        if (renamedFrom !== undefined && renamedFrom !== changedNode.key) {
          for (const edge of this.strayEdges) {
            if (edge.from === renamedFrom) edge.from = changedNode.key;
            if (edge.to === renamedFrom) edge.to = changedNode.key;
          }
          this.renderNodeList();
        }
        if (ports) this.syncPorts(id);
        this.refreshNode(id);
        this.changed();
      },
    });
    const tools = h("div", { className: "fc-form-tools" },
      this.editable ? h("button", { type: "button", className: "fc-danger", onclick: () => this.removeNode(id) }, "Delete node") : null);
    this.panel.replaceChildren(container, tools);
  }

  // --- lists: nodes, errors, stray edges -------------------------------------------------

  renderNodeList() {
    const items = [...this.nodes].map(([id, node]) => h("li", {},
      h("button", {
        type: "button", "data-node": id, "aria-selected": String(id === this.selected),
        onclick: () => { this.select(id); this.reveal(id); },
      }, `${node.key} · ${this.labels[node.kind] || node.kind}${node.title ? ` · ${node.title}` : ""}`)));
    this.nodeList.replaceChildren(...items);
    this.root.querySelector(".fc-node-count").textContent = `${this.nodes.size} / ${this.config.maxNodes}`;
  }

  renderErrors() {
    const byKey = new Map();
    for (const error of this.errors) {
      if (!error.node) continue;
      if (!byKey.has(error.node)) byKey.set(error.node, []);
      byKey.get(error.node).push(error);
    }
    for (const [id, node] of this.nodes) {
      const element = this.element(id);
      if (!element) continue;
      const mine = byKey.get(node.key) || [];
      element.classList.toggle("fc-has-error", mine.length > 0);
      const slot = element.querySelector(".fc-errors");
      slot.textContent = mine.length ? `⚠ ${mine.length} error${mine.length === 1 ? "" : "s"}` : "";
      slot.title = mine.map((e) => `${e.field || "node"}: ${e.message}`).join("\n");
    }
    this.errorList.replaceChildren(...this.errors.map((error) => {
      const text = `${error.node ? `${error.node} · ` : ""}${error.field ? `${error.field}: ` : ""}${error.message}`;
      return h("li", {}, error.node && byKey.has(error.node)
        ? h("button", { type: "button", className: "fc-error-link", onclick: () => this.selectByKey(error.node) }, text)
        : text);
    }));
    this.root.querySelector(".fc-validity").textContent = this.errors.length
      ? `${this.errors.length} error${this.errors.length === 1 ? "" : "s"}: the flow cannot be launched until they are fixed.`
      : "No errors: the flow can be launched.";
    this.root.querySelector(".fc-validity").dataset.level = this.errors.length ? "error" : "ok";
    // Launching needs a valid draft: the buttons follow every autosave.
    for (const button of this.root.querySelectorAll("[data-needs-valid]")) {
      button.disabled = this.errors.length > 0;
      button.title = this.errors.length ? "Fix the errors below first" : "";
    }
    if (this.selected !== null) {
      const node = this.nodes.get(this.selected);
      const body = this.panel.querySelector(".fc-form-body");
      if (body && node) showFieldErrors(body, this.errors.filter((e) => e.node === node.key));
    }
  }

  renderStrayEdges() {
    const box = this.root.querySelector(".fc-stray");
    box.hidden = !this.strayEdges.length;
    box.querySelector("ul").replaceChildren(...this.strayEdges.map((edge, index) => h("li", {},
      `${edge.from} · ${edge.port || "next"} → ${edge.to} `,
      this.editable ? h("button", { type: "button", className: "nf-small", onclick: () => {
        this.strayEdges.splice(index, 1); this.renderStrayEdges(); this.changed();
      } }, "remove") : null)));
  }

  // --- palette and page --------------------------------------------------------------------

  buildPalette(palette) {
    if (!this.editable) { palette.hidden = true; return; }
    for (const kind of KIND_ORDER) {
      palette.append(h("button", {
        type: "button", draggable: "true", className: `fc-palette-item fc-kind-${kind}`, "data-kind": kind,
        title: `Drag onto the canvas, or press to add a ${this.labels[kind] || kind} node`,
        ondragstart: (event) => { event.dataTransfer.setData("application/x-maestra-kind", kind); event.dataTransfer.effectAllowed = "copy"; },
        onclick: () => this.addNode(kind),
      }, this.labels[kind] || kind));
    }
    this.area.addEventListener("dragover", (event) => { event.preventDefault(); event.dataTransfer.dropEffect = "copy"; });
    this.area.addEventListener("drop", (event) => {
      event.preventDefault();
      const kind = event.dataTransfer.getData("application/x-maestra-kind");
      if (!KIND_ORDER.includes(kind)) return;
      const rect = this.editor.precanvas.getBoundingClientRect();
      this.addNode(kind, { x: (event.clientX - rect.x) / this.editor.zoom, y: (event.clientY - rect.y) / this.editor.zoom });
    });
  }

  bindPage() {
    // Enter in the canvas's inputs must not submit the surrounding admin form.
    this.root.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target.matches("input")) event.preventDefault();
    });
    const name = document.getElementById("id_name");
    if (name && this.editable) name.addEventListener("input", () => { this.doc.name = name.value; });
    if (this.textarea && this.editable) {
      // The JSON field stays a way in: a valid document typed there redraws the canvas.
      this.textarea.addEventListener("change", () => {
        try {
          const doc = JSON.parse(this.textarea.value);
          this.deselect();
          this.load(doc);
          this.changed();
        } catch (error) {
          this.setStatus(`The JSON is not valid: ${error.message}`, "error");
        }
      });
    }
    // Leaving with an unsaved change asks first; posting the page's form does
    // not (it carries the document in its JSON field).
    const form = this.root.closest("form");
    if (form) form.addEventListener("submit", () => { this.submitting = true; });
    window.addEventListener("beforeunload", (event) => {
      if (!this.submitting && (this.dirty || this.saving)) { event.preventDefault(); event.returnValue = ""; }
    });
    this.root.querySelector(".fc-zoom-in").addEventListener("click", () => this.editor.zoom_in());
    this.root.querySelector(".fc-zoom-out").addEventListener("click", () => this.editor.zoom_out());
    this.root.querySelector(".fc-zoom-reset").addEventListener("click", () => this.editor.zoom_reset());
    this.deselect();
  }
}

function nodeHtml(node, labels) {
  const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<div class="fc-node" data-key="${esc(node.key)}">
    <div class="fc-kind">${esc(labels[node.kind] || node.kind)}</div>
    <div class="fc-title">${esc(node.title || node.key)}</div>
    <div class="fc-key">${esc(node.key)}</div>
    <div class="fc-node-stats"></div>
    <div class="fc-errors"></div>
  </div>`;
}

// Positions for nodes saved without one: layers by distance from the start.
function autoLayout(doc) {
  const next = new Map();
  for (const edge of doc.edges || []) {
    if (!next.has(edge.from)) next.set(edge.from, []);
    next.get(edge.from).push(edge.to);
  }
  const depth = new Map();
  const queue = doc.nodes.filter((n) => START_KINDS.includes(n.kind)).map((n) => n.key);
  for (const key of queue) depth.set(key, 0);
  while (queue.length) {
    const key = queue.shift();
    for (const to of next.get(key) || []) {
      if (!depth.has(to)) { depth.set(to, depth.get(key) + 1); queue.push(to); }
    }
  }
  const rows = new Map();
  const positions = new Map();
  const deepest = Math.max(0, ...depth.values());
  for (const node of doc.nodes) {
    const column = depth.has(node.key) ? depth.get(node.key) : deepest + 1;
    const row = rows.get(column) || 0;
    rows.set(column, row + 1);
    positions.set(node.key, { x: 40 + column * GRID_X, y: 40 + row * GRID_Y });
  }
  return positions;
}

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (input) return input.value;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

const root = document.getElementById("flow-canvas");
if (root) {
  const config = JSON.parse(document.getElementById("flow-canvas-config").textContent);
  window.flowCanvas = new FlowCanvas(root, config);
}
