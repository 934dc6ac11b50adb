// The Predict tab: one AFLOW-ML job per chosen model (submit, then poll its result), the fields with
// their units in a table, and a bar chart of the heat capacities and moduli.

import { call } from "./api.js";
import { drawBarChart } from "./chart.js";
import { byId, el, fillTable, readable, showError } from "./ui.js";

const POLL_MS = 400;
const POLL_LIMIT_MS = 10 * 60 * 1000;

// AFLOW-ML's units for each field (docs/models.md).
export const UNITS = {
  ml_Cv: "kB/atom",
  ml_Fvib: "meV/atom",
  ml_Svib: "kB/atom",
  ml_formation_energy_per_atom: "eV/atom",
  ml_egap_type: "",
  ml_egap: "eV",
  ml_energy_per_atom: "eV/atom",
  ml_ael_bulk_modulus_vrh: "GPa",
  ml_ael_shear_modulus_vrh: "GPa",
  ml_agl_debye: "K",
  ml_agl_heat_capacity_Cp_300K: "kB/cell",
  ml_agl_heat_capacity_Cv_300K: "kB/cell",
  ml_agl_heat_capacity_Cp_300K_per_atom: "kB/atom",
  ml_agl_heat_capacity_Cv_300K_per_atom: "kB/atom",
  ml_agl_thermal_conductivity_300K: "W/(m·K)",
  ml_agl_thermal_expansion_300K: "1/K",
};

let jobs = [];  // {model, id, status, body, error}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function structureText() {
  const file = byId("predict-file").files[0];
  if (file) return { text: await file.text(), name: file.name };
  return { text: byId("predict-text").value, name: "structure" };
}

function chosenModels() {
  return [...document.querySelectorAll("#predict-models input:checked")].map((input) => input.value);
}

function fieldsOf(body) {
  return Object.entries(body).filter(([name]) => name.startsWith("ml_"));
}

function render() {
  const rows = [];
  for (const job of jobs) {
    if (job.status !== "SUCCESS") {
      rows.push([job.model, "status", job.error ? el("span", { class: "bad", text: job.error })
        : el("span", { class: "pending", text: job.status }), ""]);
      continue;
    }
    for (const [name, value] of fieldsOf(job.body)) rows.push([job.model, name, readable(value), UNITS[name] ?? ""]);
  }
  fillTable(byId("predict-results"), ["model", "field", "value", "unit"], rows);
  const notes = jobs.filter((j) => j.body && j.body.description).map((j) =>
    el("div", { class: "note" }, el("b", { text: `${j.model}: ` }), j.body.description));
  byId("predict-progress").replaceChildren(...notes);
  drawChart();
}

function value(model, field) {
  const job = jobs.find((j) => j.model === model && j.status === "SUCCESS");
  const v = job ? job.body[field] : undefined;
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function bars(pairs) {
  return pairs.map(([label, model, field]) => ({ label, value: value(model, field) })).filter((b) => b.value !== undefined);
}

function drawChart() {
  drawBarChart(byId("predict-chart"), [
    { title: "Heat capacity at 300 K", unit: "kB/atom", reference: { label: "Dulong–Petit", value: 3 },
      bars: bars([["mfd Cv", "mfd", "ml_Cv"], ["plmf Cv", "plmf", "ml_agl_heat_capacity_Cv_300K_per_atom"],
        ["plmf Cp", "plmf", "ml_agl_heat_capacity_Cp_300K_per_atom"]]) },
    { title: "Vibrational entropy at 300 K", unit: "kB/atom", bars: bars([["mfd Svib", "mfd", "ml_Svib"]]) },
    { title: "Elastic moduli", unit: "GPa", bars: bars([["plmf bulk", "plmf", "ml_ael_bulk_modulus_vrh"],
      ["plmf shear", "plmf", "ml_ael_shear_modulus_vrh"]]) },
  ]);
}

async function runJob(job, text, name) {
  const form = new FormData();
  form.append("file", new Blob([text], { type: "text/plain" }), name);
  try {
    const submitted = await call("POST", `/v1/${job.model}/prediction`, form);
    job.id = submitted.id;
    const deadline = performance.now() + POLL_LIMIT_MS;
    for (;;) {
      const body = await call("GET", `/v1${submitted.results_endpoint}`);
      job.status = body.status;
      job.body = body;
      render();
      if (body.status === "SUCCESS") return;
      if (body.status === "FAILURE") {
        job.error = body.description || "the prediction failed";
        return;
      }
      if (performance.now() > deadline) throw new Error("no result after ten minutes; the job may still finish");
      await sleep(POLL_MS);
    }
  } catch (error) {
    job.status = "FAILURE";
    job.error = error.message;
  }
}

async function predict(event) {
  event.preventDefault();
  showError("predict-error", null);
  const { text, name } = await structureText();
  const models = chosenModels();
  if (!text.trim()) {
    showError("predict-error", new Error("paste a POSCAR or CIF, or choose a file"));
    return;
  }
  if (!models.length) {
    showError("predict-error", new Error("choose at least one model"));
    return;
  }
  const button = byId("predict-submit");
  button.disabled = true;
  jobs = models.map((model) => ({ model, status: "submitting" }));
  render();
  try {
    await Promise.all(jobs.map((job) => runJob(job, text, name)));
  } finally {
    render();
    const messages = [...new Set(jobs.map((j) => j.error))];
    if (messages.every((m) => m)) showError("predict-error", new Error(messages.join("; ")));
    button.disabled = false;
  }
}

export function setUp() {
  byId("predict-form").addEventListener("submit", predict);
  drawChart();
}
