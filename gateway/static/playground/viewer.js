// A small 3D structure viewer on a 2D canvas: perspective projection, depth-sorted shaded spheres
// coloured by element, the unit cell's twelve edges; drag to rotate, wheel to zoom.

import { colour, radius, symbol } from "./elements.js";
import { cartToFrac, fracToCart } from "./structure.js";

const BACKGROUND = "#f4f6f9";
const EDGE_COLOUR = "#3b4a5e";

function multiply(a, b) {
  return a.map((row) => [0, 1, 2].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));
}

function rotation(axis, angle) {
  const [c, s] = [Math.cos(angle), Math.sin(angle)];
  if (axis === "x") return [[1, 0, 0], [0, c, -s], [0, s, c]];
  return [[c, 0, s], [0, 1, 0], [-s, 0, c]];
}

function apply(m, v) {
  return m.map((row) => row[0] * v[0] + row[1] * v[1] + row[2] * v[2]);
}

/** Atoms on a cell face or corner are also drawn on the opposite one, so a cubic cell looks whole. */
function withBoundaryImages(structure) {
  const atoms = structure.numbers.map((n, i) => ({ number: n, position: structure.positions[i] }));
  if (!structure.cell) return atoms;
  const images = [];
  for (const atom of atoms) {
    const frac = cartToFrac(atom.position, structure.cell).map((x) => x - Math.floor(x + 1e-6));
    const shifts = frac.map((x) => (Math.abs(x) < 1e-3 ? [0, 1] : [0]));
    for (const i of shifts[0]) for (const j of shifts[1]) for (const k of shifts[2]) {
      if (i || j || k) images.push({ number: atom.number, position: fracToCart([frac[0] + i, frac[1] + j, frac[2] + k], structure.cell) });
    }
  }
  return atoms.concat(images);
}

function cellEdges(cell) {
  const corners = [];
  for (const i of [0, 1]) for (const j of [0, 1]) for (const k of [0, 1]) corners.push([i, j, k]);
  const edges = [];
  corners.forEach((a, p) => corners.forEach((b, q) => {
    if (q > p && a.reduce((n, x, d) => n + (x !== b[d] ? 1 : 0), 0) === 1) edges.push([fracToCart(a, cell), fracToCart(b, cell)]);
  }));
  return edges;
}

export class Viewer {
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.structure = null;
    this.zoom = 1;
    this.orientation = multiply(rotation("x", 0.35), rotation("y", -0.55));
    let last = null;
    canvas.addEventListener("pointerdown", (event) => {
      last = [event.clientX, event.clientY];
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!last) return;
      const [dx, dy] = [event.clientX - last[0], event.clientY - last[1]];
      last = [event.clientX, event.clientY];
      this.orientation = multiply(multiply(rotation("y", dx * 0.01), rotation("x", dy * 0.01)), this.orientation);
      this.draw();
    });
    canvas.addEventListener("pointerup", () => { last = null; });
    canvas.addEventListener("wheel", (event) => {
      event.preventDefault();
      this.zoom = Math.min(8, Math.max(0.2, this.zoom * Math.exp(-event.deltaY * 0.001)));
      this.draw();
    }, { passive: false });
  }

  /** Show ``structure`` ({numbers, positions, cell}), or clear the view with null. */
  show(structure) {
    this.structure = structure;
    if (structure) {
      this.atoms = withBoundaryImages(structure);
      this.edges = structure.cell ? cellEdges(structure.cell) : [];
      const points = this.atoms.map((a) => a.position).concat(this.edges.flat());
      this.centre = [0, 1, 2].map((d) => points.reduce((s, p) => s + p[d], 0) / points.length);
      this.extent = Math.max(1, ...points.map((p) => Math.hypot(p[0] - this.centre[0], p[1] - this.centre[1], p[2] - this.centre[2])));
    }
    this.draw();
  }

  /** Element symbols shown, for the legend. */
  elements() {
    return this.structure ? [...new Set(this.structure.numbers)].map((n) => ({ symbol: symbol(n), colour: colour(n) })) : [];
  }

  draw() {
    const { canvas, context } = this;
    context.fillStyle = BACKGROUND;
    context.fillRect(0, 0, canvas.width, canvas.height);
    if (!this.structure) return;
    const distance = 4 * this.extent;  // the camera's distance from the centre
    const pixels = (Math.min(canvas.width, canvas.height) / (2.3 * this.extent)) * this.zoom;
    const project = (position) => {
      const p = apply(this.orientation, position.map((x, d) => x - this.centre[d]));
      const perspective = distance / (distance - p[2]);
      return { x: canvas.width / 2 + p[0] * pixels * perspective, y: canvas.height / 2 - p[1] * pixels * perspective,
        z: p[2], scale: pixels * perspective };
    };
    const items = this.atoms.map((atom) => ({ kind: "atom", atom, ...project(atom.position) }));
    for (const [a, b] of this.edges) {
      const [p, q] = [project(a), project(b)];
      items.push({ kind: "edge", p, q, z: (p.z + q.z) / 2 });
    }
    items.sort((a, b) => a.z - b.z);  // far first
    for (const item of items) {
      if (item.kind === "edge") this.drawEdge(item.p, item.q);
      else this.drawAtom(item);
    }
  }

  drawEdge(p, q) {
    const { context } = this;
    context.strokeStyle = EDGE_COLOUR;
    context.lineWidth = 1.5;
    context.beginPath();
    context.moveTo(p.x, p.y);
    context.lineTo(q.x, q.y);
    context.stroke();
  }

  drawAtom({ atom, x, y, scale }) {
    const { context } = this;
    const r = Math.max(2, Math.min(1.1, Math.max(0.3, 0.5 * radius(atom.number))) * scale);
    const shade = context.createRadialGradient(x - r * 0.35, y - r * 0.35, r * 0.1, x, y, r);
    shade.addColorStop(0, "#ffffff");
    shade.addColorStop(0.35, colour(atom.number));
    shade.addColorStop(1, darker(colour(atom.number)));
    context.fillStyle = shade;
    context.beginPath();
    context.arc(x, y, r, 0, 2 * Math.PI);
    context.fill();
    context.strokeStyle = "rgba(0, 0, 0, 0.35)";
    context.lineWidth = 0.8;
    context.stroke();
  }
}

function darker(hex) {
  const value = parseInt(hex.slice(1), 16);
  const channels = [value >> 16, (value >> 8) & 255, value & 255].map((c) => Math.round(c * 0.45));
  return `rgb(${channels.join(",")})`;
}

/** Fill ``element`` with one coloured dot and symbol per element of the viewer's structure. */
export function renderLegend(element, viewer) {
  element.replaceChildren(...viewer.elements().map(({ symbol: s, colour: c }) => {
    const item = document.createElement("span");
    item.className = "legend-item";
    const dot = document.createElement("span");
    dot.className = "legend-dot";
    dot.style.background = c;
    item.append(dot, s);
    return item;
  }));
}
