// Structures in the browser: read POSCAR, XYZ (plain or extended) and CIF (P1, or with its symmetry
// operations listed), write POSCAR and extended XYZ, and turn a structure into /v1/infer's atoms.
//
// A structure is {name, numbers: [Z...], positions: [[x, y, z] Å...], cell: [[a], [b], [c]] | null,
// activeMask: [bool...] | null}; cell rows are the lattice vectors, null for a molecule.

import { atomicNumber, symbol } from "./elements.js";

export class ParseError extends Error {}

// ---- small linear algebra on 3-vectors and 3x3 row matrices

export function fracToCart(frac, cell) {
  return [0, 1, 2].map((j) => frac[0] * cell[0][j] + frac[1] * cell[1][j] + frac[2] * cell[2][j]);
}

export function inverse3(m) {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  if (Math.abs(det) < 1e-12) throw new ParseError("the cell vectors are degenerate (zero volume)");
  return [
    [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
    [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
    [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
  ];
}

export function cartToFrac(position, cell) {
  const inv = inverse3(cell);
  return [0, 1, 2].map((j) => position[0] * inv[0][j] + position[1] * inv[1][j] + position[2] * inv[2][j]);
}

/** Lattice vectors from a, b, c (Å) and alpha, beta, gamma (degrees): a along x, b in the xy plane. */
export function cellFromParameters(a, b, c, alpha, beta, gamma) {
  const rad = Math.PI / 180;
  const [ca, cb, cg, sg] = [Math.cos(alpha * rad), Math.cos(beta * rad), Math.cos(gamma * rad), Math.sin(gamma * rad)];
  const cy = (ca - cb * cg) / sg;
  const cz2 = 1 - cb * cb - cy * cy;
  if (!(cz2 > 0)) throw new ParseError("the cell angles do not make a cell");
  const clean = (x) => (Math.abs(x) < 1e-10 ? 0 : x);
  return [[a, 0, 0], [clean(b * cg), clean(b * sg), 0], [clean(c * cb), clean(c * cy), c * Math.sqrt(cz2)]];
}

// ---- reading

/** Every structure in a file; the format from the name's extension, else guessed from the text. */
export function parseStructures(text, name = "pasted") {
  const format = formatOf(name) || guessFormat(text);
  const base = name.replace(/\.[^.]*$/, "") || name;
  if (format === "cif") return parseCif(text, base);
  if (format === "xyz") return parseXyz(text, base);
  try {
    return [parsePoscar(text, base)];
  } catch (error) {
    if (formatOf(name) || !(error instanceof ParseError)) throw error;
    throw new ParseError(`not a CIF, XYZ or POSCAR file (read as a POSCAR: ${error.message})`);
  }
}

/** The format a file's name says, or null. */
function formatOf(name) {
  const lower = name.toLowerCase();
  if (lower.endsWith(".cif")) return "cif";
  if (lower.endsWith(".xyz") || lower.endsWith(".extxyz")) return "xyz";
  if (/(poscar|contcar)/.test(lower) || lower.endsWith(".vasp")) return "poscar";
  return null;
}

function guessFormat(text) {
  const first = text.trimStart().split("\n")[0].trim();
  if (/^data_/i.test(first) || /^\s*_cell_length_a/m.test(text)) return "cif";
  if (/^\d+$/.test(first)) return "xyz";
  return "poscar";
}

function numbersOf(line, count, what) {
  const values = line.trim().split(/\s+/).slice(0, count).map(Number);
  if (values.length < count || values.some((v) => !Number.isFinite(v))) {
    throw new ParseError(`${what}: expected ${count} numbers, got "${line.trim()}"`);
  }
  return values;
}

function elementNumber(name, where) {
  const number = atomicNumber(name);
  if (!number) throw new ParseError(`${where}: "${name}" is not an element`);
  return number;
}

export function parsePoscar(text, name = "POSCAR") {
  const lines = text.replace(/\r/g, "").split("\n");
  while (lines.length && !lines[lines.length - 1].trim()) lines.pop();
  if (lines.length < 8) throw new ParseError("POSCAR: too short (a comment, a scale, three lattice vectors, counts and coordinates)");
  const scale = numbersOf(lines[1], 1, "POSCAR line 2 (scale)")[0];
  let cell = [2, 3, 4].map((i) => numbersOf(lines[i], 3, `POSCAR line ${i + 1} (lattice vector)`));
  let line = 5;
  let species;
  if (/^\s*[A-Za-z]/.test(lines[line])) {
    species = lines[line].trim().split(/\s+/).map((s) => s.split(/[_/]/)[0]);
    line += 1;
  }
  const counts = lines[line].trim().split(/\s+/).map(Number);
  if (!counts.length || counts.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new ParseError(`POSCAR line ${line + 1}: expected the number of atoms of each element`);
  }
  line += 1;
  if (!species) {  // VASP 4: names, if anywhere, are in the comment line
    const guess = lines[0].trim().split(/\s+/);
    if (guess.length !== counts.length || guess.some((s) => !atomicNumber(s))) {
      throw new ParseError("POSCAR without element names (VASP 4 format): add the line of element symbols above the counts");
    }
    species = guess;
  }
  if (species.length !== counts.length) throw new ParseError("POSCAR: the element names and the counts differ in number");
  let selective = false;
  if (/^\s*s/i.test(lines[line])) {
    selective = true;
    line += 1;
  }
  const mode = (lines[line] || "").trim()[0]?.toLowerCase();
  if (!mode) throw new ParseError("POSCAR: the Direct/Cartesian line is missing");
  const cartesian = mode === "c" || mode === "k";
  line += 1;
  // a negative scale is the cell's volume
  const factor = scale < 0 ? Math.cbrt(-scale / Math.abs(det3(cell))) : scale;
  cell = cell.map((row) => row.map((x) => x * factor));
  const numbers = [];
  species.forEach((s, i) => {
    const number = elementNumber(s, "POSCAR element line");
    for (let k = 0; k < counts[i]; k += 1) numbers.push(number);
  });
  const positions = [];
  const mask = [];
  for (let i = 0; i < numbers.length; i += 1) {
    const raw = lines[line + i];
    if (raw === undefined) throw new ParseError(`POSCAR: ${numbers.length} atoms announced, ${i} coordinates found`);
    const xyz = numbersOf(raw, 3, `POSCAR line ${line + i + 1}`);
    positions.push(cartesian ? xyz.map((x) => x * factor) : fracToCart(xyz, cell));
    if (selective) mask.push(raw.trim().split(/\s+/).slice(3, 6).some((flag) => /^t/i.test(flag)));
  }
  return { name, numbers, positions, cell, activeMask: selective ? mask : null };
}

function det3(m) {
  return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
    + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

/** XYZ frames; an extended XYZ comment line's Lattice="..." makes a frame periodic. */
export function parseXyz(text, name = "xyz") {
  const lines = text.replace(/\r/g, "").split("\n");
  const structures = [];
  let line = 0;
  while (line < lines.length && lines[line].trim()) {
    const count = Number(lines[line].trim());
    if (!Number.isInteger(count) || count < 1) throw new ParseError(`XYZ line ${line + 1}: expected the number of atoms`);
    const comment = lines[line + 1] ?? "";
    const lattice = /Lattice\s*=\s*"([^"]+)"/i.exec(comment);
    const cell = lattice ? chunk(numbersOf(lattice[1], 9, "XYZ Lattice"), 3) : null;
    const numbers = [];
    const positions = [];
    for (let i = 0; i < count; i += 1) {
      const raw = lines[line + 2 + i];
      if (raw === undefined || !raw.trim()) throw new ParseError(`XYZ: ${count} atoms announced, ${i} found`);
      const [element, ...rest] = raw.trim().split(/\s+/);
      numbers.push(/^\d+$/.test(element) ? Number(element) : elementNumber(element, `XYZ line ${line + 3 + i}`));
      positions.push(numbersOf(rest.join(" "), 3, `XYZ line ${line + 3 + i}`));
    }
    const frame = structures.length ? `${name}_${structures.length}` : name;
    structures.push({ name: frame, numbers, positions, cell, activeMask: null });
    line += 2 + count;
    while (line < lines.length && !lines[line].trim()) line += 1;
  }
  if (!structures.length) throw new ParseError("XYZ: no atoms");
  return structures;
}

function chunk(values, size) {
  const rows = [];
  for (let i = 0; i < values.length; i += size) rows.push(values.slice(i, i + size));
  return rows;
}

// ---- CIF

/** CIF words: quoted strings stay whole, comments and semicolon text fields are dropped. */
function cifTokens(text) {
  const tokens = [];
  const lines = text.replace(/\r/g, "").split("\n");
  for (let i = 0; i < lines.length; i += 1) {
    const raw = lines[i];
    if (raw.startsWith(";")) {  // a multi-line text field: one value
      let value = raw.slice(1);
      for (i += 1; i < lines.length && !lines[i].startsWith(";"); i += 1) value += "\n" + lines[i];
      tokens.push(value);
      continue;
    }
    const pattern = /'([^']*)'(?=\s|$)|"([^"]*)"(?=\s|$)|(#.*)|(\S+)/g;
    let match;
    while ((match = pattern.exec(raw)) !== null) {
      if (match[3] !== undefined) break;
      tokens.push(match[1] ?? match[2] ?? match[4]);
    }
  }
  return tokens;
}

