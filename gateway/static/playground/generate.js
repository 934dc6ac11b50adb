// The Generate tab: POST /v1/generate with "all": true, every candidate in a table, the chosen one in 3D.

import { call } from "./api.js";
import { formula, parseCif } from "./structure.js";
import { badge, byId, download, el, fillTable, fixed, showError } from "./ui.js";
import { Viewer, renderLegend } from "./viewer.js";

let viewer;
let candidates = [];
let chosen = null;

function requestBody() {
  const message = { comp: byId("gen-comp").value.trim() };
  const z = byId("gen-z").value.trim();
  const sg = byId("gen-sg").value.trim();
  if (z) message.z = Number(z);
  if (sg) message.sg = sg;
  const body = { model: byId("gen-model").value, message, n: Number(byId("gen-n").value || 1), all: true,
    fe: byId("gen-fe").checked };
  const seed = byId("gen-seed").value.trim();
  if (seed) body.seed = Number(seed);
  if (byId("gen-relax").checked) body.relax = true;  // a newer service relaxes each candidate
  return body;
}

function messagesOf(candidate) {
  const own = (candidate.messages || []).filter((m) => m);
  const after = (candidate.validity?.messages || []).map((m) => `after relaxation: ${m}`);
  return own.concat(after);
}

/** "yes", "yes, not converged" or "no" for a service that relaxes candidates ("relax": true). */
function relaxedState(candidate) {
  if (typeof candidate.relaxed !== "string") return badge(false);
  return candidate.relax_converged === false ? el("span", { class: "pending", text: "yes, not converged" }) : badge(true);
}

/** The structure to draw: the relaxed one when the service sent its CIF, else the generated one. */
function cifOf(candidate) {
  return typeof candidate.relaxed === "string" ? candidate.relaxed : candidate.generated;
}

function render() {
  // energy_per_atom and relaxed come from services that relax the candidates; shown only when sent
  const relaxedToo = candidates.some((c) => c.energy_per_atom !== undefined || c.relaxed !== undefined);
  const header = ["#", "input", "valid", "messages", "fe (eV/atom)", ...(relaxedToo ? ["energy (eV/atom)", "relaxed"] : [])];
  const rows = candidates.map((c, i) => [
    String(i + 1),
    `${c.input.comp} Z=${c.input.z}${c.input.sg ? " " + c.input.sg : ""}`,
    badge(c.valid, "valid", "invalid"),
    messagesOf(c).join("; ") || "—",
    fixed(c.fe),
    ...(relaxedToo ? [fixed(c.energy_per_atom), relaxedState(c)] : []),
  ]);
  const trs = fillTable(byId("gen-results"), header, rows);
  trs.forEach((tr, i) => {
    tr.classList.add("selectable");
    tr.dataset.index = String(i);
    tr.addEventListener("click", () => choose(i));
  });
}

function choose(index) {
  chosen = candidates[index];
  document.querySelectorAll("#gen-results tbody tr").forEach((tr, i) => tr.classList.toggle("chosen", i === index));
  const cif = cifOf(chosen);
  byId("gen-cif").textContent = cif;
  byId("gen-download").disabled = false;
  try {
    const [structure] = parseCif(cif, "candidate");
    viewer.show(structure);
    const which = cif === chosen.relaxed ? "relaxed" : "as generated";
    byId("gen-view-message").textContent = `${formula(structure)}, ${structure.numbers.length} atoms in the cell, ${which}`;
  } catch (error) {
    viewer.show(null);
    byId("gen-view-message").textContent = `This CIF cannot be drawn: ${error.message}`;
  }
  renderLegend(byId("gen-legend"), viewer);
}

async function generate(event) {
  event.preventDefault();
  showError("gen-error", null);
  const button = byId("gen-submit");
  button.disabled = true;
  const started = performance.now();
  byId("gen-progress").textContent = "Generating…";
  try {
    const answer = await call("POST", "/v1/generate", requestBody());
    candidates = answer.cifs || [];
    const valid = candidates.filter((c) => c.valid).length;
    byId("gen-progress").textContent =
      `${candidates.length} candidates, ${valid} valid, in ${((performance.now() - started) / 1000).toFixed(1)} s`;
    render();
    if (candidates.length) choose(Math.max(0, candidates.findIndex((c) => c.valid)));
  } catch (error) {
    byId("gen-progress").textContent = "";
    showError("gen-error", error);
  } finally {
    button.disabled = false;
  }
}

async function loadModels() {
  try {
    const metadata = await call("GET", "/v1/metadata");
    const names = metadata.models.filter((m) => m.name.startsWith("generator/")).map((m) => m.name.slice(10));
    if (names.length) byId("gen-model").replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
  } catch {
    // keep "small"; the Status tab shows why metadata failed
  }
}

export function setUp() {
  viewer = new Viewer(byId("gen-viewer"));
  viewer.show(null);
  byId("gen-form").addEventListener("submit", generate);
  byId("gen-download").addEventListener("click", () => {
    if (!chosen) return;
    const suffix = cifOf(chosen) === chosen.relaxed ? "_relaxed" : "";
    download(`${chosen.input.comp}_Z${chosen.input.z}${suffix}.cif`, cifOf(chosen), "chemical/x-cif");
  });
  loadModels();
}
