// The customer card beside the thread: handles (with "reply here"), tags, custom fields,
// orders, deals, notes and merges. It stays live: customer.updated / customer.merged /
// deal.updated about the customer on screen refetch the timeline's card and redraw it.
import { T, api, el } from "../common.js";
import { handleDetails, prechatHandles, renderSource } from "./card-source.js";
import { renderDealForm, renderEditor, renderNoteForm } from "./card-edit.js";
import { currentStages, renderDeals } from "./deals.js";
import { ICONS, channelIcons, dateTime, fmt, money } from "./format.js";
import { renderMerges } from "./merge.js";
import { backToList, backToThread, toCard } from "./phone.js";
import { $, state, threadEl } from "./state.js";
import { renderTimeline } from "./timeline.js";

export function renderCard() {
  const { customer, card, messages } = state.current.data;
  const redraw = () => { const node = threadEl.querySelector("aside.card"); if (node && !node.contains(document.activeElement)) node.replaceWith(renderCard()); };
  const currency = (card.deals.find((d) => d.currency) || card.orders.find((o) => o.currency) || {}).currency || "EUR";
  return el("aside", { class: "card", "aria-label": T.card },
    backToThread(),
    el("h3", {}, customer.name || "—"),
    customer.company ? el("div", { class: "company" }, customer.company) : null,
    el("h4", {}, T.handles),
    (customer.identities || []).map((i) => {
      const d = handleDetails(i, messages || []);
      return el("div", { class: `identity${i.reachable ? "" : " unreachable"}`, "data-identity": i.id, "data-kind": i.kind },
        el("span", { class: "icon", "aria-hidden": "true" }, ICONS[i.kind] || "•"), " ", el("span", { class: "handle", title: d.title || null }, d.label), replyHere(i));
    }),
    prechatHandles(customer, messages || []),
    (customer.tags || []).length ? el("div", { class: "tags" }, customer.tags.map((t) => el("span", { class: "tag" }, t))) : null,
    renderSource(customer.source),
    (card.opt_outs || []).length ? el("div", { class: "opt-outs", "data-opt-outs": "" }, el("h4", {}, T.opted_out),
      card.opt_outs.map((o) => el("div", { class: "line opt-out", "data-channel": String(o.channel_id) },
        `${ICONS[o.channel_kind] || "•"} ${o.channel_name} · ${(T.opt_out_sources || {})[o.source] || o.source} · ${new Date(o.created_at).toLocaleDateString(document.documentElement.lang)}`))) : null,
    card.orders.length ? [el("h4", {}, T.orders), card.orders.map((o) => el("div", { class: "line" },
      `${o.external_ref || "#" + o.id} · ${(T.order_statuses || {})[o.status] || o.status} · ${o.total ? money(o.total, o.currency) : ""}`))] : null,
    el("h4", {}, T.deals), card.deals.length ? renderDeals(card.deals) : null,
    keepOpen(renderDealForm(customer.id, currentStages(), currency, refreshCard), "deal"),
    renderCsat(card.csat),
    el("h4", {}, T.notes),
    card.notes.map((n) => el("div", { class: "line note" }, n.text)),
    renderNoteForm(customer.id, refreshCard),
    keepOpen(el("details", { class: "card-edit-box" }, el("summary", {}, `✎ ${T.edit_details}`), renderEditor(customer, redraw)), "edit"),
    renderMerges(customer.id));
}

// Feedback (CSAT): the customer's average and latest answers, stars and comment
function renderCsat(csat) {
  if (!csat || !(csat.items || []).length) return null;
  const stars = (n) => "★".repeat(n) + "☆".repeat(5 - n);
  return el("section", { class: "csat", "data-csat-average": csat.average ?? "" },
    el("h4", {}, T.csat_title),
    csat.average != null ? el("div", { class: "line csat-average" }, fmt(T.csat_average, { avg: csat.average, n: csat.answered })) : null,
    csat.items.map((s) => el("div", { class: "line csat-answer", "data-conversation": s.conversation_id, "data-score": s.score ?? "" },
      s.score ? el("span", { class: "csat-stars", title: `${s.score}/5` }, stars(s.score)) : el("span", { class: "muted" }, T.csat_waiting),
      s.score ? ` ${s.score}/5` : "",
      s.comment ? el("span", { class: "csat-comment" }, ` · ${s.comment}`) : null,
      el("span", { class: "muted" }, ` · ${dateTime(s.answered_at || s.asked_at)}`))));
}

// an unfolded part of the card stays unfolded when the card is redrawn live
const unfolded = new Set();
function keepOpen(details, key) {
  details.open = unfolded.has(key);
  details.addEventListener("toggle", () => { if (details.open) unfolded.add(key); else unfolded.delete(key); });
  return details;
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

// The open card stays live: customer.updated / customer.merged / deal.updated about the
// customer on screen (an order or deal pushed through the API, a note, tags, custom fields, a
// new handle, a merge into or away from it) refetch the timeline's card and redraw it in place.
// The composer is left alone; the thread is redrawn only when a merge changed its conversations.
const cardRefresh = { running: false, again: false, deferred: null };

export function concernsCard(type, data) {
  const cur = state.current;
  if (!cur) return false;
  const id = cur.data.customer.id;
  if (type === "deal.updated") return data.customer_id === id && !cur.data.card.deals.some((d) => d.id === data.id);
  return data.id === id || data.merged_customer_id === id;
}

// the card field the agent is typing in, if any
function editedField() {
  const aside = threadEl.querySelector("aside.card");
  const active = document.activeElement;
  return aside && aside.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) ? active : null;
}

// mid-edit on the card: redraw once the agent leaves the field
function redrawAfter(field) {
  if (cardRefresh.deferred === field) return;
  cardRefresh.deferred = field;
  field.addEventListener("blur", () => { cardRefresh.deferred = null; setTimeout(refreshCard, 0); }, { once: true });
}

export async function refreshCard() {
  const cur = state.current;
  if (!cur) return;
  if (cardRefresh.running) { cardRefresh.again = true; return; }
  const editing = editedField();
  if (editing) { redrawAfter(editing); return; }
  cardRefresh.running = true;
  try {
    const data = await api(`/conversations/${cur.id}/timeline`);
    if (state.current !== cur) return;  // another conversation was opened meanwhile
    const ids = (list) => list.map((c) => c.id).join(",");
    const moved = ids(data.conversations) !== ids(cur.data.conversations);
    Object.assign(cur.data, { customer: data.customer, card: data.card, conversation: data.conversation, messages: data.messages });
    cur.conversation = data.conversation;
    if (moved) {
      Object.assign(cur.data, { conversations: data.conversations, messages: data.messages });
      const messages = $("messages");
      if (messages) messages.replaceWith(renderTimeline());
    }
    const who = threadEl.querySelector(".thread-head .who");
    if (who) who.replaceChildren(backToList(), el("strong", { class: "customer-name" }, data.customer.name || "—"), channelIcons(data.customer), toCard());
    // the agent may have started typing on the card while the timeline was fetched: their
    // field stays, the card is redrawn when they leave it
    const card = threadEl.querySelector("aside.card");
    const typing = editedField();
    if (typing) redrawAfter(typing);
    else if (card) card.replaceWith(renderCard());
  } catch (e) {
    /* no longer visible, or offline: the next event or opening it again redraws */
  } finally {
    cardRefresh.running = false;
    if (cardRefresh.again) { cardRefresh.again = false; refreshCard(); }
  }
}