/** The data blocks of a CIF: {name, items: {tag: value}, loops: [{tags, rows}]}. */
function cifBlocks(text) {
  const tokens = cifTokens(text);
  const blocks = [];
  let block = null;
  let i = 0;
  const isTag = (t) => t !== undefined && t.startsWith("_");
  const isKeyword = (t) => t === undefined || isTag(t) || /^(loop_|data_)/i.test(t);
  while (i < tokens.length) {
    const token = tokens[i];
    if (/^data_/i.test(token)) {
      block = { name: token.slice(5), items: {}, loops: [] };
      blocks.push(block);
      i += 1;
    } else if (!block) {
      i += 1;
    } else if (/^loop_$/i.test(token)) {
      const tags = [];
      for (i += 1; isTag(tokens[i]); i += 1) tags.push(tokens[i].toLowerCase());
      const values = [];
      for (; !isKeyword(tokens[i]); i += 1) values.push(tokens[i]);
      block.loops.push({ tags, rows: chunk(values, tags.length) });
    } else if (isTag(token)) {
      block.items[token.toLowerCase()] = tokens[i + 1];
      i += 2;
    } else {
      i += 1;
    }
  }
  return blocks;
}

function cifNumber(value, tag) {
  const number = Number(String(value ?? "").replace(/\(\d+\)$/, ""));
  if (!Number.isFinite(number)) throw new ParseError(`CIF: ${tag} is not a number: "${value}"`);
  return number;
}

