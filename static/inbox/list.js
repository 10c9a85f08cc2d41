// The middle pane: the conversation list of the current view (keyset pagination through
// next_cursor), kept sorted and live, with multi-select and the bulk actions bar.
import { T, api, el } from "../common.js";
import { channelIcons, fmt, fullTime, showError, time } from "./format.js";
import { MERGE_VIEW, bulkEl, listEl, state } from "./state.js";
import { renderActions } from "./actions.js";
import { snoozedUntil } from "./snooze.js";
import { slaBadge } from "./routing.js";
import { openConversation } from "./thread.js";
import { MENTIONS_VIEW, matchesView, renderViews, viewParams } from "./views.js";

function listQuery(cursor) {
  const params = new URLSearchParams({ limit: "50", ...viewParams(state.view) });
  if (cursor) params.set("cursor", cursor);
  return `/conversations?${params}`;
}

// the Mentions view: conversations whose notes mention me, unread mentions first; opening
// the view marks those mentions read (the rows keep their mark until the view is left)
async function loadMentions() {
  const answer = await api("/mentions");
  if (state.view !== MENTIONS_VIEW) return;
  state.list = answer.items.map((i) => i.conversation);
  state.mentionMarks = new Map(answer.items.map((i) => [i.conversation.id, i.unread]));
  state.nextCursor = null;
  state.list.forEach((c) => state.byId.set(c.id, c));
  renderList();
  const ids = answer.items.flatMap((i) => i.ids);
  if (ids.length) {
    const read = await api("/notifications/read", { method: "POST", body: JSON.stringify({ ids }) });
    state.mentionsUnread = 0;
    renderViews();
    document.dispatchEvent(new CustomEvent("tl-mentions-read", { detail: { ids, unread: read.unread } }));
  }
}

export async function loadList() {
  const view = state.view;
  if (view === MENTIONS_VIEW) { await loadMentions(); return; }
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
  if (state.view === MENTIONS_VIEW) return;  // the server's order: unread mentions first
  state.list.sort((a, b) => (a.last_activity_at === b.last_activity_at ? b.id - a.id
    : (b.last_activity_at > a.last_activity_at ? 1 : -1)));
}

function renderRow(c, index) {
  const assignee = c.assignee_id ? state.agents.get(c.assignee_id) : null;
  return el("div", {
      class: `row${c.unread_count ? " unread" : ""}${state.current && state.current.id === c.id ? " active" : ""}${index === state.cursor ? " cursor" : ""}${state.selected.has(c.id) ? " selected" : ""}`,
      "data-conversation": c.id, tabindex: "0", "aria-current": state.current && state.current.id === c.id ? "true" : null,
      onclick: (e) => { if (e.target.type !== "checkbox") openConversation(c.id); },
      onkeydown: (e) => { if ((e.key === "Enter" || e.key === " ") && e.target === e.currentTarget) { e.preventDefault(); openConversation(c.id); } },
    },
    el("input", { type: "checkbox", class: "pick", checked: state.selected.has(c.id), "aria-label": `${T.select} ${c.customer.name || ""}`.trim(),
                  onchange: (e) => toggleSelect(c.id, e.target.checked) }),
    el("div", { class: "name" }, el("span", { class: "customer" }, c.customer.name || "—"), channelIcons(c.customer),
      el("span", { class: "time", title: fullTime(c.last_activity_at) }, time(c.last_activity_at))),
    el("div", { class: "preview" }, c.last_message_preview || ""),
    el("div", { class: "meta" },
      c.unread_count ? el("span", { class: "unread-mark", "data-unread": c.unread_count }, String(c.unread_count)) : "",
      state.view === MENTIONS_VIEW && (state.mentionMarks || new Map()).get(c.id)
        ? el("span", { class: "mention-mark", "data-mentions": state.mentionMarks.get(c.id), title: T.unread_mentions }, `@ ${state.mentionMarks.get(c.id)}`) : "",
      c.priority !== "normal" ? el("span", { class: `prio ${c.priority}` }, T[c.priority] || c.priority) : "",
      (c.labels || []).map((l) => el("span", { class: "tag" }, l)),
      snoozedUntil(c, T.until),
      slaBadge(c),
      el("span", { class: "assignee" }, assignee ? assignee.name : "")));
}

export function renderList() {
  if (state.view === MERGE_VIEW) return;  // the middle pane shows the merge suggestions
  sortList();
  // the cursor follows the open conversation, not a position: a re-sort must not move it
  if (state.current) state.cursor = state.list.findIndex((c) => c.id === state.current.id);
  const rows = state.list.map(renderRow);
  if (!rows.length) rows.push(el("p", { class: "empty" }, T.no_conversations));
  if (state.nextCursor) rows.push(el("button", { class: "more", type: "button", onclick: loadMore }, T.load_more));
  listEl.replaceChildren(...rows);
  renderBulk();
}

export function upsertConversation(c) {
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

export function toggleSelect(id, on) {
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
    [...state.agents.values()].filter((a) => a.role !== "bot").map((a) => el("option", { value: a.id }, a.name)));
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
