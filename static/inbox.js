// The agents' inbox: conversation list, thread, composer; live through Socket.IO /agents.
// Plain JavaScript module, no build step.
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const listEl = document.getElementById("list");
const threadEl = document.getElementById("thread");
const state = { conversations: new Map(), current: null, lastEventId: 0 };

async function api(path, options = {}) {
  const response = await fetch(`/api/v1${path}`, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    ...options,
  });
  if (!response.ok) throw new Error((await response.json()).message || response.statusText);
  return response.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);  // text is never parsed as HTML
  return node;
}

function time(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "";
}

function renderList() {
  const rows = [...state.conversations.values()]
    .filter((c) => c.status !== "resolved")
    .sort((a, b) => (b.last_activity_at > a.last_activity_at ? 1 : -1));
  listEl.replaceChildren(...rows.map((c) => el("div", {
      class: `row${c.unread_count ? " unread" : ""}${state.current === c.id ? " active" : ""}`,
      "data-conversation": c.id, onclick: () => openConversation(c.id),
    },
    el("div", { class: "name" }, c.customer.name || "—"),
    el("div", { class: "preview" }, c.last_message_preview),
    el("div", { class: "meta" }, time(c.last_activity_at)))));
  if (!rows.length) listEl.replaceChildren(el("p", { class: "empty" }, "No open conversations"));
}

function renderMessage(m) {
  const status = m.direction === "out"
    ? el("span", { class: `status ${m.status}` }, ` · ${m.status}${m.error ? ": " + m.error : ""}`) : "";
  return el("div", { class: `msg ${m.direction}`, "data-message": m.id },
    m.text, el("div", { class: "meta" }, time(m.created_at), status));
}

async function openConversation(id) {
  state.current = id;
  renderList();
  const conversation = state.conversations.get(id);
  const messages = el("div", { class: "messages" });
  const text = el("textarea", { placeholder: "Reply… (Ctrl+Enter sends)" });
  const send = async (kind) => {
    if (!text.value.trim()) return;
    await api(`/conversations/${id}/${kind}`, { method: "POST", body: JSON.stringify({ text: text.value }) });
    text.value = "";
  };
  text.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.ctrlKey) send("messages"); });
  threadEl.replaceChildren(
    el("header", { class: "row" }, el("div", { class: "name" }, conversation ? conversation.customer.name : "")),
    messages,
    el("div", { class: "composer" }, text,
      el("button", { onclick: () => send("messages") }, "Send"),
      el("button", { class: "note", onclick: () => send("notes") }, "Note")));
  const page = await api(`/conversations/${id}/messages?limit=100`);
  messages.replaceChildren(...page.items.reverse().map(renderMessage));
  messages.scrollTop = messages.scrollHeight;
}

function applyEvent(event) {
  state.lastEventId = Math.max(state.lastEventId, event.id);
  const data = event.data;
  if (event.type.startsWith("conversation.")) {
    state.conversations.set(data.id, data);
    renderList();
  } else if (event.type.startsWith("message.") && data.conversation_id === state.current) {
    const messages = threadEl.querySelector(".messages");
    const existing = messages && messages.querySelector(`[data-message="${data.id}"]`);
    if (existing) existing.replaceWith(renderMessage(data));
    else if (messages) { messages.append(renderMessage(data)); messages.scrollTop = messages.scrollHeight; }
  }
}

async function catchUp() {
  let after = state.lastEventId;
  for (;;) {
    const page = await api(`/events?after=${after}`);
    page.items.forEach(applyEvent);
    if (!page.next_cursor) break;
    after = Number(page.next_cursor);
  }
}

async function start() {
  // the head first: whatever happens while the list loads is caught up on connect
  state.lastEventId = (await api("/events/head")).last_id;
  const page = await api("/conversations?limit=100");
  page.items.forEach((c) => state.conversations.set(c.id, c));
  renderList();
  const socket = io("/agents", { transports: ["websocket", "polling"] });
  const types = ["conversation.created", "conversation.updated", "message.created", "message.updated",
                 "customer.updated", "customer.merged"];
  types.forEach((type) => socket.on(type, applyEvent));
  socket.on("connect", () => { document.body.dataset.live = "yes"; catchUp(); });
  socket.on("disconnect", () => { document.body.dataset.live = "no"; });
  window.threadline = { state, socket };
}

start();
