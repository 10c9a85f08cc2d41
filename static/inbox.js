// The agents' inbox: views, conversation list, thread + customer card, composer; live through
// Socket.IO /agents. Plain JavaScript module, no build step. Customer text is only ever put
// into the page as text nodes (textContent / append of strings), never parsed as HTML.
import { T, api, csrf, el, toast } from "./common.js";

const BOOT = JSON.parse(document.getElementById("boot").textContent);
const $ = (id) => document.getElementById(id);
const viewsEl = $("views"), listEl = $("list"), threadEl = $("thread"), bulkEl = $("bulk");

const state = {
  me: null, agents: new Map(), teams: [], channels: new Map(), labels: [], canned: [],
  view: "open", list: [], byId: new Map(), nextCursor: null, counts: {},
  selected: new Set(), cursor: -1, current: null, lastEventId: 0, socket: null,
  viewers: [], notify: localStorage.getItem("tl-notify") === "1",
};
window.threadline = { state };

// --- helpers --------------------------------------------------------------------------------

const fmt = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");
function time(iso) {
  if (!iso) return "";
  const d = new Date(iso), now = new Date();
  return d.toDateString() === now.toDateString()
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { day: "numeric", month: "short" });
}
const fullTime = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const ICONS = { email: "✉", telegram: "✈", whatsapp: "◔", phone: "☎", webchat: "✦", site_user: "✦" };
const KIND_LABEL = { email: "Email", telegram: "Telegram", whatsapp: "WhatsApp", webchat: "Chat" };

function showError(error) { toast(`${T.error}: ${error.message}`); }

function highlight(text, terms) {
  // split on the search terms and wrap matches in <mark> elements (text nodes only)
  if (!terms || !terms.length) return [text];
  const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(`(${escaped.join("|")})`, "giu");
  return text.split(re).map((part, i) => (i % 2 ? el("mark", {}, part) : part));
}

// --- views and counts ------------------------------------------------------------------------

function viewParams(view) {
  const [kind, arg] = view.split(":");
  switch (kind) {
    case "mine": return { status: "open", assignee: "me" };
    case "unassigned": return { status: "open", assignee: "none" };
    case "snoozed": return { status: "snoozed" };
    case "resolved": return { status: "resolved" };
    case "team": return { status: "open", team_id: arg };
    case "channel": return { status: "open", channel_id: arg };
    case "label": return { status: "open", label: view.slice(6) };
    default: return { status: "open" };
  }
}

function matchesView(view, c) {
  const p = viewParams(view);
  if (c.status !== p.status) return false;
  if (p.assignee === "me" && c.assignee_id !== state.me.id) return false;
  if (p.assignee === "none" && c.assignee_id !== null) return false;
  if (p.team_id && String(c.team_id) !== p.team_id) return false;
  if (p.channel_id && String(c.channel_id) !== p.channel_id) return false;
  if (p.label && !(c.labels || []).includes(p.label)) return false;
  return true;
}

function renderViews() {
  const item = (key, label, icon = "") => {
    const n = state.counts[key] || 0;
    return el("button", { class: `view${state.view === key ? " active" : ""}`, "data-view": key,
                          type: "button", onclick: () => selectView(key) },
      el("span", { class: "label" }, icon ? `${icon} ` : "", label),
      el("span", { class: `count${n ? "" : " zero"}`, "data-count": key }, n ? String(n) : ""));
  };
  const section = (title, items) => (items.length ? [el("h3", {}, title), ...items] : []);
  viewsEl.replaceChildren(
    item("open", T.all_open), item("mine", T.mine), item("unassigned", T.unassigned),
    ...section(T.teams, state.teams.map((t) => item(`team:${t.id}`, t.name))),
    ...section(T.channels, [...state.channels.values()].map((c) => item(`channel:${c.id}`, c.name, ICONS[c.kind]))),
    ...section(T.labels, state.labels.map((l) => item(`label:${l}`, l, "#"))),
    el("h3", {}, "·"), item("snoozed", T.snoozed), item("resolved", T.resolved),
    el("h3", {}, T.customers), mergeViewItem());
}

let countsTimer = null;
function refreshCounts() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(async () => {
    try {
      state.counts = (await api("/inbox/views")).counts;
      renderViews();
      loadMergeCount();
    } catch (e) { /* a reconnect will try again */ }
  }, 250);
}

async function selectView(view) {
  state.view = view;
  state.selected.clear();
  state.cursor = -1;
  renderViews();
  if (view === MERGE_VIEW) { await loadSuggestions(); return; }
  await loadList();
}

// --- the conversation list (keyset pagination: next_cursor) ---------------------------------

function listQuery(cursor) {
  const params = new URLSearchParams({ limit: "50", ...viewParams(state.view) });
  if (cursor) params.set("cursor", cursor);
  return `/conversations?${params}`;
}

async function loadList() {
  const view = state.view;
  const page = await api(listQuery(null));
  if (view !== state.view) return;
  state.list = page.items;
  state.nextCursor = page.next_cursor;
  page.items.forEach((c) => state.byId.set(c.id, c));
  renderList();
}

async function loadMore() {
  if (!state.nextCursor) return;
  const page = await api(listQuery(state.nextCursor));
  const known = new Set(state.list.map((c) => c.id));
  state.list.push(...page.items.filter((c) => !known.has(c.id)));
  state.nextCursor = page.next_cursor;
  renderList();
}

function sortList() {
  state.list.sort((a, b) => (a.last_activity_at === b.last_activity_at ? b.id - a.id
    : (b.last_activity_at > a.last_activity_at ? 1 : -1)));
}

function channelIcons(customer) {
  const kinds = [...new Set((customer.identities || []).map((i) => (i.kind === "site_user" ? "webchat" : i.kind)))];
  return el("span", { class: "icons" }, kinds.map((k) => el("span", { class: `icon ${k}`, title: k }, ICONS[k] || "•")));
}

function renderRow(c, index) {
  const assignee = c.assignee_id ? state.agents.get(c.assignee_id) : null;
  return el("div", {
      class: `row${c.unread_count ? " unread" : ""}${state.current && state.current.id === c.id ? " active" : ""}${index === state.cursor ? " cursor" : ""}${state.selected.has(c.id) ? " selected" : ""}`,
      "data-conversation": c.id, onclick: (e) => { if (e.target.type !== "checkbox") openConversation(c.id); },
    },
    el("input", { type: "checkbox", class: "pick", checked: state.selected.has(c.id), "aria-label": "select",
                  onchange: (e) => toggleSelect(c.id, e.target.checked) }),
    el("div", { class: "name" }, el("span", { class: "customer" }, c.customer.name || "—"), channelIcons(c.customer),
      el("span", { class: "time", title: fullTime(c.last_activity_at) }, time(c.last_activity_at))),
    el("div", { class: "preview" }, c.last_message_preview || ""),
    el("div", { class: "meta" },
      c.unread_count ? el("span", { class: "unread-mark", "data-unread": c.unread_count }, String(c.unread_count)) : "",
      c.priority !== "normal" ? el("span", { class: `prio ${c.priority}` }, T[c.priority] || c.priority) : "",
      (c.labels || []).map((l) => el("span", { class: "tag" }, l)),
      el("span", { class: "assignee" }, assignee ? assignee.name : "")));
}

