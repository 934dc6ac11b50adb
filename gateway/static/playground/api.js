// Calls to the matserve API from the page: the same origin, the error envelope's message, the API
// key (asked for on a 401, kept in sessionStorage, sent as x-api-key) and NDJSON streams.

const KEY_STORAGE = "matserve.apiKey";

export class ApiError extends Error {
  constructor(status, message, detail = []) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

let askForKey = null;

/** ``ask(message)`` resolves to the key the user typed, or null when they gave up. */
export function setKeyPrompt(ask) {
  askForKey = ask;
}

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** The envelope's ``error`` (and ``Retry-After``) as an ApiError; a body that is not the envelope keeps its status text. */
export async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let detail = [];
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
    if (body && Array.isArray(body.detail)) detail = body.detail;
  } catch {
    // not JSON: keep the status line
  }
  const retry = response.headers.get("retry-after");
  if (retry) message += ` (retry after ${retry} s)`;
  return new ApiError(response.status, message, detail);
}

/**
 * fetch() with the stored key; on 401 the user is asked for a key and the call is made again.
 * ``body`` is sent as JSON unless it is FormData. Returns the Response, whatever its status.
 */
export async function request(method, path, { body, accept } = {}) {
  const payload = body === undefined || body instanceof FormData ? body : JSON.stringify(body);
  for (;;) {
    const headers = {};
    if (accept) headers.Accept = accept;
    if (payload !== undefined && !(payload instanceof FormData)) headers["Content-Type"] = "application/json";
    const key = storedKey();
    if (key) headers["x-api-key"] = key;
    const response = await fetch(path, { method, headers, body: payload });
    if (response.status !== 401 || !askForKey) return response;
    const error = await errorOf(response);
    const given = await askForKey(error.message);
    if (given === null) throw error;
    storeKey(given);
  }
}

/** The JSON answer of a call, or an ApiError carrying the API's message. */
export async function call(method, path, body) {
  const response = await request(method, path, { body });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** Each JSON line of a streamed (NDJSON) response, as it arrives. */
export async function* jsonLines(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (line) yield JSON.parse(line);
    }
    if (done) break;
  }
  if (buffer.trim()) yield JSON.parse(buffer);
}
