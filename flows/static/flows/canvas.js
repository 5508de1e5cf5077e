// The flow editor: a full-width canvas on the Flow admin page. The stored
// maestra.flow/1 document is the source of truth: Drawflow (vendored,
// global `Drawflow`) only draws it. Every change rebuilds the document from
// the drawing, records it for undo and autosaves it through the admin's JSON
// endpoint, which validates it; the errors come back onto the nodes, beside
// the settings' controls and into a list that selects the failing node.
//
// Nodes run top to bottom: the entry on top, the exits below with their
// names (and counts) inside the node, so a label never covers another
// node's entry; the auto-layout (canvas-layout.js, dagre) keeps lines
// between ranks.

import { KIND_ORDER, START_KINDS, defaultConfig, h, portsOf, renderNodeForm, showFieldErrors } from "./node-forms.js";
import { StatsOverlay } from "./canvas-stats.js";
import { History } from "./canvas-history.js";
import { CanvasView } from "./canvas-view.js";
import { GAP, freeSpot, layered, union } from "./canvas-layout.js";
import { FlowSettings, isSettingsError } from "./flow-settings.js";
import { bindLaunchReview } from "./launch-review.js";
import { paintDiff } from "./version-diff.js";
import { LiveStatus } from "./live-status.js";
import { attachTemplatePreviews } from "./template-preview.js";

const SAVE_DELAY_MS = 300;
const NODE_WIDTH = 220;
const PORT_WIDTH = 72;
const ARROW_STEP = 10;

function readJson(id, fallback) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : fallback;
}

// Typing keys go to the field, not to the canvas (Ctrl+Z undoes the typing).
function isTyping(target) {
  if (!target || !target.closest) return false;
  if (target.closest("textarea, [contenteditable]")) return true;
  const input = target.closest("input");
  return Boolean(input) && !["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"].includes(input.type);
}

class FlowCanvas {
  constructor(root, config) {
    performance.mark("flow-canvas-start");
    this.root = root;
    this.config = config;
    this.strings = readJson("flow-editor-strings", {});
    this.editable = config.editable;
    this.labels = Object.fromEntries(config.kinds.map((k) => [k.kind, k.label]));
    this.doc = structuredClone(config.document || { format: "maestra.flow/1", name: "", nodes: [], edges: [] });
    this.errors = config.errors || [];
    // Optimistic concurrency: the draft's revision this page last saw.
    this.revision = config.revision || 0;
    this.conflict = false;
    this.diff = config.diff || null;
    this.nodes = new Map(); // drawflow id -> document node (the objects of this.doc.nodes)
    this.ports = new Map(); // drawflow id -> current port names
    this.strayEdges = []; // edges the drawing cannot show (unknown node or port); kept in the document
    this.selected = null;
    this.saving = null; // the running save's promise
    this.dirty = false;
    this.timer = null;
    this.loading = false;
    this.commitQueued = false;
    this.pendingGroup = null;
    this.history = new History();

    this.area = root.querySelector(".fc-area");
    this.panel = root.querySelector(".fc-form");
    this.errorList = root.querySelector(".fc-error-list");
    this.nodeList = root.querySelector(".fc-node-list");
    this.statusLine = root.querySelector(".fc-status");
    this.announcer = root.querySelector(".fe-announce");
    this.textarea = document.getElementById("id_draft_document");
    this.tabs = new Tabs(root.querySelector(".fe-tabs"));

    fillZoneLists(readJson("flow-timezones", []));
    this.startEditor();
    this.view = new CanvasView({
      editor: this.editor,
      area: this.area,
      minimap: root.querySelector(".fe-minimap"),
      boxes: () => this.boxes(),
      onChange: () => this.showZoom(),
    });
    this.stats = new StatsOverlay(this, root.querySelector(".fc-stats-bar"));
    this.buildPalette(root.querySelector(".fc-palette"));
    this.load(this.doc);
    this.settings = new FlowSettings(root.querySelector(".fe-settings"), this);
    this.history.reset(JSON.stringify(this.document()));
    this.renderErrors();
    this.bindPage();
    this.sizeToWindow();
    this.view.fit();
    const hash = decodeURIComponent(location.hash || "");
    if (hash.startsWith("#node-")) this.selectByKey(hash.slice(6));
    // A live flow opens with its statistics of the last 7 days.
    if (config.isLive && !this.editable) this.stats.show();
    this.updateHistoryButtons();
    bindLaunchReview(root, config);
    this.liveStatus = new LiveStatus(root, config, { announce: (text) => this.announce(text) });
    performance.measure("flow-canvas-draw", "flow-canvas-start");
  }

