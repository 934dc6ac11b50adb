// The Status tab: readiness, the models and their weights, queue sizes and counters.

import { call, request } from "./api.js";
import { byId, el, fillTable, showError } from "./ui.js";

async function readiness() {
  // 503 is an answer here (not ready), not a failure: read its body either way
  const response = await request("GET", "/v1/health/ready");
  const body = await response.json();
  const box = byId("status-ready");
  const ready = response.ok && body.status === "ready";
  box.className = `badge ${ready ? "ok" : "bad"}`;
  box.textContent = `${body.status}: ${body.backends_alive} of ${body.backends_total} Triton models ready`;
}

async function models() {
  const metadata = await call("GET", "/v1/metadata");
  const rows = metadata.models.map((m) => [
    m.name, m.description, m.device, m.weights?.name ?? "—",
    el("code", { title: m.weights?.sha256 ?? "", text: m.weights?.sha256 ? m.weights.sha256.slice(0, 12) : "—" }),
  ]);
  fillTable(byId("status-models"), ["model", "what", "device", "weights", "sha256"], rows);
  return metadata;
}

async function queues() {
  const status = await call("GET", "/v1/status");
  const total = status.total;
  const rows = [["total", "—", total.queue_size_atoms, total.queue_size_tasks, "—", total.max_system_size,
    `${total.tasks_completed} / ${total.tasks_received}`, `${total.requests_completed} / ${total.requests_received}`]];
  for (const w of status.workers) {
    rows.push([w.device, w.gpu_model, w.queue_size_atoms, w.queue_size_tasks, w.batch_size, total.max_system_size,
      `${w.tasks_completed} / ${w.tasks_received}`, "—"]);
  }
  fillTable(byId("status-queues"), ["worker", "device model", "queue (atoms)", "queue (structures)",
    "batch (atoms)", "max system (atoms)", "structures done / received", "requests done / received"], rows);
}

export async function refresh() {
  showError("status-error", null);
  const results = await Promise.allSettled([readiness(), models(), queues()]);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) showError("status-error", failed.reason);
}

export function setUp() {
  byId("status-refresh").addEventListener("click", refresh);
}
