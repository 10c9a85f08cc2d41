// The thread's timeline: the customer's messages and notes grouped by conversation (earlier
// conversations folded), delivery status with retry, attachments; live messages replace or
// join their place.
import { T, api, el } from "../common.js";
import { channelBadge, fullTime, showError, time } from "./format.js";
import { $, state } from "./state.js";

function renderAttachment(a) {
  const url = `/api/v1/attachments/${a.id}`;
  if (a.error) return el("div", { class: "attachment error" }, `${a.filename}: ${a.error}`);
  const image = a.content_type.startsWith("image/") && a.content_type !== "image/svg+xml";
  return el("div", { class: "attachment" },
    image ? el("a", { href: `${url}?inline=1`, target: "_blank", rel: "noopener" },
      el("img", { src: `${url}?inline=1`, alt: a.filename, loading: "lazy" })) : null,
    el("a", { href: url, download: a.filename }, `⬇ ${a.filename}`),
    a.size ? el("span", { class: "size" }, ` ${Math.ceil(a.size / 1024)} KB`) : null);
}

function renderButtons(m) {
  // quick replies the bot (or an agent) offered, and which one the customer pressed
  const meta = m.meta || {};
  if (m.direction === "out" && (meta.buttons || []).length) {
    return el("div", { class: "quick-replies", title: T.bot_buttons },
      meta.buttons.map((b) => el("span", { class: "quick-reply", "data-button": b.id }, b.title)));
  }
  if (m.direction === "in" && meta.button_id) {
    return el("div", { class: "quick-replies pressed", title: T.pressed },
      el("span", { class: "quick-reply", "data-button": meta.button_id }, `☑ ${T.pressed}`));
  }
  return null;
}

// a note's @handles marked (as text nodes, never HTML); a note naming me stands out
function noteText(m) {
  if (m.direction !== "note" || !((m.meta || {}).mentions || []).length) return m.text;
  return m.text.split(/((?<![\p{L}\p{N}_@])@[\p{L}\p{N}][\p{L}\p{N}._-]*(?:@[\w.-]+)?)/u)
    .map((part, i) => (i % 2 ? el("span", { class: "mention" }, part) : part));
}

function renderMessage(m) {
  const author = m.author_id ? state.agents.get(m.author_id) : null;
  const bot = !author && m.meta && m.meta.bot;
  const status = m.direction === "out"
    ? el("span", { class: `status ${m.status}`, "data-status": m.status }, T[m.status] || m.status,
        m.status === "failed" && m.error ? el("span", { class: "reason" }, `: ${m.error}`) : null,
        m.status === "failed" ? el("button", { class: "retry", type: "button", onclick: () => retry(m.id) }, T.retry) : null)
    : null;
  const mentionsMe = m.direction === "note" && ((m.meta || {}).mentions || []).includes(state.me.id);
  return el("div", { class: `msg ${m.direction}${m.deleted ? " deleted" : ""}${mentionsMe ? " mentions-me" : ""}`, "data-message": m.id, "data-direction": m.direction, "data-at": m.created_at },
    m.direction === "note" ? el("div", { class: "note-label" }, `✎ ${T.internal_note}`) : null,
    m.subject && m.direction !== "note" ? el("div", { class: "subject" }, m.subject) : null,
    el("div", { class: "text" }, (m.text && noteText(m)) || (m.content_type !== "text" ? `[${m.content_type}]` : "")),
    (m.attachments || []).map(renderAttachment),
    renderButtons(m),
    el("div", { class: "meta" },
      m.direction !== "note" ? channelBadge(m.channel_id) : null,
      author ? el("span", { class: "author" }, author.name) : null,
      bot ? el("span", { class: "author bot", "data-bot": m.meta.bot }, T.bot) : null,
      el("span", { title: fullTime(m.created_at) }, time(m.created_at)), status));
}

async function retry(messageId) {
  try { replaceMessage(await api(`/messages/${messageId}/retry`, { method: "POST" })); } catch (e) { showError(e); }
}

export function renderTimeline() {
  const cur = state.current;
  const { conversations, messages } = cur.data;
  const byConv = new Map(conversations.map((c) => [c.id, []]));
  for (const m of messages) {
    if (!byConv.has(m.conversation_id)) byConv.set(m.conversation_id, []);
    byConv.get(m.conversation_id).push(m);
  }
  // conversations in the order they happened (by their first message, else their start);
  // those before the open one are "earlier", those after it "later", each folded
  const started = (convId) => {
    const first = byConv.get(convId)[0];
    const conv = conversations.find((c) => c.id === convId);
    return (first && first.created_at) || (conv && conv.created_at) || "";
  };
  const order = [...byConv.keys()].sort((a, b) => (started(a) < started(b) ? -1 : started(a) > started(b) ? 1 : a - b));
  const container = el("div", { class: "messages", id: "messages" });
  let seenCurrent = false;
  for (const convId of order) {
    const items = byConv.get(convId);
    if (convId === cur.id) {
      seenCurrent = true;
      container.append(el("div", { class: "conv-current", "data-conv": convId }, items.map(renderMessage)));
      continue;
    }
    if (!items.length) continue;
    const body = el("div", { class: "conv-body" }, items.map(renderMessage));
    body.hidden = true;
    const toggle = el("button", { type: "button", class: "fold", "aria-expanded": "false", onclick: () => {
      body.hidden = !body.hidden;
      toggle.setAttribute("aria-expanded", String(!body.hidden));
      toggle.textContent = `${body.hidden ? "▸" : "▾"} ${label}`; } });
    const conv = conversations.find((c) => c.id === convId);
    const label = `${seenCurrent ? T.later_conversation : T.earlier_conversation} · ${conv ? fullTime(conv.created_at) : ""} · ${items.length}`;
    toggle.textContent = `▸ ${label}`;
    container.append(el("div", { class: `conv-earlier ${seenCurrent ? "later" : "earlier"}`, "data-conv": convId }, toggle, body));
  }
  return container;
}

// the open conversation's last message in view (later conversations stay folded below it)
export function scrollToCurrent(container) {
  const current = container.querySelector(".conv-current");
  const later = current && current.nextElementSibling;
  if (!later) { container.scrollTop = container.scrollHeight; return; }
  container.scrollTop = Math.max(0, current.offsetTop + current.offsetHeight - container.clientHeight + 40);
}

export function replaceMessage(m) {
  const cur = state.current;
  if (!cur) return;
  const list = cur.data.messages;
  const i = list.findIndex((x) => x.id === m.id);
  if (i >= 0) list[i] = m; else list.push(m);
  const messages = $("messages");
  if (!messages) return;
  const existing = messages.querySelector(`[data-message="${m.id}"]`);
  if (existing) existing.replaceWith(renderMessage(m));
  else {
    const holder = messages.querySelector(`.conv-current[data-conv="${m.conversation_id}"]`);
    if (holder) holder.append(renderMessage(m)); else messages.append(renderMessage(m));
    messages.scrollTop = messages.scrollHeight;
  }
}