  // A string of the page's catalogue (translated by Django), {name}s filled in.
  t(key, params = {}) {
    const text = this.strings[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
  }

  announce(text) {
    if (this.announcer) this.announcer.textContent = text;
  }

  // --- the editor ---------------------------------------------------------------

  startEditor() {
    const editor = (this.editor = new window.Drawflow(this.area));
    editor.reroute = false;
    editor.curvature = 0.5;
    editor.zoom_min = 0.2;
    editor.zoom_max = 1.6;
    // Dropping a line anywhere on a node connects it to the node's entry.
    editor.force_first_input = true;
    editor.editor_mode = this.editable ? "edit" : "fixed";
    // Lines leave a node at the bottom and enter the next at the top.
    editor.createCurvature = verticalCurve;
    // Keys are ours (Delete, Escape, undo/redo, arrows), so they respect the
    // side form's inputs and our own selection, which the node list sets too.
    // Drawflow listens on the canvas only; undo works from anywhere on the page.
    editor.key = () => {};
    document.addEventListener("keydown", (event) => this.onKey(event));
    // The wheel pans; Ctrl + wheel zooms about the pointer (canvas-view.js).
    editor.zoom_enter = (event) => this.view.onWheel(event);
    editor.start();
    editor.on("nodeSelected", (id) => this.select(Number(id)));
    editor.on("nodeUnselected", () => this.deselect());
    // A selected connection takes the Delete key from the node.
    editor.on("connectionSelected", () => this.deselect());
    editor.on("nodeMoved", (id) => this.changed(`move:${id}`));
    editor.on("nodeRemoved", (id) => this.onNodeRemoved(Number(id)));
    editor.on("connectionCreated", (c) => this.onConnectionCreated(c));
    editor.on("connectionRemoved", () => this.changed());
    editor.on("translate", (position) => this.view && this.view.refresh(position));
    editor.on("mouseUp", () => this.view && this.view.refresh());
    editor.on("mouseMove", () => { if (editor.drag && this.view) this.view.refresh(); });
    // In read-only ("fixed") mode Drawflow selects nothing: clicks are ours.
    this.area.addEventListener("click", (event) => {
      const element = event.target.closest(".drawflow-node");
      if (element && !this.editable) this.select(Number(element.id.replace("node-", "")));
    });
    // A node reached with Tab is selected and brought into view; the browser
    // must not scroll the area itself (Drawflow's geometry assumes it never does).
    this.area.addEventListener("scroll", () => { this.area.scrollTop = 0; this.area.scrollLeft = 0; });
    this.area.addEventListener("focusin", (event) => {
      const element = event.target.closest(".drawflow-node");
      if (!element) return;
      const id = Number(element.id.replace("node-", ""));
      if (this.selected !== id) this.select(id);
      this.view.reveal(this.box(id), { minZoom: this.view.zoom });
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
    for (const node of doc.nodes) this.draw(node, node.position || { x: 0, y: 0 });
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
    this.placeUnpositioned();
    this.drawAllPaths();
    this.loading = false;
    this.renderNodeList();
    this.renderStrayEdges();
    this.paintErrors();
    paintDiff(this, this.diff);
    if (this.stats && this.stats.data) this.stats.paint();
    if (this.view) this.view.refresh();
  }

  // Nodes saved without a position: a layered layout when none has one,
  // else each at the free spot nearest to the right of the others.
  placeUnpositioned() {
    const missing = [...this.nodes].filter(([, node]) => !node.position).map(([id]) => id);
    if (!missing.length) return;
    if (missing.length === this.nodes.size) {
      this.applyPositions(this.layoutPositions());
      return;
    }
    const placed = [...this.nodes.keys()].filter((id) => !missing.includes(id)).map((id) => this.box(id));
    for (const id of missing) {
      const box = this.box(id);
      const around = union(placed);
      const spot = freeSpot({ ...box, x: around.x + around.w + GAP, y: around.y }, placed);
      this.moveNode(id, spot);
      placed.push({ ...box, ...spot });
    }
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
    const element = this.element(id);
    element.dataset.key = node.key;
    // Reachable with Tab: focusing a node selects it (see startEditor).
    element.tabIndex = 0;
    element.setAttribute("role", "group");
    this.labelNode(id);
    this.labelPorts(id);
    return id;
  }

  labelNode(id) {
    const node = this.nodes.get(id);
    const element = this.element(id);
    element.setAttribute("aria-label", this.t("node_label", {
      kind: this.labels[node.kind] || node.kind, title: node.title || node.key, key: node.key,
    }));
  }

  labelPorts(id) {
    const element = this.element(id);
    if (!element) return;
    const ports = this.ports.get(id);
    // Wide enough for every exit's name inside the node.
    element.style.width = `${Math.max(NODE_WIDTH, ports.length * PORT_WIDTH)}px`;
    element.classList.toggle("fc-named-ports", ports.some((port) => port !== "next"));
    ports.forEach((port, index) => {
      const output = element.querySelector(`.outputs .output_${index + 1}`);
      if (!output) return;
      output.dataset.port = port;
      output.title = this.t("exit_title", { port });
      let box = output.querySelector(".fc-port-box");
      if (!box) box = output.appendChild(h("span", { className: "fc-port-box" }, h("span", { className: "fc-port" })));
      box.querySelector(".fc-port").textContent = port;
    });
  }

  element(id) {
    return this.area.querySelector(`#node-${id}`);
  }

  // The node's box in canvas coordinates.
  box(id) {
    const drawn = this.editor.drawflow.drawflow[this.editor.module].data[id];
    const element = this.element(id);
    return { x: drawn.pos_x, y: drawn.pos_y, w: element.offsetWidth, h: element.offsetHeight };
  }

  boxes() {
    const errors = new Set(this.errors.map((e) => e.node).filter(Boolean));
    return [...this.nodes].map(([id, node]) => ({
      ...this.box(id), kind: node.kind, selected: id === this.selected, error: errors.has(node.key),
    }));
  }

  moveNode(id, { x, y }) {
    const drawn = this.editor.drawflow.drawflow[this.editor.module].data[id];
    const element = this.element(id);
    drawn.pos_x = x;
    drawn.pos_y = y;
    element.style.left = `${x}px`;
    element.style.top = `${y}px`;
    if (!this.loading) this.editor.updateConnectionNodes(`node-${id}`);
  }

  refreshNode(id) {
    const node = this.nodes.get(id);
    const element = this.element(id);
    if (!element) return;
    element.querySelector(".fc-title").textContent = node.title || node.key;
    element.querySelector(".fc-key").textContent = node.key;
    element.dataset.key = node.key;
    this.labelNode(id);
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

  // --- layout ---------------------------------------------------------------------

  layoutPositions() {
    const keyOf = new Map([...this.nodes].map(([id, node]) => [id, node.key]));
    const nodes = [...this.nodes].map(([id, node]) => ({ key: node.key, id, ports: this.ports.get(id).length, ...this.box(id) }));
    const data = this.editor.drawflow.drawflow[this.editor.module].data;
    const edges = [];
    for (const [id] of this.nodes) {
      this.ports.get(id).forEach((port, index) => {
        const output = data[id].outputs[`output_${index + 1}`];
        for (const connection of output ? output.connections : []) {
          edges.push({ from: keyOf.get(id), to: keyOf.get(Number(connection.node)), order: index });
        }
      });
    }
    const positions = layered(nodes, edges);
    return new Map(nodes.map((n) => [n.id, positions.get(n.key)]));
  }

  applyPositions(positions) {
    for (const [id, position] of positions) this.moveNode(id, position);
    if (!this.loading) this.drawAllPaths();
  }

  tidyUp() {
    if (!this.editable || !this.nodes.size) return;
    this.applyPositions(this.layoutPositions());
    this.view.fit();
    this.changed();
    this.announce(this.t("tidied"));
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

  // --- changes, history and autosave ------------------------------------------------

  // Called for every edit. The events of one gesture (a node deleted with
  // its edges, a line replacing another) arrive in the same task: they are
  // recorded once, after it. `group` merges a run of edits of one field.
  changed(group = null) {
    if (this.loading || !this.editable) return;
    if (group) this.pendingGroup = group;
    if (this.commitQueued) return;
    this.commitQueued = true;
    queueMicrotask(() => this.commit());
  }

  commit() {
    if (!this.commitQueued) return;
    this.commitQueued = false;
    const group = this.pendingGroup;
    this.pendingGroup = null;
    const snapshot = JSON.stringify(this.document());
    if (this.history.record(snapshot, group)) this.afterChange();
  }

  afterChange() {
    this.dirty = true;
    this.root.dataset.saveState = "pending";
    if (this.textarea) this.textarea.value = JSON.stringify(this.doc, null, 2);
    this.setStatus(this.t("unsaved"), "pending");
    this.updateHistoryButtons();
    this.view.refresh();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(), SAVE_DELAY_MS);
  }

  undo() { this.travel(() => this.history.undo(), "undone"); }
  redo() { this.travel(() => this.history.redo(), "redone"); }

  travel(step, message) {
    if (!this.editable) return;
    this.commit(); // an edit of this very task is recorded before it is undone
    const snapshot = step();
    if (snapshot === null) return;
    const key = this.selected !== null && this.nodes.has(this.selected) ? this.nodes.get(this.selected).key : null;
    this.load(JSON.parse(snapshot));
    this.settings.render(this.doc);
    if (key === null || this.selectByKey(key, { reveal: false }) === null) this.deselect();
    this.afterChange();
    this.announce(this.t(message));
  }

  updateHistoryButtons() {
    const undo = this.root.querySelector(".fe-undo");
    const redo = this.root.querySelector(".fe-redo");
    if (undo) undo.disabled = !this.editable || !this.history.canUndo;
    if (redo) redo.disabled = !this.editable || !this.history.canRedo;
  }

  save() {
    if (this.saving) {
      // The running save picks the change up when it ends.
      return this.saving;
    }
    this.saving = this.saveLoop().finally(() => { this.saving = null; });
    return this.saving;
  }

  async saveLoop() {
    try {
      while (this.dirty && !this.conflict) {
        this.dirty = false;
        this.root.dataset.saveState = "saving";
        this.setStatus(this.t("saving"), "pending");
        const body = JSON.stringify({ document: this.document(), revision: this.revision });
        const response = await fetch(this.config.urls.save, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
          body,
          credentials: "same-origin",
        });
        const result = await response.json().catch(() => ({}));
        if (response.ok) {
          this.revision = result.revision ?? this.revision;
          if ("diff" in result) { this.diff = result.diff; paintDiff(this, this.diff); }
          this.errors = result.errors || [];
          this.renderErrors();
          const count = this.errors.length;
          this.setStatus(count
            ? this.t(count === 1 ? "saved_error" : "saved_errors", { version: result.version, count })
            : this.t("saved_valid", { version: result.version }), count ? "warning" : "ok");
          this.root.dataset.saveState = this.dirty ? "pending" : "saved";
          // How many saves came back: lets a test wait for the save of its own edit.
          this.root.dataset.saves = String(Number(this.root.dataset.saves || 0) + 1);
          const summary = document.querySelector(".field-state_summary .readonly");
          if (summary && result.summary) summary.textContent = result.summary;
        } else if (response.status === 409 && result.code === "draft_conflict") {
          this.showConflict(result);
          break;
        } else {
          const message = result.message || (result.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ") || response.statusText;
          this.setStatus(this.t("not_saved", { message }), "error");
          this.root.dataset.saveState = "error";
          if (response.status === 400 && result.errors) { this.errors = result.errors; this.renderErrors(); }
          break;
        }
      }
    } catch (error) {
      this.setStatus(this.t("not_saved", { message: error.message }), "error");
      this.root.dataset.saveState = "error";
      this.dirty = true;
    }
  }

  // Everything recorded is saved (before a lifecycle button leaves the page).
  async flush() {
    this.commit();
    clearTimeout(this.timer);
    if (this.saving) await this.saving;
    if (this.dirty) await this.save();
  }

  // Another tab or person saved this draft since it was loaded: stop
  // saving (never overwrite their change) and offer to reload.
  showConflict(result) {
    this.conflict = true;
    this.dirty = true;
    this.root.dataset.saveState = "conflict";
    this.setStatus(this.t("not_saved", { message: result.message }), "error");
    const banner = this.root.querySelector(".fe-conflict");
    if (banner) {
      banner.querySelector(".fe-conflict-text").textContent = result.message;
      banner.hidden = false;
      banner.querySelector("button").focus({ preventScroll: true });
    }
  }

  setStatus(text, level) {
    this.statusLine.textContent = text;
    this.statusLine.dataset.level = level;
  }

  renamed(name) {
    const title = this.root.querySelector(".fe-name");
    if (title) title.textContent = name;
  }

  // --- adding, removing, connecting --------------------------------------------------

  // A new node at `point` (canvas coordinates, its top centre), or in the
  // middle of what the canvas shows; never on top of another node.
  addNode(kind, point = null) {
    if (!this.editable) return null;
    if (this.nodes.size >= this.config.maxNodes) {
      this.setStatus(this.t("max_nodes", { max: this.config.maxNodes }), "error");
      return null;
    }
    const taken = new Set([...this.nodes.values()].map((n) => n.key));
    let n = 1;
    while (taken.has(`${kind}_${n}`)) n++;
    const node = { key: `${kind}_${n}`, kind, config: defaultConfig(kind) };
    const others = [...this.nodes.keys()].map((id) => this.box(id));
    const id = this.draw(node, { x: 0, y: 0 });
    const box = this.box(id);
    // What the canvas shows above the floating tools and minimap.
    const view = this.view.visible({ clear: true });
    let wanted;
    if (point) {
      // Under the pointer, inside the part of the canvas in view.
      const margin = 10;
      wanted = {
        x: Math.max(view.x + margin, Math.min(point.x - box.w / 2, view.x + view.w - box.w - margin)),
        y: Math.max(view.y + margin, Math.min(point.y - 20, view.y + view.h - box.h - margin)),
      };
    } else {
      wanted = { x: view.x + view.w / 2 - box.w / 2, y: view.y + view.h / 2 - box.h / 2 };
    }
    const spot = freeSpot({ ...box, ...wanted }, others);
    this.moveNode(id, { x: Math.round(spot.x), y: Math.round(spot.y) });
    this.renderNodeList();
    this.select(id);
    this.view.reveal(this.box(id), { minZoom: this.view.zoom });
    this.changed();
    this.announce(this.t("added", { kind: this.labels[kind] || kind, key: node.key }));
    return id;
  }

  removeNode(id) {
    if (!this.editable || !this.nodes.has(id)) return;
    const key = this.nodes.get(id).key;
    this.editor.removeNodeId(`node-${id}`); // fires nodeRemoved
    this.announce(this.t("deleted", { key }));
    this.area.focus({ preventScroll: true });
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
    this.tabs.select("node");
    this.view.refresh();
  }

  selectByKey(key, { reveal = true } = {}) {
    for (const [id, node] of this.nodes) {
      if (node.key === key) {
        this.select(id);
        if (reveal) this.view.reveal(this.box(id));
        return id;
      }
    }
    return null;
  }

  deselect() {
    this.selected = null;
    for (const el of this.area.querySelectorAll(".drawflow-node.fc-selected")) el.classList.remove("fc-selected");
    this.panel.replaceChildren(h("p", { className: "fc-hint" }, this.t(this.editable ? "hint_edit" : "hint_read")));
    this.stats.renderDetails(null);
    if (this.view) this.view.refresh();
  }

  onKey(event) {
    const target = event.target;
    if (target && target.closest && target.closest("dialog")) return;
    const mod = event.ctrlKey || event.metaKey;
    const key = event.key.toLowerCase();
    if (mod && (key === "z" || key === "y") && !isTyping(target)) {
      event.preventDefault();
      if (key === "y" || event.shiftKey) this.redo(); else this.undo();
      return;
    }
    if (event.key === "Escape") {
      // From the side panel back to the node on the canvas; on the canvas,
      // Escape deselects.
      if (this.selected !== null && this.root.querySelector(".fc-side").contains(target)) {
        this.element(this.selected).focus({ preventScroll: true });
      } else if (!isTyping(target)) {
        this.deselect();
      }
      return;
    }
    if (isTyping(target) || (target && target.closest && target.closest("select"))) return;
    const onCanvas = !target || target === document.body || this.area.contains(target);
    if (onCanvas && event.key === "Enter" && this.selected !== null && target.closest && target.closest(".drawflow-node")) {
      // Into the side panel: the node's first field.
      event.preventDefault();
      const field = this.panel.querySelector("input, select, textarea");
      if (field) field.focus();
      return;
    }
    if (onCanvas && this.editable && this.selected !== null && event.key.startsWith("Arrow")) {
      event.preventDefault();
      const step = event.shiftKey ? ARROW_STEP * 5 : ARROW_STEP;
      const box = this.box(this.selected);
      const dx = event.key === "ArrowLeft" ? -step : event.key === "ArrowRight" ? step : 0;
      const dy = event.key === "ArrowUp" ? -step : event.key === "ArrowDown" ? step : 0;
      this.moveNode(this.selected, { x: box.x + dx, y: box.y + dy });
      this.changed(`move:${this.selected}`);
      return;
    }
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
      decorate: (body, shown) => attachTemplatePreviews(body, shown, this.config),
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
        // One undo step per field typed in (its data-field path).
        const active = document.activeElement;
        const path = active && active.closest ? active.closest("[data-field]") : null;
        this.changed(path ? `node:${id}:${path.dataset.field}` : null);
      },
    });
    const tools = h("div", { className: "fc-form-tools" },
      this.editable ? h("button", { type: "button", className: "fc-danger", onclick: () => this.removeNode(id) }, this.t("delete_node")) : null);
    this.panel.replaceChildren(container, tools);
  }

  // --- lists: nodes, errors, stray edges -------------------------------------------------

  renderNodeList() {
    const items = [...this.nodes].map(([id, node]) => h("li", {},
      h("button", {
        type: "button", "data-node": id, "aria-selected": String(id === this.selected),
        onclick: () => { this.select(id); this.view.reveal(this.box(id)); },
      }, `${node.key} · ${this.labels[node.kind] || node.kind}${node.title ? ` · ${node.title}` : ""}`)));
    this.nodeList.replaceChildren(...items);
    this.root.querySelector(".fc-node-count").textContent = `${this.nodes.size} / ${this.config.maxNodes}`;
  }

  errorsByNode() {
    const byKey = new Map();
    for (const error of this.errors) {
      if (!error.node) continue;
      if (!byKey.has(error.node)) byKey.set(error.node, []);
      byKey.get(error.node).push(error);
    }
    return byKey;
  }

  paintErrors() {
    const byKey = this.errorsByNode();
    for (const [id, node] of this.nodes) {
      const element = this.element(id);
      if (!element) continue;
      const mine = byKey.get(node.key) || [];
      element.classList.toggle("fc-has-error", mine.length > 0);
      const slot = element.querySelector(".fc-errors");
      slot.textContent = mine.length ? `⚠ ${this.t(mine.length === 1 ? "node_error" : "node_errors", { count: mine.length })}` : "";
      slot.title = mine.map((e) => e.text || `${e.field || "node"}: ${e.message}`).join("\n");
    }
  }

  renderErrors() {
    const byKey = this.errorsByNode();
    this.paintErrors();
    this.errorList.replaceChildren(...this.errors.map((error) => {
      // Plain words first (error.text, flows/plain_language.py); the code as the tooltip.
      const node = error.node ? [...this.nodes.values()].find((n) => n.key === error.node) : null;
      const text = error.text
        ? `${node ? `${node.title || node.key} · ` : error.node ? `${error.node} · ` : ""}${error.text}`
        : `${error.node ? `${error.node} · ` : ""}${error.field ? `${error.field}: ` : ""}${error.message}`;
      const code = `${error.node ? `${error.node} · ` : ""}${error.field ? `${error.field}: ` : ""}${error.message}`;
      if (error.node && byKey.has(error.node) && this.nodes.size) {
        return h("li", { title: code }, h("button", { type: "button", className: "fc-error-link", title: code, onclick: () => this.selectByKey(error.node) }, text));
      }
      if (isSettingsError(error)) {
        return h("li", { title: code }, h("button", { type: "button", className: "fc-error-link", title: code, onclick: () => {
          this.tabs.select("settings");
          this.settings.focusField(error.field);
        } }, text));
      }
      return h("li", { title: code }, text);
    }));
    const count = this.errors.length;
    const validity = this.root.querySelector(".fc-validity");
    validity.textContent = count ? this.t(count === 1 ? "invalid_one" : "invalid_many", { count }) : this.t("valid");
    validity.dataset.level = count ? "error" : "ok";
    const badge = this.root.querySelector(".fe-checks");
    badge.textContent = count ? this.t(count === 1 ? "problem_one" : "problem_many", { count }) : this.t("no_problems");
    badge.dataset.level = count ? "error" : "ok";
    this.root.querySelector(".fe-checks-count").textContent = count ? ` (${count})` : "";
    // Launching needs a valid draft: the buttons follow every autosave.
    for (const button of this.root.querySelectorAll("[data-needs-valid]")) {
      button.disabled = count > 0;
      button.title = count ? this.t("fix_first") : "";
    }
    if (this.selected !== null) {
      const node = this.nodes.get(this.selected);
      const body = this.panel.querySelector(".fc-form-body");
      if (body && node) showFieldErrors(body, this.errors.filter((e) => e.node === node.key));
    }
    if (this.settings) this.settings.showErrors(this.errors);
    this.view.refresh();
  }

  renderStrayEdges() {
    const box = this.root.querySelector(".fc-stray");
    box.hidden = !this.strayEdges.length;
    box.querySelector("ul").replaceChildren(...this.strayEdges.map((edge, index) => h("li", {},
      `${edge.from} · ${edge.port || "next"} → ${edge.to} `,
      this.editable ? h("button", { type: "button", className: "nf-small", onclick: () => {
        this.strayEdges.splice(index, 1); this.renderStrayEdges(); this.changed();
      } }, this.t("remove")) : null)));
  }

  // --- palette, toolbar and page --------------------------------------------------------------

  buildPalette(palette) {
    if (!this.editable) { palette.hidden = true; return; }
    const list = palette.querySelector(".fe-palette-items");
    for (const kind of KIND_ORDER) {
      const label = this.labels[kind] || kind;
      list.append(h("li", {}, h("button", {
        type: "button", draggable: "true", className: `fc-palette-item fc-kind-${kind}`, "data-kind": kind,
        title: this.t("palette_title", { kind: label }),
        ondragstart: (event) => { event.dataTransfer.setData("application/x-maestra-kind", kind); event.dataTransfer.effectAllowed = "copy"; },
        // Enter and Space press the button: the node lands in view, selected.
        onclick: () => this.addNode(kind),
      }, h("span", { className: "fe-swatch", "aria-hidden": "true" }), label)));
    }
    this.area.addEventListener("dragover", (event) => { event.preventDefault(); event.dataTransfer.dropEffect = "copy"; });
    this.area.addEventListener("drop", (event) => {
      event.preventDefault();
      const kind = event.dataTransfer.getData("application/x-maestra-kind");
      if (!KIND_ORDER.includes(kind)) return;
      const rect = this.area.getBoundingClientRect();
      this.addNode(kind, this.view.toCanvas(event.clientX - rect.x, event.clientY - rect.y));
    });
  }

  showZoom() {
    const reset = this.root.querySelector(".fc-zoom-reset");
    if (reset) reset.textContent = this.t("zoom", { percent: Math.round(this.editor.zoom * 100) });
  }

  // The editor fills the window below the admin's header.
  sizeToWindow() {
    const top = this.root.getBoundingClientRect().top + window.scrollY;
    this.root.style.setProperty("--fe-height", `${Math.max(480, window.innerHeight - top)}px`);
  }

  bindPage() {
    const on = (selector, handler) => {
      const element = this.root.querySelector(selector);
      if (element) element.addEventListener("click", handler);
    };
    on(".fe-undo", () => this.undo());
    on(".fe-redo", () => this.redo());
    on(".fc-zoom-in", () => this.view.zoomIn());
    on(".fc-zoom-out", () => this.view.zoomOut());
    on(".fc-zoom-reset", () => this.view.zoomReset());
    on(".fe-fit", () => this.view.fit());
    on(".fe-layout", () => this.tidyUp());
    on(".fe-checks", () => this.tabs.select("checks", { focus: true }));
    on(".fe-conflict-reload", () => { this.submitting = true; location.reload(); });
    const layout = this.root.querySelector(".fe-layout");
    if (layout) layout.disabled = !this.editable;
    window.addEventListener("resize", () => { this.sizeToWindow(); this.view.refresh(); });

    if (this.textarea && this.editable) {
      // The JSON field (under the editor) stays a way in: a valid document
      // typed there redraws the canvas, as one undoable step.
      this.textarea.addEventListener("change", () => {
        try {
          const doc = JSON.parse(this.textarea.value);
          this.deselect();
          this.load(doc);
          this.settings.render(this.doc);
          this.changed();
        } catch (error) {
          this.setStatus(this.t("json_invalid", { message: error.message }), "error");
        }
      });
    }
    // A lifecycle button leaves the page: what is not saved yet is saved first.
    const actions = this.root.querySelector("form.fc-actions");
    if (actions) {
      actions.addEventListener("submit", (event) => {
        if (!this.commitQueued && !this.dirty && !this.saving) return;
        event.preventDefault();
        const submitter = event.submitter;
        this.flush().then(() => {
          if (!this.dirty) actions.requestSubmit(submitter);
        });
      });
    }
    // Leaving with an unsaved change asks first; posting a form does not.
    document.addEventListener("submit", (event) => { if (!event.defaultPrevented) this.submitting = true; });
    window.addEventListener("beforeunload", (event) => {
      if (!this.submitting && (this.dirty || this.saving || this.commitQueued)) { event.preventDefault(); event.returnValue = ""; }
    });
    this.deselect();
  }
}

// Side panel tabs (WAI-ARIA tabs: arrow keys move between them).
class Tabs {
  constructor(list) {
    this.list = list;
    this.tabs = [...list.querySelectorAll('[role="tab"]')];
    for (const tab of this.tabs) {
      tab.addEventListener("click", () => this.select(tab.dataset.tab));
      tab.addEventListener("keydown", (event) => {
        const index = this.tabs.indexOf(tab);
        const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: this.tabs.length - 1 }[event.key];
        if (next === undefined) return;
        event.preventDefault();
        const target = this.tabs[(next + this.tabs.length) % this.tabs.length];
        this.select(target.dataset.tab, { focus: true });
      });
    }
  }

