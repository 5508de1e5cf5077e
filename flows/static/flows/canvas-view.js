// The canvas's viewport: zoom, pan, fit-to-view, revealing a node, the wheel
// (pan; Ctrl/⌘ + wheel zooms about the pointer) and the minimap.
//
// Drawflow draws its nodes in a "precanvas" moved by translate(canvas_x,
// canvas_y) and scaled about its centre (its default transform-origin), so a
// canvas point p shows at canvas_x + c·(1 − zoom) + p·zoom in the area,
// c being half the precanvas's size.

import { union } from "./canvas-layout.js";

const SVG = "http://www.w3.org/2000/svg";
// Room kept around the flow by "fit": more below, where the tools float.
const FIT_PADDING = { top: 30, right: 40, bottom: 70, left: 40 };
const ZOOM_STEP = 1.2;

export class CanvasView {
  constructor({ editor, area, minimap, boxes, onChange }) {
    this.editor = editor;
    this.area = area;
    this.minimap = minimap;
    this.boxes = boxes; // () => [{x, y, w, h, kind, selected}]
    this.onChange = onChange || (() => {});
    this.frame = 0;
    this.live = null; // the translation while the canvas is being dragged
    if (minimap) this.bindMinimap();
  }

  get zoom() {
    return this.editor.zoom;
  }

  centre() {
    const pre = this.editor.precanvas;
    return { x: pre.clientWidth / 2, y: pre.clientHeight / 2 };
  }

  // Canvas point -> point in the area (pixels from its top-left corner).
  toArea(x, y, { canvasX = this.editor.canvas_x, canvasY = this.editor.canvas_y, zoom = this.zoom } = {}) {
    const c = this.centre();
    return { x: canvasX + c.x * (1 - zoom) + x * zoom, y: canvasY + c.y * (1 - zoom) + y * zoom };
  }

  toCanvas(x, y) {
    const c = this.centre();
    const e = this.editor;
    return { x: (x - e.canvas_x - c.x * (1 - e.zoom)) / e.zoom, y: (y - e.canvas_y - c.y * (1 - e.zoom)) / e.zoom };
  }

  // The part of the canvas the area shows, in canvas coordinates; `clear`
  // leaves out the band at the bottom where the tools and the minimap float.
  visible({ clear = false } = {}) {
    const top = this.toCanvas(0, 0);
    const bottom = this.toCanvas(this.area.clientWidth, this.area.clientHeight - (clear ? this.overlayBand() : 0));
    return { x: top.x, y: top.y, w: bottom.x - top.x, h: Math.max(1, bottom.y - top.y) };
  }

  overlayBand() {
    const area = this.area.getBoundingClientRect();
    const tops = [...this.area.parentElement.querySelectorAll(".fe-tools, .fe-minimap")]
      .map((el) => el.getBoundingClientRect())
      .filter((r) => r.height > 0)
      .map((r) => r.top);
    return tops.length ? Math.max(0, area.bottom - Math.min(...tops) + 8) : 0;
  }

  set(zoom, canvasX, canvasY) {
    const e = this.editor;
    e.zoom = zoom;
    e.zoom_last_value = zoom;
    e.canvas_x = canvasX;
    e.canvas_y = canvasY;
    e.precanvas.style.transform = `translate(${canvasX}px, ${canvasY}px) scale(${zoom})`;
    this.changed();
  }

  // Shows canvas point (x, y) at area point (ax, ay) at this zoom.
  place(x, y, ax, ay, zoom = this.zoom) {
    const c = this.centre();
    this.set(zoom, ax - c.x * (1 - zoom) - x * zoom, ay - c.y * (1 - zoom) - y * zoom);
  }

  centreOn(x, y, zoom = this.zoom) {
    this.place(x, y, this.area.clientWidth / 2, this.area.clientHeight / 2, zoom);
  }

  clampZoom(zoom) {
    return Math.min(this.editor.zoom_max, Math.max(this.editor.zoom_min, zoom));
  }

  // Zooms keeping the canvas point under `about` (an area point) in place.
  zoomTo(zoom, about = { x: this.area.clientWidth / 2, y: this.area.clientHeight / 2 }) {
    const point = this.toCanvas(about.x, about.y);
    this.place(point.x, point.y, about.x, about.y, this.clampZoom(zoom));
  }

  zoomIn() { this.zoomTo(this.zoom * ZOOM_STEP); }
  zoomOut() { this.zoomTo(this.zoom / ZOOM_STEP); }
  zoomReset() { this.zoomTo(1); }

  // Every node in view, as large as fits, never above 100 %.
  fit(boxes = this.boxes()) {
    const box = union(boxes);
    if (!box) return;
    const pad = FIT_PADDING;
    const width = Math.max(1, this.area.clientWidth - pad.left - pad.right);
    const height = Math.max(1, this.area.clientHeight - pad.top - pad.bottom);
    const zoom = this.clampZoom(Math.min(1, width / box.w, height / box.h));
    this.place(box.x + box.w / 2, box.y + box.h / 2, pad.left + width / 2, pad.top + height / 2, zoom);
  }

