// Small DOM helpers shared by the tabs.

export const byId = (id) => document.getElementById(id);

/** An element with attributes (``class``, ``text``, ``on*`` handlers, others as attributes) and children. */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") element.textContent = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.filter((c) => c !== null && c !== undefined));
  return element;
}

/** Show an ApiError (or any error) in the box ``id``: the API's one-line message, then what ``detail`` adds. */
export function showError(id, error) {
  const box = byId(id);
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const lines = [el("div", { class: "error-message", text: error.message || String(error) })];
  for (const item of error.detail || []) {
    const where = (item.loc || []).join(".");
    const text = where ? `${where}: ${item.msg}` : item.msg;
    if (text && item.msg !== error.message && !error.message.includes(item.msg)) lines.push(el("div", { class: "error-detail", text }));
  }
  box.replaceChildren(...lines);
  box.hidden = false;
}

/** Fill ``table`` with a header row and body rows; a cell is text, a number, or a Node. Returns the body rows. */
export function fillTable(table, headers, rows) {
  const head = el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h }))));
  const trs = rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c instanceof Node ? c : String(c ?? "")))));
  table.replaceChildren(head, el("tbody", {}, ...trs));
  return trs;
}

export function fixed(value, digits = 3) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "—";
}

/** A number in a readable form: fixed for ordinary sizes, exponent for very small or large ones. */
export function readable(value) {
  if (typeof value !== "number") return String(value ?? "—");
  const size = Math.abs(value);
  return size !== 0 && (size < 1e-3 || size >= 1e5) ? value.toExponential(3) : value.toFixed(size >= 100 ? 1 : 4);
}

/** Offer ``text`` as a file named ``name``. */
export function download(name, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function badge(ok, yes = "yes", no = "no") {
  return el("span", { class: ok ? "ok" : "bad", text: ok ? yes : no });
}
