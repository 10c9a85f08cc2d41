// The notification centre in the header: a bell with my unread count, a dropdown of my
// notifications (mentions, conversations assigned to me, new messages in mine); a click opens
// the conversation and marks it read; "mark all read"; the options (a sound, the unread count
// in the tab's title) saved on the server per agent. New ones come live as
// `notification.created` (to my browsers only): a clickable toast, the desktop notification
// when switched on, the sound when chosen.
import { T, api, el, toast } from "../common.js";
import { fmt, fullTime, time } from "./format.js";
import { notifyDesktop } from "./notifications.js";
import { $, state } from "./state.js";
import { openConversation } from "./thread.js";
import { refreshCounts, renderViews } from "./views.js";

const baseTitle = document.title;
const bell = { items: [], unread: 0, prefs: { sound: false, title_badge: true }, open: false, next: null };
window.threadline.bell = bell;

export function describe(n) {
  const who = n.actor_name || "";
  const customer = n.customer_name || "—";
  if (n.kind === "mention") return fmt(T.notif_mention, { name: who, customer });
  if (n.kind === "assigned") return who ? fmt(T.notif_assigned_by, { name: who, customer }) : fmt(T.notif_assigned, { customer });
  return n.count > 1 ? fmt(T.notif_messages, { n: n.count, customer }) : fmt(T.notif_message, { customer });
}

function renderCount() {
  const count = $("bell-count");
  count.textContent = bell.unread > 99 ? "99+" : String(bell.unread);
  count.hidden = !bell.unread;
  $("bell").setAttribute("aria-label", bell.unread ? fmt(T.notifications_unread, { n: bell.unread }) : T.notification_centre);
  document.title = bell.prefs.title_badge && bell.unread ? `(${bell.unread}) ${baseTitle}` : baseTitle;
}

function renderPanel() {
  const panel = $("bell-panel");
  if (!bell.open) { panel.hidden = true; return; }
  const option = (key, label) => el("label", { class: "bell-option" },
    el("input", { type: "checkbox", "data-pref": key, checked: bell.prefs[key], onchange: (e) => savePref(key, e.target.checked) }), ` ${label}`);
  const rows = bell.items.map((n) => el("li", {},
    el("button", { type: "button", class: `bell-item${n.read ? "" : " unread"}`, "data-notification": n.id,
                   "data-conversation": n.conversation_id, onclick: () => openNotification(n) },
      el("span", { class: "bell-what" }, describe(n)),
      n.text ? el("span", { class: "bell-text" }, n.text) : "",
      el("time", { class: "bell-time", title: fullTime(n.created_at) }, time(n.created_at)))));
  panel.replaceChildren(
    el("div", { class: "bell-head" }, el("strong", {}, T.notification_centre),
      el("button", { type: "button", class: "link", id: "bell-read-all", disabled: !bell.unread, onclick: readAll }, T.mark_all_read)),
    rows.length ? el("ul", { class: "bell-list" }, rows) : el("p", { class: "empty" }, T.no_notifications),
    bell.next ? el("button", { type: "button", class: "link bell-more", onclick: loadMore }, T.load_more) : "",
    el("div", { class: "bell-options" }, option("sound", T.notif_sound), option("title_badge", T.notif_title_badge)));
  panel.hidden = false;
  // at phone width the panel spans the window (fixed), under the bell wherever the header wrapped it
  panel.style.top = getComputedStyle(panel).position === "fixed" ? `${$("bell").getBoundingClientRect().bottom + 8}px` : "";
}

async function load() {
  const page = await api("/notifications?limit=20");
  bell.items = page.items;
  bell.next = page.next_cursor;
  bell.unread = page.unread;
  renderCount();
  renderPanel();
}

async function loadMore() {
  const page = await api(`/notifications?limit=20&cursor=${encodeURIComponent(bell.next)}`);
  bell.items.push(...page.items.filter((n) => !bell.items.some((x) => x.id === n.id)));
  bell.next = page.next_cursor;
  renderPanel();
}

async function markRead(body) {
  const answer = await api("/notifications/read", { method: "POST", body: JSON.stringify(body) });
  bell.unread = answer.unread;
  renderCount();
  return answer;
}

