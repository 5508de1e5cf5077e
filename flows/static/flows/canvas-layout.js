// Where nodes go on the canvas: the layered auto-layout (vendored dagre,
// top to bottom like the flow runs) and the free spot nearest to where a
// node is dropped or added, so that nodes never overlap.
//
// Boxes are {x, y, w, h} in canvas coordinates (Drawflow's pos_x/pos_y and
// the node's unscaled size).

import { graphlib, layout } from "./vendor/dagre/dagre.esm.js";

// Free space kept around every node: room for the entry dot above it, the
// exit dots below it and the lines between them.
export const GAP = 40;
const RANK_SEP = 70;
const NODE_SEP = 60;
const STEP = 20;
const MAX_RINGS = 400;

export function overlaps(a, b, gap = GAP) {
  return a.x < b.x + b.w + gap && b.x < a.x + a.w + gap && a.y < b.y + b.h + gap && b.y < a.y + a.h + gap;
}

// The position nearest to `box` (searched on a 20 px grid, ring by ring)
// where it overlaps none of `others`.
export function freeSpot(box, others, gap = GAP) {
  const fits = (x, y) => !others.some((other) => overlaps({ ...box, x, y }, other, gap));
  if (fits(box.x, box.y)) return { x: box.x, y: box.y };
  for (let ring = 1; ring <= MAX_RINGS; ring++) {
    const candidates = [];
    for (let i = -ring; i <= ring; i++) {
      candidates.push([i, -ring], [i, ring]);
      if (i > -ring && i < ring) candidates.push([-ring, i], [ring, i]);
    }
    candidates.sort((a, b) => a[0] * a[0] + a[1] * a[1] - (b[0] * b[0] + b[1] * b[1]));
    for (const [dx, dy] of candidates) {
      const x = box.x + dx * STEP;
      const y = box.y + dy * STEP;
      if (fits(x, y)) return { x, y };
    }
  }
  // Past 8,000 px in every direction: below everything.
  const bottom = Math.max(...others.map((o) => o.y + o.h));
  return { x: box.x, y: bottom + gap };
}

export function union(boxes) {
  if (!boxes.length) return null;
  const x = Math.min(...boxes.map((b) => b.x));
  const y = Math.min(...boxes.map((b) => b.y));
  const right = Math.max(...boxes.map((b) => b.x + b.w));
  const bottom = Math.max(...boxes.map((b) => b.y + b.h));
  return { x, y, w: right - x, h: bottom - y };
}

// Top-left positions of a layered layout: start nodes on top, each exit's
// node below it, lines between ranks only. `nodes`: [{key, w, h, ports}]
// in the document's order (`ports`: how many exits); `edges`: [{from, to,
// order}] where `order` is the exit's position on its node (left to right).
export function layered(nodes, edges, { origin = { x: 40, y: 40 } } = {}) {
  const graph = new graphlib.Graph({ multigraph: true });
  graph.setGraph({ rankdir: "TB", ranksep: RANK_SEP, nodesep: NODE_SEP, edgesep: 20, marginx: 0, marginy: 0 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const node of nodes) graph.setNode(node.key, { width: node.w, height: node.h });
  // dagre's first ordering follows the order edges were added in: adding
  // each node's edges in its exits' order (yes before no, branch 1 before
  // branch 2) puts their nodes left to right unless that crosses lines.
  const rank = new Map(nodes.map((node, index) => [node.key, index]));
  const sorted = edges
    .map((edge, index) => ({ ...edge, index }))
    .filter((edge) => edge.from !== edge.to && rank.has(edge.from) && rank.has(edge.to))
    .sort((a, b) => rank.get(a.from) - rank.get(b.from) || a.order - b.order || a.index - b.index);
  for (const edge of sorted) graph.setEdge(edge.from, edge.to, { weight: 1, minlen: 1 }, `e${edge.index}`);
  layout(graph);
  const centres = orderByExits(nodes, sorted, graph);
  const positions = new Map();
  for (const node of nodes) {
    const placed = graph.node(node.key);
    positions.set(node.key, { x: centres.get(node.key) - node.w / 2, y: placed.y - node.h / 2 });
  }
  const box = union(nodes.map((n) => ({ ...positions.get(n.key), w: n.w, h: n.h })));
  for (const position of positions.values()) {
    position.x = Math.round(position.x - (box ? box.x : 0) + origin.x);
    position.y = Math.round(position.y - (box ? box.y : 0) + origin.y);
  }
  return positions;
}

// dagre does not know that a node's exits sit side by side (yes left of
// no), so two branches may come out crossed. One pass, rank by rank from the
// top, puts each rank's nodes in the order of the exits they hang from
// (the mean x of their parents' exits), reusing the rank's places.
function orderByExits(nodes, edges, graph) {
  const centre = new Map(nodes.map((node) => [node.key, graph.node(node.key).x]));
  const rank = new Map(nodes.map((node) => [node.key, graph.node(node.key).rank]));
  const ports = new Map(nodes.map((node) => [node.key, node.ports || 1]));
  const parents = new Map();
  for (const edge of edges) {
    if (!parents.has(edge.to)) parents.set(edge.to, []);
    parents.get(edge.to).push(edge);
  }
  const ranks = new Map();
  for (const node of nodes) {
    if (!ranks.has(rank.get(node.key))) ranks.set(rank.get(node.key), []);
    ranks.get(rank.get(node.key)).push(node.key);
  }
  const spread = 60;
  for (const level of [...ranks.keys()].sort((a, b) => a - b)) {
    const keys = ranks.get(level);
    if (keys.length < 2) continue;
    const wanted = new Map(keys.map((key) => {
      const above = (parents.get(key) || []).filter((edge) => rank.get(edge.from) < level);
      if (!above.length) return [key, centre.get(key)];
      const xs = above.map((edge) => centre.get(edge.from) + (edge.order - (ports.get(edge.from) - 1) / 2) * spread);
      return [key, xs.reduce((sum, x) => sum + x, 0) / xs.length];
    }));
    const places = keys.map((key) => centre.get(key)).sort((a, b) => a - b);
    const ordered = [...keys].sort((a, b) => wanted.get(a) - wanted.get(b) || centre.get(a) - centre.get(b));
    ordered.forEach((key, index) => centre.set(key, places[index]));
  }
  return centre;
}
