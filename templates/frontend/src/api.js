// The REST API as the pages use it: session auth with Django's CSRF token, JSON in and out.
// A non-2xx answer throws an ApiError carrying the API's own words (detail, field errors).

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.message)) || `Request failed (${status}).`);
    this.status = status;
    this.body = body || {};
  }
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", ...headers },
  };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrf();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, { detail: "The server cannot be reached. Check your connection." });
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) {
    if (response.status === 401 || response.status === 403) {
      // The session ended: back to the login page, then here again.
      if (response.status === 401) window.location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname)}`);
    }
    throw new ApiError(response.status, data);
  }
  return data;
}

// Every page of a paginated list ({count, next, previous, results}).
export async function apiAll(path) {
  const items = [];
  let url = path;
  while (url) {
    const page = await api(url);
    if (Array.isArray(page)) return page;
    items.push(...page.results);
    url = page.next ? new URL(page.next).pathname + new URL(page.next).search : null;
  }
  return items;
}

// An error's words for a person: the detail and any field errors, one line each.
export function errorText(err) {
  if (!(err instanceof ApiError)) return String(err?.message || err);
  const lines = [err.message];
  const body = err.body || {};
  for (const [field, value] of Object.entries(body)) {
    if (["detail", "code", "errors"].includes(field)) continue;
    const messages = Array.isArray(value) ? value : [value];
    lines.push(`${field}: ${messages.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ")}`);
  }
  return lines.join("\n");
}

// A random UUID v4 without crypto.randomUUID (which exists only in secure contexts).
export function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function pageProps() {
  const el = document.getElementById("page-props");
  return el ? JSON.parse(el.textContent) : {};
}

export function formatDuration(start, end) {
  if (!start || !end) return "";
  const ms = new Date(end) - new Date(start);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function formatTime(ts) {
  return ts ? new Date(ts).toLocaleString() : "";
}

// An error field as text: the API gives strings for runs, objects ({code, message}) for chat.
export function words(error) {
  if (error === null || error === undefined || error === "") return "";
  if (typeof error === "string") return error;
  return error.message || error.detail || JSON.stringify(error);
}