async function readAll() {
  try {
    await markRead({ all: true });
    bell.items.forEach((n) => { n.read = true; });
    state.mentionsUnread = 0;
    renderPanel();
    renderViews();
  } catch (e) { /* the next load shows the truth */ }
}

// opening one: its conversation, and every notification of that conversation is read
export async function openNotification(n) {
  bell.open = false;
  renderPanel();
  $("bell").setAttribute("aria-expanded", "false");
  await openConversation(n.conversation_id);
  readConversation(n.conversation_id);
}

export function readConversation(conversationId) {
  const unread = bell.items.filter((n) => n.conversation_id === conversationId && !n.read);
  if (!unread.length) return;
  unread.forEach((n) => { n.read = true; });
  markRead({ all: true, conversation_id: conversationId }).then(refreshCounts).catch(() => {});
  renderPanel();
}

async function savePref(key, value) {
  bell.prefs[key] = value;
  renderCount();
  try { bell.prefs = await api("/notifications/settings", { method: "PUT", body: JSON.stringify({ [key]: value }) }); } catch (e) { /* kept for this page */ }
  renderCount();
}

function beep() {
  try {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    bell.audio = bell.audio || new Ctx();
    const osc = bell.audio.createOscillator(), gain = bell.audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, bell.audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, bell.audio.currentTime + 0.25);
    osc.connect(gain).connect(bell.audio.destination);
    osc.start();
    osc.stop(bell.audio.currentTime + 0.25);
    bell.beeps = (bell.beeps || 0) + 1;
  } catch (e) { /* no sound then */ }
}

// a live one (Socket.IO notification.created, to this agent only)
export function onNotification(event) {
  const n = event.data;
  const known = bell.items.findIndex((x) => x.id === n.id);
  const wasUnread = known >= 0 && !bell.items[known].read;
  if (known >= 0) bell.items.splice(known, 1);
  bell.items.unshift(n);
  // a new message in the conversation I am looking at is no news
  const looking = state.current && state.current.id === n.conversation_id && !document.hidden;
  if (looking && n.kind === "message") {
    n.read = true;
    markRead({ ids: [n.id] }).catch(() => {});
    renderPanel();
    return;
  }
  if (!wasUnread) bell.unread += 1;
  if (n.kind === "mention") {
    state.mentionsUnread = (state.mentionsUnread || 0) + 1;
    renderViews();
    document.dispatchEvent(new CustomEvent("tl-mention", { detail: n }));
  }
  renderCount();
  renderPanel();
  const title = describe(n);
  toast(n.text ? `${title}: ${n.text}` : title, 8000, { whole: true, run: () => openNotification(n) });
  notifyDesktop(title, n.text || "", n.conversation_id);
  if (bell.prefs.sound) beep();
}

// after a reconnect: what came while offline
export function refreshBell() { load().catch(() => {}); }

export function setupBell() {
  const button = $("bell");
  // the Mentions view read them: the bell follows
  document.addEventListener("tl-mentions-read", (e) => {
    if (!e.detail) return;
    bell.items.forEach((n) => { if (e.detail.ids.includes(n.id)) n.read = true; });
    bell.unread = e.detail.unread;
    renderCount();
    renderPanel();
  });
  // a new mention while the Mentions view is shown: the list again
  document.addEventListener("tl-mention", () => { if (state.view === "mentions") import("./list.js").then((m) => m.loadList()); });
  button.addEventListener("click", (e) => {
    e.stopPropagation();
    bell.open = !bell.open;
    button.setAttribute("aria-expanded", String(bell.open));
    renderPanel();
    if (bell.open) load().catch(() => {});
  });
  document.addEventListener("click", (e) => {
    if (bell.open && !e.target.closest("#bell-panel, #bell")) { bell.open = false; button.setAttribute("aria-expanded", "false"); renderPanel(); }
  });
  window.addEventListener("resize", () => { if (bell.open) renderPanel(); });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && bell.open) { bell.open = false; button.setAttribute("aria-expanded", "false"); renderPanel(); button.focus(); }
  });
  api("/notifications/settings").then((p) => { bell.prefs = p; renderCount(); }).catch(() => {});
  return load().catch(() => {});
}
