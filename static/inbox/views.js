// The left pane: the views (all open, mine, unassigned, mentions of me, teams, channels, labels, snoozed,
// resolved, merge suggestions) with their live counts, and what each view lists.
import { T, api, el } from "../common.js";
import { ICONS } from "./format.js";
import { loadList } from "./list.js";
import { loadMergeCount, loadSuggestions, mergeViewItem } from "./merge.js";
import { setPane } from "./phone.js";
import { MERGE_VIEW, state, viewsEl } from "./state.js";

export function viewParams(view) {
  const [kind, arg] = view.split(":");
  switch (kind) {
    case "mine": return { status: "open", assignee: "me" };
    case "unassigned": return { status: "open", assignee: "none" };
    case "bot": return { status: "open", handled_by: "bot" };
    case "snoozed": return { status: "snoozed" };
    case "resolved": return { status: "resolved" };
    case "team": return { status: "open", team_id: arg };
    case "channel": return { status: "open", channel_id: arg };
    case "label": return { status: "open", label: view.slice(6) };
    default: return { status: "open" };
  }
}

export const MENTIONS_VIEW = "mentions";

export function matchesView(view, c) {
  // the Mentions view lists what the server says (GET /mentions); live changes update its rows
  if (view === MENTIONS_VIEW) return state.list.some((x) => x.id === c.id);
  const p = viewParams(view);
  if (c.status !== p.status) return false;
  if (p.assignee === "me" && c.assignee_id !== state.me.id) return false;
  if (p.assignee === "none" && (c.assignee_id !== null || c.handled_by)) return false;
  if (p.handled_by === "bot" && !c.handled_by) return false;
  if (p.team_id && String(c.team_id) !== p.team_id) return false;
  if (p.channel_id && String(c.channel_id) !== p.channel_id) return false;
  if (p.label && !(c.labels || []).includes(p.label)) return false;
  return true;
}

export function renderViews() {
  // each view: its name, how many conversations it holds (grey) and how many are unread (badge)
  const item = (key, label, icon = "") => {
    const n = key === MENTIONS_VIEW ? state.mentionsUnread || 0 : state.counts[key] || 0;
    const total = (state.totals || {})[key] || 0;
    return el("button", { class: `view${state.view === key ? " active" : ""}`, "data-view": key,
                          type: "button", onclick: () => selectView(key), title: label },
      el("span", { class: "label" }, icon ? `${icon} ` : "", label),
      el("span", { class: "nums" },
        total ? el("span", { class: "total", "data-total": key, title: T.total_conversations }, String(total)) : "",
        el("span", { class: `count${n ? "" : " zero"}`, "data-count": key, title: T.unread_conversations }, n ? String(n) : "")));
  };
  const section = (title, items) => (items.length ? [el("h3", {}, title), ...items] : []);
  viewsEl.replaceChildren(
    item("open", T.all_open), item("mine", T.mine), item("unassigned", T.unassigned),
    item("bot", T.bot_view),
    item(MENTIONS_VIEW, T.mentions_view, "@"),
    ...section(T.teams, state.teams.map((t) => item(`team:${t.id}`, (T.team_names || {})[t.name] || t.name))),
    ...section(T.channels, [...state.channels.values()].map((c) => item(`channel:${c.id}`, c.name, ICONS[c.kind]))),
    ...section(T.labels, state.labels.map((l) => item(`label:${l}`, l, "#"))),
    el("h3", {}, T.status), item("snoozed", T.snoozed), item("resolved", T.resolved),
    el("h3", {}, T.customers), mergeViewItem());
}

let countsTimer = null;
export function refreshCounts() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(async () => {
    try {
      const answer = await api("/inbox/views");
      state.counts = answer.counts;
      state.totals = answer.totals || {};
      state.mentionsUnread = (await api("/mentions")).unread;
      renderViews();
      loadMergeCount();
    } catch (e) { /* a reconnect will try again */ }
  }, 250);
}

export async function selectView(view) {
  state.view = view;
  state.selected.clear();
  state.cursor = -1;
  setPane("list");
  renderViews();
  if (view === MERGE_VIEW) { await loadSuggestions(); return; }
  await loadList();
}