function renderList() {
  if (state.view === MERGE_VIEW) return;  // the middle pane shows the merge suggestions
  sortList();
  const rows = state.list.map(renderRow);
  if (!rows.length) rows.push(el("p", { class: "empty" }, T.no_conversations));
  if (state.nextCursor) rows.push(el("button", { class: "more", type: "button", onclick: loadMore }, T.load_more));
  listEl.replaceChildren(...rows);
  renderBulk();
}

function upsertConversation(c) {
  state.byId.set(c.id, c);
  const index = state.list.findIndex((x) => x.id === c.id);
  if (matchesView(state.view, c)) {
    if (index >= 0) state.list[index] = c; else state.list.push(c);
  } else if (index >= 0) state.list.splice(index, 1);
  renderList();
  if (state.current && state.current.id === c.id) {
    state.current.conversation = c;
    renderActions();
  }
}

// --- bulk actions -----------------------------------------------------------------------------

function toggleSelect(id, on) {
  if (on) state.selected.add(id); else state.selected.delete(id);
  renderList();
}

function renderBulk() {
  bulkEl.hidden = state.selected.size === 0;
  if (bulkEl.hidden) return;
  const ids = [...state.selected];
  const run = async (patch) => {
    try {
      const result = await api("/conversations/bulk", { method: "POST", body: JSON.stringify({ ids, ...patch }) });
      result.items.forEach(upsertConversation);
      state.selected.clear();
      renderList();
    } catch (e) { showError(e); }
  };
  const assign = el("select", { "aria-label": T.assignee, onchange: (e) => e.target.value && run({ assignee_id: e.target.value === "none" ? null : Number(e.target.value) }) },
    el("option", { value: "" }, T.assignee), el("option", { value: "none" }, T.nobody),
    [...state.agents.values()].map((a) => el("option", { value: a.id }, a.name)));
  const prio = el("select", { "aria-label": T.priority, onchange: (e) => e.target.value && run({ priority: e.target.value }) },
    el("option", { value: "" }, T.priority), ["low", "normal", "high", "urgent"].map((p) => el("option", { value: p }, T[p])));
  bulkEl.replaceChildren(
    el("span", {}, fmt(T.selected, { n: ids.length })),
    el("button", { type: "button", onclick: () => run({ assignee_id: state.me.id }) }, T.assign_me),
    assign, prio,
    el("button", { type: "button", "data-bulk": "resolve", onclick: () => run({ status: "resolved" }) }, T.resolve),
    el("button", { type: "button", onclick: () => run({ status: "open" }) }, T.reopen),
    el("button", { type: "button", class: "ghost", onclick: () => { state.selected.clear(); renderList(); } }, "✕"));
}

// --- the thread ------------------------------------------------------------------------------

function draftKey(id, mode) { return `tl-draft:${state.me.id}:${id}:${mode}`; }

let openSeq = 0;
async function openConversation(id) {
  // j/k pressed quickly: timelines may answer out of order, the last pick wins
  const seq = ++openSeq;
  let data;
  try { data = await api(`/conversations/${id}/timeline`); } catch (e) { if (seq === openSeq) showError(e); return; }
  if (seq !== openSeq) return;
  const previous = state.current;
  state.current = {
    id, conversation: data.conversation, data, mode: "reply",
    typingSince: null, collision: false, collisionShown: false,
  };
  state.cursor = state.list.findIndex((c) => c.id === id);
  if (!previous || previous.id !== id) history.replaceState(null, "", `/conversations/${id}`);
  state.viewers = [];
  renderThread();
  renderList();
  announceView();
  if (data.conversation.unread_count) {
    api(`/conversations/${id}/read`, { method: "POST" }).then(upsertConversation).catch(() => {});
  }
}

function announceView() {
  if (!state.socket || !state.socket.connected) return;
  const id = state.current ? state.current.id : null;
  state.socket.emit("view", { conversation_id: id }, (answer) => {
    if (answer && answer.ok && state.current && state.current.id === id) {
      state.viewers = answer.viewers || [];
      renderPresence();
    }
  });
}

function channelBadge(channelId) {
  const ch = state.channels.get(channelId);
  if (!ch) return channelId ? el("span", { class: "badge" }, `#${channelId}`) : null;
  return el("span", { class: `badge ${ch.kind}`, title: ch.name }, `${ICONS[ch.kind] || ""} ${ch.name}`);
}

function paperclipIcon() {
  // an inline SVG (an emoji paperclip needs a colour-emoji font the machine may not have)
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: "16", height: "16", fill: "none",
    stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "aria-hidden": "true" }))
    svg.setAttribute(k, v);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M21 12.5l-8.5 8.5a6 6 0 0 1-8.5-8.5l9-9a4 4 0 0 1 5.7 5.7l-9 9a2 2 0 0 1-2.9-2.9l8.5-8.5");
  svg.append(path);
  return svg;
}

