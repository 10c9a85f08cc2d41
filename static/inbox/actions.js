// The thread head's actions on the open conversation: assignee, team, status (snooze with a
// time), priority, resolve/reopen and labels, each a PATCH of the conversation.
import { T, api, el } from "../common.js";
import { showError } from "./format.js";
import { upsertConversation } from "./list.js";
import { $, state } from "./state.js";

export async function patchCurrent(patch) {
  try { upsertConversation(await api(`/conversations/${state.current.id}`, { method: "PATCH", body: JSON.stringify(patch) })); }
  catch (e) { showError(e); }
}

export function renderActions() {
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
    state.teams.map((t) => el("option", { value: t.id, selected: t.id === c.team_id }, (T.team_names || {})[t.name] || t.name)));
  const prio = el("select", { "aria-label": T.priority, "data-action": "priority", onchange: (e) => patchCurrent({ priority: e.target.value }) },
    ["low", "normal", "high", "urgent"].map((p) => el("option", { value: p, selected: p === c.priority }, T[p])));
  const status = el("select", { "aria-label": T.status, "data-action": "status", onchange: (e) => {
      if (e.target.value === "snoozed") { snoozeInput.hidden = false; snoozeInput.focus(); return; }
      patchCurrent({ status: e.target.value });
    } },
    ["open", "pending", "snoozed", "resolved"].map((s) => el("option", { value: s, selected: s === c.status }, T[{ snoozed: "status_snoozed", resolved: "status_resolved" }[s] || s])));
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