/** One symmetry operation, "-x+1/2, y, z-1/3", as [[row of x, y, z coefficients], ...] and a shift. */
export function parseOperation(text) {
  const parts = text.toLowerCase().replace(/\s/g, "").split(",");
  if (parts.length !== 3) throw new ParseError(`CIF: cannot read the symmetry operation "${text}"`);
  const rotation = [];
  const shift = [];
  for (const part of parts) {
    const row = [0, 0, 0];
    let offset = 0;
    for (const term of part.match(/[+-]?[^+-]+/g) || []) {
      const variable = /[xyz]/.exec(term);
      if (variable) {
        const factor = term.replace(/[xyz*]/g, "");
        const value = factor === "" || factor === "+" ? 1 : factor === "-" ? -1 : fraction(factor, text);
        row["xyz".indexOf(variable[0])] += value;
      } else {
        offset += fraction(term, text);
      }
    }
    rotation.push(row);
    shift.push(offset);
  }
  return { rotation, shift };
}

function fraction(term, text) {
  const [top, bottom] = term.split("/");
  const value = Number(top) / (bottom === undefined ? 1 : Number(bottom));
  if (!Number.isFinite(value)) throw new ParseError(`CIF: cannot read the symmetry operation "${text}"`);
  return value;
}

function column(loop, ...tags) {
  for (const tag of tags) {
    const index = loop.tags.indexOf(tag);
    if (index >= 0) return index;
  }
  return -1;
}

const OPERATION_TAGS = ["_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz"];
const P1 = /^p\s*1$/i;

export function parseCif(text, name = "cif") {
  const blocks = cifBlocks(text).filter((b) => b.items["_cell_length_a"] !== undefined);
  if (!blocks.length) throw new ParseError("CIF: no data block with a cell (_cell_length_a ...)");
  return blocks.map((block) => cifStructure(block, blocks.length > 1 ? `${name}_${block.name}` : name));
}

