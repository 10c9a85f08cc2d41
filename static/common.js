// What the inbox and the sales board share: the page's CSRF token and UI strings, JSON calls
// to the API, building DOM nodes (text only ever enters as text nodes, never parsed as HTML)
// and the toast. Plain JavaScript module, no build step.
export const csrf = document.querySelector('meta[name="csrf-token"]').content;
export const T = JSON.parse(document.getElementById("i18n").textContent);

// `/api/v1` paths by default; the board's own routes (`/board/...`) as given
export async function api(path, options = {}) {
  const response = await fetch(path.startsWith("/board") ? path : `/api/v1${path}`, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    ...options,
  });
  if (response.status === 204) return null;
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.message || response.statusText);
    error.detail = body.detail; error.status = response.status;
    throw error;
  }
  return body;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || ["title", "for", "list", "role", "tabindex"].includes(key))
      node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children.flat(Infinity)) if (child !== null && child !== undefined && child !== false)
    node.append(child);  // strings become text nodes: never parsed as HTML
  return node;
}

// a short message at the top of the page (never over the composer's Send button); an action
// (e.g. Undo) becomes a button in it; errors stay longer and are announced as alerts
export function toast(text, timeout = 4000, action = null) {
  const node = document.getElementById("toast");
  const run = action ? () => { node.hidden = true; action.run(); } : null;
  // `action.whole`: the whole toast is the action (a notification opens its conversation)
  const body = action && action.whole
    ? el("button", { type: "button", class: "toast-text toast-open", onclick: run }, text)
    : el("span", { class: "toast-text" }, text);
  node.replaceChildren(body,
    action && !action.whole ? el("button", { type: "button", class: "toast-action", onclick: run }, action.label) : "");
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.hidden = true; }, timeout);
}