function fileSize(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${Math.max(1, Math.ceil(bytes / 1024))} KB`;
}

async function uploadFile(file) {
  // multipart: no JSON Content-Type header, the browser sets the boundary
  const form = new FormData();
  form.append("file", file);
  const response = await fetch("/api/v1/uploads", {
    method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf }, body: form });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || response.statusText);
  return body;
}

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

function renderMessage(m) {
  const author = m.author_id ? state.agents.get(m.author_id) : null;
  const status = m.direction === "out"
    ? el("span", { class: `status ${m.status}`, "data-status": m.status }, T[m.status] || m.status,
        m.status === "failed" && m.error ? el("span", { class: "reason" }, `: ${m.error}`) : null,
        m.status === "failed" ? el("button", { class: "retry", type: "button", onclick: () => retry(m.id) }, T.retry) : null)
    : null;
  return el("div", { class: `msg ${m.direction}${m.deleted ? " deleted" : ""}`, "data-message": m.id, "data-direction": m.direction },
    m.direction === "note" ? el("div", { class: "note-label" }, `✎ ${T.internal_note}`) : null,
    m.subject && m.direction !== "note" ? el("div", { class: "subject" }, m.subject) : null,
    el("div", { class: "text" }, m.text || (m.content_type !== "text" ? `[${m.content_type}]` : "")),
    (m.attachments || []).map(renderAttachment),
    el("div", { class: "meta" },
      m.direction !== "note" ? channelBadge(m.channel_id) : null,
      author ? el("span", { class: "author" }, author.name) : null,
      el("span", { title: fullTime(m.created_at) }, time(m.created_at)), status));
}

async function retry(messageId) {
  try { replaceMessage(await api(`/messages/${messageId}/retry`, { method: "POST" })); } catch (e) { showError(e); }
}

function renderTimeline() {
  const cur = state.current;
  const { conversations, messages } = cur.data;
  const byConv = new Map(conversations.map((c) => [c.id, []]));
  for (const m of messages) {
    if (!byConv.has(m.conversation_id)) byConv.set(m.conversation_id, []);
    byConv.get(m.conversation_id).push(m);
  }
  const container = el("div", { class: "messages", id: "messages" });
  for (const [convId, items] of byConv) {
    if (convId === cur.id) {
      container.append(el("div", { class: "conv-current", "data-conv": convId }, items.map(renderMessage)));
      continue;
    }
    if (!items.length) continue;
    const body = el("div", { class: "conv-body" }, items.map(renderMessage));
    body.hidden = true;
    const toggle = el("button", { type: "button", class: "fold", onclick: () => {
      body.hidden = !body.hidden; toggle.textContent = `${body.hidden ? "▸" : "▾"} ${label}`; } });
    const conv = conversations.find((c) => c.id === convId);
    const label = `${T.earlier_conversation} · ${conv ? fullTime(conv.created_at) : ""} · ${items.length}`;
    toggle.textContent = `▸ ${label}`;
    container.append(el("div", { class: "conv-earlier", "data-conv": convId }, toggle, body));
  }
  return container;
}

function replaceMessage(m) {
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

function renderThread() {
  const cur = state.current;
  const customer = cur.data.customer;
  const head = el("header", { class: "thread-head" },
    el("div", { class: "who" }, el("strong", { class: "customer-name" }, customer.name || "—"), channelIcons(customer)),
    el("div", { id: "presence", class: "presence" }),
    el("div", { id: "actions", class: "actions" }));
  const timeline = renderTimeline();
  const main = el("div", { class: "thread-main" }, head, timeline, renderComposer(), el("div", { id: "collision", class: "collision", hidden: true }));
  threadEl.replaceChildren(main, renderCard());
  renderActions();
  renderPresence();
  timeline.scrollTop = timeline.scrollHeight;
}

function renderCard() {
  const { customer, card } = state.current.data;
  const field = (label, value) => (value ? el("div", { class: "field" }, el("span", { class: "k" }, label), el("span", { class: "v" }, value)) : null);
  return el("aside", { class: "card", "aria-label": T.card },
    el("h3", {}, customer.name || "—"),
    field("", customer.company),
    (customer.identities || []).map((i) => el("div", { class: `identity${i.reachable ? "" : " unreachable"}`, "data-identity": i.id },
      el("span", { class: "icon" }, ICONS[i.kind] || "•"), ` ${i.value}`, replyHere(i))),
    (customer.tags || []).length ? el("div", { class: "tags" }, customer.tags.map((t) => el("span", { class: "tag" }, t))) : null,
    Object.entries(customer.custom_fields || {}).map(([k, v]) => field(k, String(v))),
    card.orders.length ? [el("h4", {}, T.orders), card.orders.map((o) => el("div", { class: "line" },
      `${o.external_ref || "#" + o.id} · ${o.status} · ${o.total || ""} ${o.currency || ""}`))] : null,
    card.deals.length ? [el("h4", {}, T.deals), renderDeals(card.deals)] : null,
    card.notes.length ? [el("h4", {}, T.notes), card.notes.map((n) => el("div", { class: "line note" }, n.text))] : null,
    renderMerges(customer.id));
}

// "Reply here" on a handle: one button per reply channel that can reach it; the composer
// takes that channel and handle (the reply carries identity_id) and gets the focus.
function replyHere(identity) {
  const cur = state.current;
  const targets = (cur.data.reply_channels || []).filter((ch) => (ch.identity_kinds || []).includes(identity.kind));
  if (!targets.length) return null;
  return el("span", { class: "reply-here" },
    el("span", { class: "via" }, ` · ${targets.map((ch) => ch.name).join(", ")} `),
    targets.map((ch) => el("button", { type: "button", "data-action": "reply-here", "data-channel": ch.id,
      title: fmt(T.reply_here_via, { channel: ch.name }), onclick: () => cur.replyHere && cur.replyHere(identity, ch.id) },
      `↩ ${targets.length > 1 ? ch.name : T.reply_here}`)));
}

// --- merge suggestions (issue 8) ---------------------------------------------------------------
// A view in the left pane: the open suggestions queue in the middle pane; Review shows the
// preview's field conflicts (a radio per field), Merge accepts with the choices. The card
// gets an Unmerge button when merges went into the customer.

const MERGE_VIEW = "merge-suggestions";
state.mergeCount = 0;

function mergeViewItem() {
  const n = state.mergeCount;
  return el("button", { class: `view${state.view === MERGE_VIEW ? " active" : ""}`, "data-view": MERGE_VIEW,
                        type: "button", onclick: () => selectView(MERGE_VIEW) },
    el("span", { class: "label" }, `⇄ ${T.merge_suggestions}`),
    el("span", { class: `count${n ? "" : " zero"}`, "data-count": MERGE_VIEW }, n ? String(n) : ""));
}

async function loadMergeCount() {
  try {
    const page = await api("/merge-suggestions?limit=100");
    const n = page.items.length + (page.next_cursor ? 1 : 0);
    if (n !== state.mergeCount) { state.mergeCount = n; renderViews(); }
    return page;
  } catch (e) { return null; }
}

const customerLabel = (c) => el("div", { class: "merge-who" },
  el("b", {}, c.name || "—"), " ",
  el("span", { class: "handles" }, (c.identities || []).map((i) => `${ICONS[i.kind] || "•"} ${i.value}`).join(", ")));

function reasonText(r) {
  const parts = [r.kind || r.type || r.reason, r.handle].filter(Boolean);
  return parts.length ? parts.join(": ") : JSON.stringify(r);
}

async function loadSuggestions() {
  bulkEl.hidden = true;
  let page;
  try { page = await api("/merge-suggestions?limit=100"); } catch (e) { showError(e); return; }
  if (state.view !== MERGE_VIEW) return;
  state.mergeCount = page.items.length + (page.next_cursor ? 1 : 0);
  renderViews();
  const rows = page.items.map(renderSuggestion);
  if (!rows.length) rows.push(el("p", { class: "empty" }, T.no_suggestions));
  listEl.replaceChildren(el("h3", { class: "merge-title" }, T.merge_suggestions), ...rows);
}

function renderSuggestion(s) {
  const review = el("div", { class: "merge-review", hidden: true });
  const reject = async () => {
    try { await api(`/merge-suggestions/${s.id}/reject`, { method: "POST", body: JSON.stringify({}) }); }
    catch (e) { showError(e); }
    await loadSuggestions();
  };
  const open = async () => {
    if (!review.hidden) { review.hidden = true; return; }
    try { review.replaceChildren(await renderReview(s)); review.hidden = false; } catch (e) { showError(e); }
  };
  return el("div", { class: "suggestion", "data-suggestion": s.id },
    el("div", { class: "merge-pair" }, customerLabel(s.customer), el("div", { class: "merge-and" }, "⇄"), customerLabel(s.other_customer)),
    el("div", { class: "merge-reasons" },
      el("span", { class: "score", title: T.score }, `${T.score}: ${s.score}`),
      (s.reasons || []).map((r) => el("span", { class: "tag" }, reasonText(r)))),
    el("div", { class: "merge-buttons" },
      el("button", { type: "button", "data-action": "reject", onclick: reject }, T.reject),
      el("button", { type: "button", "data-action": "review", class: "primary", onclick: open }, T.review)),
    review);
}

async function renderReview(s, keepId = s.customer.id) {
  // the agent picks the survivor (the suggestion's first customer unless changed); the other
  // is merged into it, conflicts read "this" = the survivor
  const keep = keepId === s.other_customer.id ? s.other_customer : s.customer;
  const other = keep === s.customer ? s.other_customer : s.customer;
  const preview = await api(`/customers/${keep.id}/merge/preview`, { method: "POST", body: JSON.stringify({ other_id: other.id }) });
  const show = (v) => (v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const conflicts = preview.conflicts.map((c) => el("fieldset", { class: "conflict", "data-field": c.field },
    el("legend", {}, c.field),
    ["this", "other"].map((side) => el("label", { class: "choice" },
      el("input", { type: "radio", name: `merge-${s.id}-${c.field}`, value: side, checked: side === "this", "data-side": side }),
      " ", show(c[side]), " ", el("span", { class: "who" }, `(${(side === "this" ? keep : other).name || "—"})`)))));
  const moves = Object.entries(preview.moves || {}).filter(([, n]) => n).map(([k, n]) => `${k}: ${n}`).join(", ");
  const reason = el("input", { type: "text", class: "merge-reason", placeholder: T.merge_reason, "aria-label": T.merge_reason, maxLength: 2000 });
  const button = el("button", { type: "button", class: "primary", "data-action": "merge" }, T.merge);
  const survivor = el("fieldset", { class: "survivor" }, el("legend", {}, T.keep_customer),
    [s.customer, s.other_customer].map((c) => el("label", { class: "choice" },
      el("input", { type: "radio", name: `merge-${s.id}-keep`, value: c.id, checked: c.id === keep.id, "data-keep": c.id,
        onchange: async () => { try { form.replaceWith(await renderReview(s, c.id)); } catch (e) { showError(e); } } }),
      " ", customerLabel(c))));
  const form = el("div", { class: "merge-form" }, survivor,
    el("div", { class: "merge-into" }, fmt(T.merge_into, { other: other.name || "—", keep: keep.name || "—" })),
    conflicts.length ? conflicts : el("div", { class: "muted" }, T.no_conflicts),
    moves ? el("div", { class: "muted" }, `${T.moves}: ${moves}`) : null,
    reason, button);
  button.addEventListener("click", async () => {
    const choose = {};
    form.querySelectorAll("fieldset.conflict").forEach((fs) => {
      const picked = fs.querySelector("input[type=radio]:checked");
      if (picked) choose[fs.dataset.field] = picked.value;
    });
    button.disabled = true;
    try {
      await api(`/merge-suggestions/${s.id}/accept`, { method: "POST",
        body: JSON.stringify({ keep: keep.id, choose, reason: reason.value.trim() }) });
      toast(T.merged);
    } catch (e) { showError(e); button.disabled = false; return; }
    await loadSuggestions();
  });
  return form;
}

function renderMerges(customerId) {
  // the timeline's card has no merges: ask the CRM card, then offer Unmerge for the latest one
  const holder = el("div", { class: "card-merges", "data-customer": customerId });
  api(`/customers/${customerId}`).then((full) => {
    const merged = (full.merges || []).filter((m) => m.target_id === customerId && m.status === "merged");
    if (!merged.length) return;
    const button = el("button", { type: "button", class: "unmerge", "data-action": "unmerge", onclick: async () => {
      button.disabled = true;
      try {
        await api(`/customers/${customerId}/unmerge`, { method: "POST", body: JSON.stringify({}) });
        toast(T.unmerged);
      } catch (e) { showError(e); button.disabled = false; return; }
      if (state.current) await openConversation(state.current.id);
      refreshCounts();
      if (state.view === MERGE_VIEW) loadSuggestions(); else loadList().catch(() => {});
    } }, T.unmerge);
    holder.replaceChildren(el("h4", {}, T.merges),
      ...merged.map((m) => el("div", { class: "line merge-line" }, fmt(T.merged_from, { id: m.source_id }), " · ", fullTime(m.created_at))),
      button);
  }).catch(() => {});
  return holder;
}

// The card's deals: stage (a select), amount and expected close edited inline through
// PATCH /deals/<id>; other agents' edits arrive as `deal.updated` (same as the sales board).
const DEAL_STAGES = ["new", "qualified", "proposal", "negotiation", "won", "lost"].map((key) => ({ key, name: key }));
const dealState = { stages: null, live: false };

function renderDeals(deals) {
  if (!dealState.stages) {
    dealState.stages = DEAL_STAGES;
    api("/pipeline/stages").then((r) => { if (r.items.length) { dealState.stages = r.items; refreshDeals(); } }).catch(() => {});
  }
  if (!dealState.live && state.socket) {
    dealState.live = true;
    state.socket.on("deal.updated", (event) => {
      const deal = state.current && state.current.data.card.deals.find((d) => d.id === event.data.id);
      if (deal) { Object.assign(deal, event.data); refreshDeals(); }
    });
  }
  const save = async (deal, patch) => {
    try { Object.assign(deal, await api(`/deals/${deal.id}`, { method: "PATCH", body: JSON.stringify(patch) })); }
    catch (e) { showError(e.detail && e.detail.json ? { message: Object.values(e.detail.json).flat().join("; ") } : e); }
    refreshDeals(true);  // the saved values, or the old ones back
  };
  return el("div", { id: "card-deals" }, deals.map((d) => {
    const stages = dealState.stages.some((s) => s.key === d.stage) ? dealState.stages : [...dealState.stages, { key: d.stage, name: d.stage }];
    return el("div", { class: "line deal-line", "data-deal": d.id },
      el("div", {}, d.title),
      el("select", { "aria-label": "stage", "data-field": "stage", onchange: (e) => save(d, { stage: e.target.value }) },
        stages.map((s) => el("option", { value: s.key, selected: s.key === d.stage }, s.name))),
      " ",
      el("input", { type: "number", min: "0", step: "0.01", value: d.amount ?? "", "aria-label": "amount", "data-field": "amount",
                    style: "width: 7em", onchange: (e) => save(d, { amount: e.target.value === "" ? null : e.target.value }) }),
      ` ${d.currency || ""} `,
      el("input", { type: "date", value: d.expected_close || "", "aria-label": "expected close", "data-field": "expected_close",
                    onchange: (e) => save(d, { expected_close: e.target.value || null }) }));
  }));
}

function refreshDeals(force = false) {
  const node = document.getElementById("card-deals");
  if (!node || !state.current) return;
  if (!force && node.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;  // mid-edit
  node.replaceWith(renderDeals(state.current.data.card.deals));
}

// The open card stays live: customer.updated / customer.merged / deal.updated about the
// customer on screen (an order or deal pushed through the API, a note, tags, custom fields, a
// new handle, a merge into or away from it) refetch the timeline's card and redraw it in place.
// The composer is left alone; the thread is redrawn only when a merge changed its conversations.
const cardRefresh = { running: false, again: false, deferred: null };

function concernsCard(type, data) {
  const cur = state.current;
  if (!cur) return false;
  const id = cur.data.customer.id;
  if (type === "deal.updated") return data.customer_id === id && !cur.data.card.deals.some((d) => d.id === data.id);
  return data.id === id || data.merged_customer_id === id;
}

async function refreshCard() {
  const cur = state.current;
  if (!cur) return;
  if (cardRefresh.running) { cardRefresh.again = true; return; }
  const aside = threadEl.querySelector("aside.card");
  const active = document.activeElement;
  if (aside && aside.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) {
    // mid-edit on the card: redraw once the agent leaves the field
    if (cardRefresh.deferred !== active) {
      cardRefresh.deferred = active;
      active.addEventListener("blur", () => { cardRefresh.deferred = null; setTimeout(refreshCard, 0); }, { once: true });
    }
    return;
  }
  cardRefresh.running = true;
  try {
    const data = await api(`/conversations/${cur.id}/timeline`);
    if (state.current !== cur) return;  // another conversation was opened meanwhile
    const ids = (list) => list.map((c) => c.id).join(",");
    const moved = ids(data.conversations) !== ids(cur.data.conversations);
    Object.assign(cur.data, { customer: data.customer, card: data.card, conversation: data.conversation });
    cur.conversation = data.conversation;
    if (moved) {
      Object.assign(cur.data, { conversations: data.conversations, messages: data.messages });
      const messages = $("messages");
      if (messages) messages.replaceWith(renderTimeline());
    }
    const who = threadEl.querySelector(".thread-head .who");
    if (who) who.replaceChildren(el("strong", { class: "customer-name" }, data.customer.name || "—"), channelIcons(data.customer));
    const card = threadEl.querySelector("aside.card");
    if (card) card.replaceWith(renderCard());
  } catch (e) {
    /* no longer visible, or offline: the next event or opening it again redraws */
  } finally {
    cardRefresh.running = false;
    if (cardRefresh.again) { cardRefresh.again = false; refreshCard(); }
  }
}

function renderPresence() {
  const node = $("presence");
  if (!node) return;
  const others = state.viewers.filter((v) => v.agent_id !== state.me.id);
  node.replaceChildren(...others.map((v) => el("span", { class: `viewer${v.typing ? " typing" : ""}`, "data-agent": v.agent_id },
    `● ${v.name} ${v.typing ? T.typing : T.viewing}`)));
}

async function patchCurrent(patch) {
  try { upsertConversation(await api(`/conversations/${state.current.id}`, { method: "PATCH", body: JSON.stringify(patch) })); }
  catch (e) { showError(e); }
}

function renderActions() {
  const node = $("actions");
  if (!node || !state.current) return;
  const c = state.current.conversation;
  const assign = el("select", { "aria-label": T.assignee, "data-action": "assignee", onchange: (e) =>
      patchCurrent({ assignee_id: e.target.value ? Number(e.target.value) : null }) },
    el("option", { value: "" }, T.nobody),
    [...state.agents.values()].map((a) => el("option", { value: a.id, selected: a.id === c.assignee_id }, a.name)));
  const team = el("select", { "aria-label": T.team, "data-action": "team", onchange: (e) =>
      patchCurrent({ team_id: e.target.value ? Number(e.target.value) : null }) },
    el("option", { value: "" }, T.no_team),
    state.teams.map((t) => el("option", { value: t.id, selected: t.id === c.team_id }, t.name)));
  const prio = el("select", { "aria-label": T.priority, "data-action": "priority", onchange: (e) => patchCurrent({ priority: e.target.value }) },
    ["low", "normal", "high", "urgent"].map((p) => el("option", { value: p, selected: p === c.priority }, T[p])));
  const status = el("select", { "aria-label": T.status, "data-action": "status", onchange: (e) => {
      if (e.target.value === "snoozed") { snoozeInput.hidden = false; snoozeInput.focus(); return; }
      patchCurrent({ status: e.target.value });
    } },
    ["open", "pending", "snoozed", "resolved"].map((s) => el("option", { value: s, selected: s === c.status }, T[s === "snoozed" ? "snoozed" : s])));
  const snoozeInput = el("input", { type: "datetime-local", hidden: true, title: T.snooze_until, onchange: (e) => {
      if (e.target.value) patchCurrent({ status: "snoozed", snoozed_until: new Date(e.target.value).toISOString() });
    } });
  const labelInput = el("input", { class: "label-input", placeholder: T.add_label, list: "label-list", onkeydown: (e) => {
      if (e.key === "Enter" && e.target.value.trim()) {
        patchCurrent({ labels: [...(c.labels || []), e.target.value.trim()] });
        e.target.value = "";
      }
    } });
  node.replaceChildren(
    c.assignee_id !== state.me.id ? el("button", { type: "button", "data-action": "assign-me", onclick: () => patchCurrent({ assignee_id: state.me.id }) }, T.assign_me) : null,
    assign, team, status, snoozeInput, prio,
    c.status !== "resolved"
      ? el("button", { type: "button", "data-action": "resolve", onclick: () => patchCurrent({ status: "resolved" }) }, `✓ ${T.resolve}`)
      : el("button", { type: "button", "data-action": "reopen", onclick: () => patchCurrent({ status: "open" }) }, T.reopen),
    el("span", { class: "labels" }, (c.labels || []).map((l) => el("span", { class: "tag" }, l,
      el("button", { type: "button", class: "x", title: "remove", onclick: () => patchCurrent({ labels: c.labels.filter((x) => x !== l) }) }, "×")))),
    labelInput, el("datalist", { id: "label-list" }, state.labels.map((l) => el("option", { value: l }))));
}

// --- the composer ----------------------------------------------------------------------------

// canned replies change on the admins' page: the list is fetched again (at most every few
// seconds) when an agent starts a /shortcut, so an open page never needs a reload for them
let cannedFetchedAt = Date.now();
function refreshCanned(then) {
  if (Date.now() - cannedFetchedAt < 5000) return;
  cannedFetchedAt = Date.now();
  api("/canned-replies").then((r) => { state.canned = r.items; then(); }).catch(() => {});
}

function cannedFill(text) {
  const customer = state.current.data.customer;
  const values = {
    "customer.first_name": (customer.name || "").split(/\s+/)[0] || "",
    "customer.name": customer.name || "",
    "agent.name": state.me.name, "agent.first_name": state.me.name.split(/\s+/)[0],
  };
  return text.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (m, key) => (key in values ? values[key] : m));
}

function renderComposer() {
  const cur = state.current;
  const { reply_channels: channels, default_channel_id: defaultChannel } = cur.data;
  const text = el("textarea", { id: "composer-text", rows: 4 });
  const picker = el("select", { id: "composer-channel", "aria-label": T.channel },
    channels.map((ch) => el("option", { value: ch.id, selected: ch.id === defaultChannel }, `${ICONS[ch.kind] || ""} ${ch.name}`)));
  const subject = el("input", { id: "composer-subject", placeholder: T.subject, value: cur.conversation.subject || "" });
  const rules = el("div", { class: "rules", id: "composer-rules" });
  // the handle picked by "reply here" on the card (else the one the customer last wrote from)
  const toChip = el("span", { class: "reply-to", id: "composer-to", hidden: true });
  cur.to = null;
  // WhatsApp's window closed: only an approved template may go out
  const templatePicker = el("select", { id: "composer-template", hidden: true,
    "aria-label": T.template || "Template", onchange: () => updateRules() });
  const suggestions = el("div", { class: "suggestions", hidden: true });
  const sendButton = el("button", { type: "submit", id: "composer-send", class: "send" });
  // files attached to the reply: uploaded on pick, sent as upload tokens with the reply
  cur.uploads = [];
  const fileInput = el("input", { type: "file", id: "composer-file", multiple: true, hidden: true,
    "aria-label": T.attach_files });
  const attachButton = el("button", { type: "button", id: "composer-attach", class: "attach",
    title: T.attach_files, "aria-label": T.attach_files,
    onclick: () => fileInput.click() }, paperclipIcon(), el("span", {}, T.attach));
  const chips = el("div", { class: "chips", id: "composer-chips" });
  const tabs = el("div", { class: "tabs" },
    el("button", { type: "button", "data-mode": "reply", onclick: () => setMode("reply") }, T.reply),
    el("button", { type: "button", "data-mode": "note", onclick: () => setMode("note") }, T.note));
  const form = el("form", { class: "composer", id: "composer", onsubmit: (e) => { e.preventDefault(); send(); } },
    tabs, el("div", { class: "route" }, picker, toChip, subject, templatePicker), rules, suggestions, text, chips,
    el("div", { class: "buttons" }, attachButton, fileInput, sendButton));

  function renderChips() {
    const reply = cur.mode === "reply";
    chips.hidden = !reply || !cur.uploads.length;
    chips.replaceChildren(...cur.uploads.map((u) => el("span", {
      class: `chip ${u.token ? "ready" : "uploading"}`, "data-filename": u.name, title: u.name },
      el("span", { class: "name" }, u.name),
      el("span", { class: "size" }, u.token ? fileSize(u.size) : T.uploading),
      el("button", { type: "button", class: "remove", title: T.remove, "aria-label": `${T.remove} ${u.name}`,
        onclick: () => { cur.uploads = cur.uploads.filter((x) => x !== u); renderChips(); updateRules(); } }, "×"))));
  }
  async function addFiles(files) {
    for (const file of files) {
      const entry = { name: file.name, size: file.size, token: null };
      cur.uploads.push(entry);
      renderChips(); updateRules();
      try {
        const result = await uploadFile(file);
        Object.assign(entry, { token: result.upload_token, size: result.size, name: result.filename });
      } catch (e) {
        cur.uploads = cur.uploads.filter((x) => x !== entry);
        showError(new Error(`${file.name}: ${e.message}`));
      }
      renderChips(); updateRules();
    }
  }
  fileInput.addEventListener("change", () => { const files = [...fileInput.files]; fileInput.value = ""; addFiles(files); });

  const channel = () => channels.find((ch) => ch.id === Number(picker.value));
  function updateRules() {
    const ch = channel();
    const reply = cur.mode === "reply";
    if (cur.to && !(ch && (ch.identity_kinds || []).includes(cur.to.kind))) cur.to = null;  // another channel picked
    toChip.hidden = !(reply && cur.to);
    if (cur.to) toChip.replaceChildren(`→ ${ICONS[cur.to.kind] || ""} ${cur.to.value}`, el("button", { type: "button", class: "x",
      title: T.remove, onclick: () => { cur.to = null; updateRules(); } }, "×"));
    picker.hidden = !reply; subject.hidden = !(reply && ch && ch.kind === "email");
    const notes = [];
    if (reply && !ch) notes.push(T.no_channel);
    const windowClosed = reply && ch && ch.kind === "whatsapp" && !ch.window_open;
    if (windowClosed) notes.push(T.wa_closed);
    const templates = windowClosed ? (ch.templates || []) : [];
    if (windowClosed && !templates.length) notes.push(T.no_templates);
    if (templatePicker.dataset.channel !== String(ch && ch.id)) {
      templatePicker.dataset.channel = String(ch && ch.id);
      templatePicker.replaceChildren(el("option", { value: "" }, T.choose_template),
        ...templates.map((t, i) => el("option", { value: String(i) }, `${t.name} (${t.language})`)));
    }
    templatePicker.hidden = !templates.length;
    const template = templates.length && templatePicker.value !== "" ? templates[Number(templatePicker.value)] : null;
    cur.template = template;
    if (reply && ch && ch.kind === "telegram" && text.value.length > 4096)
      notes.push(fmt(T.tg_split, { n: Math.ceil(text.value.length / 4096) }));
    if (reply && ch && ch.kind === "email") notes.push(T.email_subject);
    rules.replaceChildren(...notes.map((n) => el("div", {}, n)));
    attachButton.hidden = !reply;
    chips.hidden = !reply || !cur.uploads.length;
    sendButton.disabled = reply && (!ch || (windowClosed && !template)
      || cur.uploads.some((u) => !u.token));
  }
  // the textarea holds cur.mode's draft only once a mode was set: before that it is empty,
  // and saving it would wipe the draft a reload is meant to bring back
  let modeLoaded = false;
  function setMode(mode) {
    if (modeLoaded) localStorage.setItem(draftKey(cur.id, cur.mode), text.value);
    modeLoaded = true;
    cur.mode = mode;
    form.classList.toggle("note-mode", mode === "note");
    tabs.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b.dataset.mode === mode));
    text.value = localStorage.getItem(draftKey(cur.id, mode)) || "";
    text.placeholder = mode === "note" ? T.note_placeholder : T.reply_placeholder;
    sendButton.textContent = mode === "note" ? T.add_note : T.send;
    updateRules();
  }
  cur.setMode = setMode;
  cur.focusComposer = (mode) => { setMode(mode); text.focus(); };
  cur.replyHere = (identity, channelId) => {
    setMode("reply");
    picker.value = String(channelId);
    cur.to = identity;
    updateRules();
    text.focus();
  };

  function showSuggestions() {
    // shortcuts may be Cyrillic (the API takes any letter): Unicode letters, not ASCII \w
    const m = /(^|\s)\/([\p{L}\p{N}_-]*)$/u.exec(text.value.slice(0, text.selectionStart));
    if (m && m[2] === "") refreshCanned(showSuggestions);
    const matches = m ? state.canned.filter((c) => c.shortcut.startsWith(m[2])).slice(0, 6) : [];
    suggestions.hidden = !matches.length;
    suggestions.replaceChildren(...matches.map((c, i) => el("button", { type: "button", class: i === 0 ? "first" : "",
      "data-shortcut": c.shortcut, onclick: () => insertCanned(c, m) }, el("b", {}, `/${c.shortcut}`), ` ${c.title || c.text.slice(0, 60)}`)));
    cur.suggestion = matches.length ? () => insertCanned(matches[0], m) : null;
  }
  function insertCanned(c, m) {
    const before = text.value.slice(0, text.selectionStart - m[2].length - 1);
    const after = text.value.slice(text.selectionStart);
    text.value = before + cannedFill(c.text) + after;
    suggestions.hidden = true; cur.suggestion = null;
    text.focus(); onInput();
  }

  let typingTimer = null, lastTypingSent = 0;
  function onInput() {
    localStorage.setItem(draftKey(cur.id, cur.mode), text.value);
    if (!text.value) { cur.typingSince = null; cur.collision = false; cur.collisionShown = false; }
    else if (!cur.typingSince) cur.typingSince = Date.now();
    updateRules();
    showSuggestions();
    const now = Date.now();
    if (state.socket && state.socket.connected && now - lastTypingSent > 2000 && text.value) {
      lastTypingSent = now;
      state.socket.emit("typing", { conversation_id: cur.id, typing: true });
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      lastTypingSent = 0;
      if (state.socket && state.socket.connected) state.socket.emit("typing", { conversation_id: cur.id, typing: false });
    }, 4000);
  }
  text.addEventListener("input", onInput);
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); send(); }
    else if ((e.key === "Tab" || e.key === "Enter") && cur.suggestion) { e.preventDefault(); cur.suggestion(); }
    else if (e.key === "Escape") { suggestions.hidden = true; text.blur(); }
  });
  picker.addEventListener("change", updateRules);

  async function send() {
    const body = text.value.trim();
    const reply = cur.mode === "reply";
    if (reply && cur.uploads.some((u) => !u.token)) return;  // still uploading
    const tokens = reply ? cur.uploads.map((u) => u.token) : [];
    const template = reply ? cur.template : null;
    if (!body && !tokens.length && !template) return;
    if (cur.collision && !cur.collisionShown) {
      cur.collisionShown = true;
      const warn = $("collision");
      warn.textContent = T.collision;
      warn.hidden = false;
      const messages = $("messages");
      if (messages) messages.scrollTop = messages.scrollHeight;
      return;
    }
    sendButton.disabled = true;
    try {
      const message = cur.mode === "note"
        ? await api(`/conversations/${cur.id}/notes`, { method: "POST", body: JSON.stringify({ text: body }) })
        : await api(`/conversations/${cur.id}/messages`, { method: "POST", body: JSON.stringify({
            text: body || (template ? `[template ${template.name}]` : ""),
            template: template ? { name: template.name, language: { code: template.language } } : null,
            channel_id: Number(picker.value) || null, attachments: tokens, identity_id: cur.to ? cur.to.id : null,
            subject: !subject.hidden && subject.value ? subject.value : null }) });
      replaceMessage(message);
      text.value = "";
      if (reply) { cur.uploads = []; renderChips(); }
      localStorage.removeItem(draftKey(cur.id, cur.mode));
      cur.typingSince = null; cur.collision = false; cur.collisionShown = false;
      $("collision").hidden = true;
      if (state.socket && state.socket.connected) state.socket.emit("typing", { conversation_id: cur.id, typing: false });
    } catch (e) { showError(e); }
    updateRules();
  }
  setTimeout(() => { if (!modeLoaded) setMode(cur.mode); }, 0);  // unless r or n came first
  return form;
}

// --- live events -----------------------------------------------------------------------------

function notifyDesktop(title, body, conversationId) {
  if (!state.notify || !("Notification" in window) || Notification.permission !== "granted") return;
  const n = new Notification(title, { body, tag: `tl-${conversationId}` });
  n.onclick = () => { window.focus(); openConversation(conversationId); };
}

function applyEvent(event) {
  if (event.id <= state.lastEventId && state.seen.has(event.id)) return;  // caught up already
  state.seen.add(event.id);
  state.lastEventId = Math.max(state.lastEventId, event.id);
  const data = event.data;
  if (event.type === "conversation.created" || event.type === "conversation.updated") {
    upsertConversation(data);
    refreshCounts();
  } else if (event.type === "message.created" || event.type === "message.updated") {
    const cur = state.current;
    if (cur && cur.data.conversations.some((c) => c.id === data.conversation_id)) {
      replaceMessage(data);
      const fromOthers = data.direction === "in" || (data.direction === "out" && data.author_id !== state.me.id);
      if (event.type === "message.created" && fromOthers && cur.typingSince) cur.collision = true;
      if (event.type === "message.created" && data.direction === "in" && data.conversation_id === cur.id && !document.hidden)
        api(`/conversations/${cur.id}/read`, { method: "POST" }).then(upsertConversation).catch(() => {});
    }
    if (event.type === "message.created" && data.direction === "in") {
      const conv = state.byId.get(data.conversation_id);
      if (conv && conv.assignee_id === state.me.id && (document.hidden || !cur || cur.id !== conv.id))
        notifyDesktop(fmt(T.new_message_from, { name: conv.customer.name }), data.text, conv.id);
    }
  } else if (event.type === "customer.updated" || event.type === "customer.merged" || event.type === "deal.updated") {
    if (concernsCard(event.type, data)) refreshCard();
  }
}

async function catchUp() {
  for (;;) {
    const page = await api(`/events?after=${state.lastEventId}`);
    page.items.forEach(applyEvent);
    if (!page.next_cursor) break;
  }
}

function connect() {
  const socket = io("/agents", { transports: ["websocket", "polling"] });
  state.socket = socket;
  window.threadline.socket = socket;
  ["conversation.created", "conversation.updated", "message.created", "message.updated",
   "customer.updated", "customer.merged", "deal.updated"].forEach((type) => socket.on(type, applyEvent));
  socket.on("presence", (event) => {
    if (state.current && event.data.conversation_id === state.current.id) {
      state.viewers = event.data.viewers;
      renderPresence();
    }
  });
  socket.on("mention", (event) => {
    const d = event.data;
    toast(`${fmt(T.mentioned_you, { name: d.by.name })}: ${d.text}`, 8000);
    notifyDesktop(fmt(T.mentioned_you, { name: d.by.name }), d.text, d.conversation_id);
  });
  socket.on("connect", async () => {
    try { await catchUp(); } catch (e) { /* next connect tries again */ }
    document.body.dataset.live = "yes";
    $("live").title = T.live;
    refreshCounts();
    announceView();
  });
  socket.on("disconnect", () => { document.body.dataset.live = "no"; $("live").title = T.offline; });
}

// --- search ----------------------------------------------------------------------------------

function setupSearch() {
  const input = $("search"), results = $("search-results");
  let timer = null, seq = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value.trim();
      if (!q) { results.hidden = true; return; }
      const mine = ++seq;
      let answer;
      try { answer = await api(`/search?${new URLSearchParams({ q })}`); } catch (e) { return; }
      if (mine !== seq) return;
      const pick = (id) => { results.hidden = true; openConversation(id); };
      const customers = answer.customers.map((c) => el("button", { type: "button", class: "hit customer-hit",
          onclick: () => pick(answer.customer_conversations[String(c.id)]) },
        el("b", {}, highlight(c.name || "—", answer.terms)), " ",
        el("span", { class: "handles" }, highlight((c.identities || []).map((i) => i.value).join(", "), answer.terms))));
      const messages = answer.messages.map((h) => el("button", { type: "button", class: "hit message-hit",
          onclick: () => pick(h.message.conversation_id) },
        el("b", {}, h.customer ? h.customer.name : ""), " ", channelBadge(h.message.channel_id), " ",
        el("span", { class: "snippet" }, highlight(h.snippet, answer.terms))));
      results.replaceChildren(
        customers.length ? el("h4", {}, T.customers) : null, ...customers,
        messages.length ? el("h4", {}, T.messages) : null, ...messages,
        !customers.length && !messages.length ? el("p", { class: "empty" }, T.no_results) : "");
      results.hidden = false;
    }, 200);
  });
  input.addEventListener("keydown", (e) => { if (e.key === "Escape") { results.hidden = true; input.blur(); } });
  document.addEventListener("click", (e) => { if (!results.contains(e.target) && e.target !== input) results.hidden = true; });
}

// --- keyboard --------------------------------------------------------------------------------

function setupKeys() {
  document.addEventListener("keydown", (e) => {
    const tag = (e.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || e.ctrlKey || e.metaKey || e.altKey) return;
    const move = (delta) => {
      if (!state.list.length) return;
      state.cursor = Math.max(0, Math.min(state.list.length - 1, state.cursor + delta));
      openConversation(state.list[state.cursor].id);
    };
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "r": if (state.current) { e.preventDefault(); state.current.focusComposer("reply"); } break;
      case "n": if (state.current) { e.preventDefault(); state.current.focusComposer("note"); } break;
      case "e": if (state.current && state.current.conversation.status !== "resolved") patchCurrent({ status: "resolved" }); break;
      case "x": if (state.current) toggleSelect(state.current.id, !state.selected.has(state.current.id)); break;
      case "/": e.preventDefault(); $("search").focus(); break;
      default: return;
    }
  });
}

function setupNotifications() {
  const button = $("notify");
  const render = () => { button.textContent = state.notify ? `✓ ${T.notifications_on}` : T.notifications; };
  render();
  button.addEventListener("click", async () => {
    if (!state.notify && "Notification" in window) {
      const permission = await Notification.requestPermission();
      state.notify = permission === "granted";
    } else state.notify = false;
    localStorage.setItem("tl-notify", state.notify ? "1" : "0");
    render();
  });
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  state.seen = new Set();
  // the event head first: whatever happens while the page loads is caught up on connect
  state.lastEventId = (await api("/events/head")).last_id;
  const boot = await api("/inbox/bootstrap");
  state.me = boot.me;
  boot.agents.forEach((a) => state.agents.set(a.id, a));
  state.teams = boot.teams;
  boot.channels.forEach((c) => state.channels.set(c.id, c));
  state.labels = boot.labels;
  state.canned = boot.canned_replies;
  renderViews();
  await loadList();
  refreshCounts();
  setupSearch();
  setupKeys();
  setupNotifications();
  connect();
  if (BOOT.conversation_id) await openConversation(BOOT.conversation_id);
  document.body.dataset.ready = "yes";
}

start().catch(showError);