  select(name, { focus = false } = {}) {
    for (const tab of this.tabs) {
      const on = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
      if (on && focus) tab.focus();
    }
  }
}

// The IANA zones the server accepts, for the pickers (settings panel, wait
// windows, schedules); the browser's list filters them as one types.
function fillZoneLists(zones) {
  const options = () => zones.map((zone) => h("option", { value: zone }));
  const settings = document.getElementById("fe-timezone-list");
  if (settings) settings.replaceChildren(...options());
  const nodes = document.getElementById("nf-timezones");
  if (nodes) nodes.append(...options());
}

// Drawflow's curve, turned to run top to bottom (its own is left to right).
// A line back up (a loop, or a node placed above) bulges out to the right
// so that it does not run straight over the nodes between its ends.
const LOOP_SIDE = 260;
function verticalCurve(x1, y1, x2, y2, curvature) {
  if (y2 >= y1 + 20) {
    const bend = Math.max(40, (y2 - y1) * curvature);
    return ` M ${x1} ${y1} C ${x1} ${y1 + bend} ${x2} ${y2 - bend} ${x2} ${y2}`;
  }
  const bend = Math.max(60, (y1 - y2) * curvature * 0.5);
  return ` M ${x1} ${y1} C ${x1 + LOOP_SIDE} ${y1 + bend} ${x2 + LOOP_SIDE} ${y2 - bend} ${x2} ${y2}`;
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