function cifStructure(block, name) {
  const get = (tag) => cifNumber(block.items[tag], tag);
  const cell = cellFromParameters(get("_cell_length_a"), get("_cell_length_b"), get("_cell_length_c"),
    get("_cell_angle_alpha"), get("_cell_angle_beta"), get("_cell_angle_gamma"));
  const sites = block.loops.find((loop) => column(loop, "_atom_site_fract_x", "_atom_site_cartn_x") >= 0);
  if (!sites) throw new ParseError("CIF: no atom sites (_atom_site_fract_x ...)");
  const opsLoop = block.loops.find((loop) => column(loop, ...OPERATION_TAGS) >= 0);
  let operations;
  if (opsLoop) {
    const at = column(opsLoop, ...OPERATION_TAGS);
    operations = opsLoop.rows.map((row) => parseOperation(row[at]));
  } else {
    const group = block.items["_symmetry_space_group_name_h-m"] ?? block.items["_space_group_name_h-m_alt"] ?? "P 1";
    if (!P1.test(group.trim())) {
      throw new ParseError(`CIF: space group ${group} without its symmetry operations; list them ` +
        "(_symmetry_equiv_pos_as_xyz) or give every atom (P1)");
    }
    operations = [parseOperation("x,y,z")];
  }
  const symbolAt = column(sites, "_atom_site_type_symbol", "_atom_site_label");
  const fract = column(sites, "_atom_site_fract_x") >= 0;
  const xAt = column(sites, fract ? "_atom_site_fract_x" : "_atom_site_cartn_x");
  const yAt = column(sites, fract ? "_atom_site_fract_y" : "_atom_site_cartn_y");
  const zAt = column(sites, fract ? "_atom_site_fract_z" : "_atom_site_cartn_z");
  const occupancyAt = column(sites, "_atom_site_occupancy");
  if (symbolAt < 0 || yAt < 0 || zAt < 0) throw new ParseError("CIF: atom sites need a symbol or label and x, y, z");
  const numbers = [];
  const fracs = [];
  for (const row of sites.rows) {
    const number = elementNumber(row[symbolAt], "CIF atom site");
    if (occupancyAt >= 0 && !["?", "."].includes(row[occupancyAt]) && cifNumber(row[occupancyAt], "occupancy") < 0.999) {
      throw new ParseError(`CIF: site ${row[symbolAt]} is partly occupied; only ordered structures can be used`);
    }
    let site = [xAt, yAt, zAt].map((k) => cifNumber(row[k], sites.tags[k]));
    if (!fract) site = cartToFrac(site, cell);
    for (const { rotation, shift } of operations) {
      const image = rotation.map((r, k) => wrap(r[0] * site[0] + r[1] * site[1] + r[2] * site[2] + shift[k]));
      if (!fracs.some((f, k) => numbers[k] === number && periodicDistance(f, image, cell) < 0.01)) {
        fracs.push(image);
        numbers.push(number);
      }
    }
  }
  return { name, numbers, positions: fracs.map((f) => fracToCart(f, cell)), cell, activeMask: null };
}

function wrap(x) {
  const value = x - Math.floor(x);
  return value > 1 - 1e-8 ? 0 : value;
}

function periodicDistance(a, b, cell) {
  const d = a.map((x, k) => x - b[k] - Math.round(x - b[k]));
  return Math.hypot(...fracToCart(d, cell));
}

// ---- writing and the API's atoms

export function formula(structure) {
  const counts = new Map();
  structure.numbers.forEach((n) => counts.set(n, (counts.get(n) || 0) + 1));
  return [...counts].map(([n, c]) => `${symbol(n)}${c === 1 ? "" : c}`).join("");
}

/** A VASP 5 POSCAR in Cartesian coordinates, atoms grouped by element in order of appearance. */
export function toPoscar(structure, comment = structure.name) {
  if (!structure.cell) throw new ParseError("a molecule has no cell: write it as XYZ");
  const order = [...new Set(structure.numbers)];
  const fmt = (v) => v.map((x) => x.toFixed(8).padStart(14)).join(" ");
  const lines = [comment, "1.0", ...structure.cell.map(fmt), order.map(symbol).join(" "),
    order.map((n) => structure.numbers.filter((m) => m === n).length).join(" "), "Cartesian"];
  for (const n of order) {
    structure.numbers.forEach((m, i) => { if (m === n) lines.push(fmt(structure.positions[i])); });
  }
  return lines.join("\n") + "\n";
}

/** One extended XYZ frame; ``extra`` holds key=value pairs for the comment line (energy, ...). */
export function toExtxyz(structure, extra = {}) {
  const info = Object.entries(extra).map(([k, v]) => `${k}=${typeof v === "string" ? `"${v}"` : v}`);
  const comment = structure.cell
    ? [`Lattice="${structure.cell.flat().map((x) => x.toFixed(8)).join(" ")}"`, "Properties=species:S:1:pos:R:3",
      ...info, 'pbc="T T T"']
    : ["Properties=species:S:1:pos:R:3", ...info];
  const rows = structure.numbers.map((n, i) =>
    `${symbol(n).padEnd(3)} ${structure.positions[i].map((x) => x.toFixed(8).padStart(14)).join(" ")}`);
  return [String(structure.numbers.length), comment.join(" "), ...rows].join("\n") + "\n";
}

/** /v1/infer's AtomicData: flattened coordinates, numbers, a row-major cell for crystals. */
export function toInferAtoms(structure) {
  const atoms = { coord: structure.positions.flat(), numbers: structure.numbers, structure_id: structure.name };
  if (structure.cell) atoms.cell = structure.cell.flat();
  if (structure.activeMask) atoms.active_mask = structure.activeMask;
  return atoms;
}

/** A structure from one /v1/infer result (its coord, numbers and cell). */
export function fromInferResult(result, name) {
  return {
    name,
    numbers: result.numbers,
    positions: chunk(result.coord, 3),
    cell: result.cell ? chunk(result.cell, 3) : null,
    activeMask: null,
  };
}
