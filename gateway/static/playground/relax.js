// The Relax tab: structures read in the browser, sent in one streamed POST /v1/infer; each row fills in
// the moment its line arrives; before/after views and the relaxed structures as extended XYZ or POSCAR.

import { errorOf, jsonLines, request } from "./api.js";
import { ParseError, formula, fromInferResult, parseStructures, toExtxyz, toInferAtoms, toPoscar } from "./structure.js";
import { badge, byId, download, el, fillTable, fixed, showError } from "./ui.js";
import { Viewer, renderLegend } from "./viewer.js";

const NDJSON = "application/x-ndjson";
let before;
let after;
let entries = [];  // {name, structure, error, result, relaxed, row}

async function readInputs() {
  const sources = [];
  const pasted = byId("relax-text").value;
  if (pasted.trim()) sources.push({ name: "pasted", text: pasted });
  for (const file of byId("relax-files").files) sources.push({ name: file.name, text: await file.text() });
  const read = [];
  for (const source of sources) {
    try {
      for (const structure of parseStructures(source.text, source.name)) read.push({ name: structure.name, structure });
    } catch (error) {
      const message = error instanceof ParseError ? error.message : `cannot read this file: ${error.message}`;
      read.push({ name: source.name, error: message });
    }
  }
  return read;
}

function maxForce(forces) {
  let largest = 0;
  for (let i = 0; i < forces.length; i += 3) largest = Math.max(largest, Math.hypot(forces[i], forces[i + 1], forces[i + 2]));
  return largest;
}

function cells(entry) {
  const { structure, result } = entry;
  const state = entry.error ? el("span", { class: "bad", text: entry.error })
    : result ? el("span", { class: "ok", text: "done" }) : el("span", { class: "pending", text: entry.state || "waiting" });
  return [
    entry.name,
    structure ? `${formula(structure)} (${structure.numbers.length})` : "—",
    state,
    result ? fixed(result.energy, 4) : "—",
    result ? fixed(result.energy / result.numbers.length, 4) : "—",
    result ? fixed(maxForce(result.forces), 4) : "—",
    result ? String(result.optimizer_nsteps) : "—",
    result ? badge(result.converged) : "—",
    entry.seconds !== undefined ? entry.seconds.toFixed(1) : "—",
    result ? el("button", { type: "button", class: "small", text: result.cell ? "POSCAR" : "XYZ",
      onclick: (event) => { event.stopPropagation(); downloadOne(entry); } }) : "",
  ];
}

const HEADERS = ["structure", "formula (atoms)", "status", "energy (eV)", "eV/atom", "max force (eV/Å)", "steps",
  "converged", "done after (s)", ""];

function render() {
  const trs = fillTable(byId("relax-results"), HEADERS, entries.map(cells));
  trs.forEach((tr, i) => {
    entries[i].row = tr;
    tr.dataset.index = String(i);
    if (entries[i].structure) {
      tr.classList.add("selectable");
      tr.addEventListener("click", () => choose(i));
    }
  });
}

function update(entry) {
  const fresh = el("tr", {}, ...cells(entry).map((c) => el("td", {}, c instanceof Node ? c : String(c))));
  fresh.className = entry.row.className;
  fresh.dataset.index = entry.row.dataset.index;
  fresh.addEventListener("click", () => choose(Number(fresh.dataset.index)));
  entry.row.replaceWith(fresh);
  entry.row = fresh;
}

function choose(index) {
  const entry = entries[index];
  entries.forEach((e) => e.row.classList.toggle("chosen", e === entry));
  before.show(entry.structure);
  after.show(entry.relaxed || null);
  renderLegend(byId("relax-legend"), before);
}

function downloadOne(entry) {
  const text = entry.relaxed.cell ? toPoscar(entry.relaxed, `${entry.name} relaxed, E = ${entry.result.energy} eV`)
    : toExtxyz(entry.relaxed, { energy: entry.result.energy });
  download(`${entry.name}_relaxed.${entry.relaxed.cell ? "vasp" : "xyz"}`, text);
}

function downloadAll() {
  const done = entries.filter((e) => e.relaxed);
  const text = done.map((e) => toExtxyz(e.relaxed, { name: e.name, energy: e.result.energy,
    converged: e.result.converged ? "T" : "F" })).join("");
  download("relaxed.extxyz", text);
}

function requestBody(sent) {
  const body = { atoms: sent.map((e) => toInferAtoms(e.structure)) };
  if (byId("relax-cellopt").checked) body.cellopt = true;
  const fmax = byId("relax-fmax").value.trim();
  const steps = byId("relax-steps").value.trim();
  if (fmax) body.opttol = Number(fmax);
  if (steps) body.max_steps = Number(steps);
  return body;
}

async function relax(event) {
  event.preventDefault();
  showError("relax-error", null);
  byId("relax-download").disabled = true;
  entries = await readInputs();
  const sent = entries.filter((e) => e.structure);
  render();
  if (!entries.length) {
    showError("relax-error", new Error("paste a structure or choose files first"));
    return;
  }
  if (!sent.length) {
    showError("relax-error", new Error("none of the structures could be read (see the table)"));
    return;
  }
  choose(entries.indexOf(sent[0]));
  const button = byId("relax-submit");
  button.disabled = true;
  const started = performance.now();
  const progress = byId("relax-progress");
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  let finished = 0;
  progress.textContent = `Relaxing ${sent.length} structures…`;
  sent.forEach((e) => { e.state = "relaxing…"; update(e); });
  try {
    const response = await request("POST", "/v1/infer", { body: requestBody(sent), accept: NDJSON });
    if (!response.ok) throw await errorOf(response);
    for await (const line of jsonLines(response)) {
      if (line.index === undefined) {
        if (line.status !== "Success") throw new Error(line.error || `the relaxation ended with ${line.status}`);
        continue;
      }
      const entry = sent[line.index];
      entry.result = line;
      entry.relaxed = fromInferResult(line, entry.name);
      entry.seconds = (performance.now() - started) / 1000;
      finished += 1;
      update(entry);
      if (entry.row.classList.contains("chosen")) after.show(entry.relaxed);
      progress.textContent = `${finished} of ${sent.length} finished, ${seconds()} s`;
    }
    progress.textContent = `All ${sent.length} relaxed in ${seconds()} s`;
  } catch (error) {
    sent.filter((e) => !e.result).forEach((e) => { e.state = "not relaxed"; update(e); });
    progress.textContent = finished ? `${finished} of ${sent.length} finished` : "";
    showError("relax-error", error);
  } finally {
    button.disabled = false;
    byId("relax-download").disabled = !finished;
  }
}

export function setUp() {
  before = new Viewer(byId("relax-before"));
  after = new Viewer(byId("relax-after"));
  before.show(null);
  after.show(null);
  byId("relax-form").addEventListener("submit", relax);
  byId("relax-download").addEventListener("click", downloadAll);
}
