// Work distribution in the inbox (issue 17): the agent's availability in the header (online /
// away / offline, or automatic: online while this page is open), the thread's activity lines
// (who or which rule assigned, queued, failed, and why) and the SLA badge of a row.
import { T, api, el } from "../common.js";
import { fullTime, showError, time } from "./format.js";
import { $, state } from "./state.js";

export async function setupAvailability() {
  const select = $("availability");
  if (!select) return;
  const show = (a) => {
    select.value = a.choice || "auto";
    select.dataset.status = a.status;
    select.title = `${T.availability}: ${T["availability_" + a.status] || a.status}`;
  };
  state.showAvailability = show;
  show(await api("/agents/me/availability"));
  select.addEventListener("change", async () => {
    try {
      show(await api("/agents/me/availability", { method: "PUT", body: JSON.stringify({ status: select.value }) }));
    } catch (e) { showError(e); }
  });
}

// after (re)connecting: the server counted this page's connection before answering it
export async function refreshAvailability() {
  if (!state.showAvailability) return;
  try { state.showAvailability(await api("/agents/me/availability")); } catch (e) { /* next event */ }
}

export function applyAvailability(data) {
  if (state.me && data.agent_id === state.me.id && state.showAvailability) state.showAvailability(data);
}

function renderActivity(a) {
  return el("div", { class: `activity ${a.kind}`, "data-activity": a.id, "data-kind": a.kind, "data-at": a.created_at },
    el("span", { class: "what" }, `⚙ ${a.text}`),
    el("span", { class: "when", title: fullTime(a.created_at) }, time(a.created_at)));
}

function placeActivity(a) {
  const holder = document.querySelector(`.conv-current[data-conv="${a.conversation_id}"]`);
  if (!holder || holder.querySelector(`[data-activity="${a.id}"]`)) return;
  const node = renderActivity(a);
  const later = [...holder.children].find((child) => child.dataset.at && child.dataset.at > a.created_at);
  if (later) holder.insertBefore(node, later); else holder.append(node);
}

export async function loadActivity(conversationId) {
  try {
    const page = await api(`/conversations/${conversationId}/activity`);
    if (!state.current || state.current.id !== conversationId) return;
    page.items.forEach(placeActivity);
  } catch (e) { /* the thread works without its activity lines */ }
}

export function applyActivity(data) {
  if (state.current && state.current.id === data.conversation_id) {
    placeActivity(data);
    const messages = $("messages");
    if (messages) messages.scrollTop = messages.scrollHeight;
  }
}

// "sla-ok" | "sla-warning" | "sla-breached" | null, from the conversation's due times
export function slaState(c, now = new Date().toISOString()) {
  if (c.status === "resolved") return null;
  const dues = [];
  if (c.first_response_due_at && !c.first_response_at) dues.push(c.first_response_due_at);
  if (c.next_response_due_at) dues.push(c.next_response_due_at);
  if (c.resolution_due_at) dues.push(c.resolution_due_at);
  if (!dues.length) return null;
  const due = dues.sort()[0];
  if (due < now) return { cls: "sla-breached", due };
  if (c.sla_warning_at && c.sla_warning_at < now) return { cls: "sla-warning", due };
  return { cls: "sla-ok", due };
}

export function slaBadge(c) {
  const s = slaState(c);
  if (!s) return c.waiting_since && !c.assignee_id
    ? el("span", { class: "waiting", title: fullTime(c.waiting_since) }, T.waiting) : "";
  return el("span", { class: `sla ${s.cls}`, "data-sla": s.cls, title: `${T.sla_due} ${fullTime(s.due)}` },
    `${T.sla_due} ${time(s.due)}`);
}
