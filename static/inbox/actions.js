// The thread head's actions on the open conversation: assignee, team, status (snooze with
// presets), priority, resolve (with Undo, then the next conversation) / reopen and labels,
// each a PATCH of the conversation.
import { T, api, el, toast } from "../common.js";
import { showError } from "./format.js";
import { upsertConversation } from "./list.js";
import { snoozeMenu, snoozedUntil } from "./snooze.js";
import { $, state } from "./state.js";
import { openConversation } from "./thread.js";

export async function patchCurrent(patch) {
  try { upsertConversation(await api(`/conversations/${state.current.id}`, { method: "PATCH", body: JSON.stringify(patch) })); return true; }
  catch (e) { showError(e); return false; }
}

// resolve the open conversation, say so with an Undo, and open the next one of the list
export async function resolveCurrent() {
  const cur = state.current;
  if (!cur || cur.conversation.status === "resolved") return;
  const before = cur.conversation.status;
  const index = state.list.findIndex((c) => c.id === cur.id);
  if (!(await patchCurrent({ status: "resolved" }))) return;
  toast(T.resolved_done, 8000, { label: T.undo, run: async () => {
    try {
      upsertConversation(await api(`/conversations/${cur.id}`, { method: "PATCH", body: JSON.stringify({ status: before === "snoozed" ? "open" : before }) }));
      openConversation(cur.id);
    } catch (e) { showError(e); }
  } });
  const rest = state.list.filter((c) => c.id !== cur.id);
  const next = rest[Math.min(Math.max(index, 0), rest.length - 1)];
  if (next && state.current === cur) openConversation(next.id);
}

// give the open conversation back to the outside bot of its channel
async function returnToBot() {
  try {
    upsertConversation(await api(`/conversations/${state.current.id}/return-to-bot`, { method: "POST" }));
    toast(T.returned_to_bot, 5000);
  } catch (e) { showError(e); }
}

function select(attrs, options) { return el("select", attrs, options); }

export function renderActions() {
  const node = $("actions");
  if (!node || !state.current) return;
  const c = state.current.conversation;
  // a live update redraws this bar; a label the agent is typing must survive it
  const typing = node.querySelector(".label-input");
  const typed = typing && typing.dataset.conversation === String(state.current.id) ? typing.value : "";
  const hadFocus = typing !== null && document.activeElement === typing;
  const assign = select({ "aria-label": T.assignee, "data-action": "assignee", onchange: (e) =>
      patchCurrent({ assignee_id: e.target.value ? Number(e.target.value) : null }) },
    [el("option", { value: "" }, T.nobody),
     [...state.agents.values()].filter((a) => a.role !== "bot").map((a) => el("option", { value: a.id, selected: a.id === c.assignee_id }, a.name))]);
  const team = select({ "aria-label": T.team, "data-action": "team", onchange: (e) =>
      patchCurrent({ team_id: e.target.value ? Number(e.target.value) : null }) },
    [el("option", { value: "" }, T.no_team), state.teams.map((t) => el("option", { value: t.id, selected: t.id === c.team_id }, (T.team_names || {})[t.name] || t.name))]);
  const prio = select({ "aria-label": T.priority, "data-action": "priority", onchange: (e) => patchCurrent({ priority: e.target.value }) },
    ["low", "normal", "high", "urgent"].map((p) => el("option", { value: p, selected: p === c.priority }, T[p])));
  const menu = snoozeMenu(
    (at) => patchCurrent({ status: "snoozed", snoozed_until: at.toISOString() }),
    () => { menu.hidden = true; status.value = c.status; });
  menu.hidden = true;
  const status = select({ "aria-label": T.status, "data-action": "status", onchange: (e) => {
      if (e.target.value === "snoozed") { menu.hidden = false; menu.querySelector("button").focus(); return; }
      if (e.target.value === "resolved") { resolveCurrent(); return; }
      patchCurrent({ status: e.target.value });
    } },
    ["open", "pending", "snoozed", "resolved"].map((s) => el("option", { value: s, selected: s === c.status }, T[`status_${s}`] || T[s])));
  const labelInput = el("input", { class: "label-input", "data-conversation": state.current.id, value: typed, placeholder: T.add_label, "aria-label": T.add_label, list: "label-list", onkeydown: (e) => {
      if (e.key === "Enter" && e.target.value.trim()) {
        patchCurrent({ labels: [...(c.labels || []), e.target.value.trim()] });
        e.target.value = "";
      }
    } });
  // an outside bot serves the channel: the bot holds the conversation, or it can go back to it
  const botName = (state.channels.get(c.channel_id) || {}).bot;
  const bot = !botName ? null : (c.handled_by || "").startsWith("bot:")
    ? el("span", { class: "tag bot-holds", "data-action": "bot-holds" }, `${T.bot_holds} ${botName}`)
    : c.status !== "resolved"
      ? el("button", { type: "button", "data-action": "return-to-bot", title: `${T.return_to_bot}: ${botName}`, onclick: returnToBot }, T.return_to_bot)
      : null;
  node.replaceChildren(...[
    bot,
    c.assignee_id !== state.me.id ? el("button", { type: "button", "data-action": "assign-me", onclick: () => patchCurrent({ assignee_id: state.me.id }) }, T.assign_me) : null,
    assign, team, status, prio,
    c.status !== "resolved"
      ? el("button", { type: "button", "data-action": "resolve", onclick: resolveCurrent }, `✓ ${T.resolve}`)
      : el("button", { type: "button", "data-action": "reopen", onclick: () => patchCurrent({ status: "open" }) }, T.reopen),
    snoozedUntil(c),
    el("span", { class: "labels" }, (c.labels || []).map((l) => el("span", { class: "tag" }, l,
      el("button", { type: "button", class: "x", title: T.remove, "aria-label": `${T.remove} ${l}`, onclick: () => patchCurrent({ labels: c.labels.filter((x) => x !== l) }) }, "×")))),
    labelInput, el("datalist", { id: "label-list" }, state.labels.map((l) => el("option", { value: l }))), menu,
  ].filter((x) => x !== null && x !== ""));
  if (hadFocus && typed !== "") labelInput.focus();
}
