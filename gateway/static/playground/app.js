// The page: tabs (kept in the URL's #fragment) and the API-key prompt.

import { setKeyPrompt, storedKey, storeKey } from "./api.js";
import * as generate from "./generate.js";
import * as predict from "./predict.js";
import * as relax from "./relax.js";
import * as status from "./status.js";
import { byId } from "./ui.js";

const TABS = ["generate", "relax", "predict", "status"];

function showTab(name) {
  const tab = TABS.includes(name) ? name : TABS[0];
  for (const other of TABS) byId(`tab-${other}`).hidden = other !== tab;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  if (tab === "status") status.refresh();
}

let pendingKey = null;  // calls refused at the same time share one prompt

/** Shows the key form with the API's message; resolves to the key typed, or null on Cancel. */
function askForKey(message) {
  if (!pendingKey) pendingKey = showKeyForm(message).finally(() => { pendingKey = null; });
  return pendingKey;
}

function showKeyForm(message) {
  const panel = byId("key-panel");
  byId("key-message").textContent = `${message}. Enter an API key for this service:`;
  panel.hidden = false;
  const input = byId("key-input");
  input.value = storedKey();
  input.focus();
  return new Promise((resolve) => {
    const finish = (key) => {
      panel.removeEventListener("submit", use);
      byId("key-cancel").removeEventListener("click", cancel);
      panel.hidden = true;
      resolve(key);
    };
    const use = (event) => {
      event.preventDefault();
      finish(input.value.trim() || null);
    };
    const cancel = () => {
      storeKey("");
      finish(null);
    };
    panel.addEventListener("submit", use);
    byId("key-cancel").addEventListener("click", cancel);
  });
}

function start() {
  setKeyPrompt(askForKey);
  generate.setUp();
  relax.setUp();
  predict.setUp();
  status.setUp();
  document.querySelectorAll("#tabs button").forEach((button) => button.addEventListener("click", () => {
    window.location.hash = button.dataset.tab;
  }));
  window.addEventListener("hashchange", () => showTab(window.location.hash.slice(1)));
  showTab(window.location.hash.slice(1));
  document.body.dataset.ready = "true";  // for tests: every tab is wired
}

start();