  isVisible(box, margin = 0) {
    const view = this.visible({ clear: true });
    return box.x - margin >= view.x && box.y - margin >= view.y
      && box.x + box.w + margin <= view.x + view.w && box.y + box.h + margin <= view.y + view.h;
  }

  // Pans (and zooms in to a readable size if needed) so that the box is in view.
  reveal(box, { minZoom = 0.6 } = {}) {
    const zoom = Math.max(this.zoom, Math.min(minZoom, this.editor.zoom_max));
    if (zoom === this.zoom && this.isVisible(box, 10)) return;
    const band = this.overlayBand();
    this.place(box.x + box.w / 2, box.y + box.h / 2, this.area.clientWidth / 2, (this.area.clientHeight - band) / 2, zoom);
  }

  pan(dx, dy) {
    this.set(this.zoom, this.editor.canvas_x + dx, this.editor.canvas_y + dy);
  }

  // Drawflow's wheel handler, replaced: the wheel pans, Ctrl/⌘ + wheel
  // (and a trackpad's pinch) zooms about the pointer.
  onWheel(event) {
    event.preventDefault();
    if (event.ctrlKey || event.metaKey) {
      const rect = this.area.getBoundingClientRect();
      const factor = Math.exp(-event.deltaY * 0.002);
      this.zoomTo(this.zoom * factor, { x: event.clientX - rect.x, y: event.clientY - rect.y });
    } else {
      this.pan(-event.deltaX, -event.deltaY);
    }
  }

  changed() {
    this.onChange();
    this.refresh();
  }

  // --- the minimap ------------------------------------------------------------------

  refresh(live = null) {
    this.live = live;
    if (!this.minimap || this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.drawMinimap();
    });
  }

  drawMinimap() {
    const svg = this.minimap.querySelector("svg");
    const boxes = this.boxes();
    let view = this.visible();
    if (this.live) {
      const c = this.centre();
      const e = this.editor;
      const x = (0 - this.live.x - c.x * (1 - e.zoom)) / e.zoom;
      const y = (0 - this.live.y - c.y * (1 - e.zoom)) / e.zoom;
      view = { x, y, w: view.w, h: view.h };
    }
    // While the minimap is dragged its scale stays put under the pointer.
    if (!this.dragging || !this.world) {
      const all = union([...boxes, view]);
      const pad = 40;
      this.world = { x: all.x - pad, y: all.y - pad, w: all.w + 2 * pad, h: all.h + 2 * pad };
    }
    svg.setAttribute("viewBox", `${this.world.x} ${this.world.y} ${this.world.w} ${this.world.h}`);
    const shapes = boxes.map((b) => {
      const rect = document.createElementNS(SVG, "rect");
      for (const [name, value] of Object.entries({ x: b.x, y: b.y, width: b.w, height: b.h, rx: 8 })) rect.setAttribute(name, value);
      rect.setAttribute("class", `fe-mini-node fc-kind-${b.kind}${b.selected ? " fe-mini-selected" : ""}${b.error ? " fe-mini-error" : ""}`);
      return rect;
    });
    const frame = document.createElementNS(SVG, "rect");
    for (const [name, value] of Object.entries({ x: view.x, y: view.y, width: view.w, height: view.h })) frame.setAttribute(name, value);
    frame.setAttribute("class", "fe-mini-view");
    frame.setAttribute("vector-effect", "non-scaling-stroke");
    svg.replaceChildren(...shapes, frame);
  }

  // Pressing or dragging on the minimap centres the canvas on that point.
  bindMinimap() {
    const svg = this.minimap.querySelector("svg");
    const go = (event) => {
      if (!this.world) return;
      const rect = svg.getBoundingClientRect();
      // preserveAspectRatio="xMidYMid meet": the world is scaled uniformly and centred.
      const scale = Math.min(rect.width / this.world.w, rect.height / this.world.h);
      const offsetX = (rect.width - this.world.w * scale) / 2;
      const offsetY = (rect.height - this.world.h * scale) / 2;
      this.centreOn(this.world.x + (event.clientX - rect.x - offsetX) / scale, this.world.y + (event.clientY - rect.y - offsetY) / scale);
    };
    svg.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      svg.setPointerCapture(event.pointerId);
      this.dragging = true;
      go(event);
      const move = (e) => go(e);
      svg.addEventListener("pointermove", move);
      svg.addEventListener("pointerup", () => {
        svg.removeEventListener("pointermove", move);
        this.dragging = false;
        this.refresh();
      }, { once: true });
    });
  }
}
