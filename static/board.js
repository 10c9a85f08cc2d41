// The sales board: deals by pipeline stage, moved by HTML5 drag and drop, by the arrow keys on
// a focused card or by its stage select (touch); optimistic, rolled back when the API refuses;
// live through `deal.updated` on Socket.IO /agents. An owner filter; amounts in the agent's
// language; each card links to the customer's card and conversation. Plain
// JavaScript module, no build step; deal and customer text only ever enters as text nodes.
import { T, api, el, toast } from "./common.js";

const boardEl = document.getElementById("board");

const state = { stages: [], stagesDefined: false, deals: new Map(), agents: new Map(),
                seen: new Set(), pending: new Map(), socket: null, owner: "", focus: null };
window.threadline = { state };

function errorText(e) {
  const fields = e.detail && e.detail.json;
  if (fields) return Object.entries(fields).map(([k, v]) => `${k}: ${[].concat(v).join(", ")}`).join("; ");
  return e.message || T.error;
}

// amounts and dates in the agent's language (the page's lang), not the browser's
const LANG = document.documentElement.lang || undefined;
const money = (amount, currency) => {
  if (amount === null || amount === undefined || amount === "") return "";
  const n = Number(amount);
  if (!Number.isFinite(n)) return `${amount} ${currency || ""}`.trim();
  try {
    if (currency) return new Intl.NumberFormat(LANG, { style: "currency", currency: currency.toUpperCase() }).format(n);
  } catch (e) { /* not an ISO currency: the number and the code */ }
  const text = n.toLocaleString(LANG, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return currency ? `${text} ${currency}` : text;
};
const day = (iso) => (iso ? new Date(`${iso}T00:00:00`).toLocaleDateString(LANG, { day: "numeric", month: "short", year: "numeric" }) : "");

// --- rendering ----------------------------------------------------------------------------

function columns() {
  const cols = state.stages.map((s) => ({ ...s }));
  const known = new Set(cols.map((c) => c.key));
  for (const deal of state.deals.values()) if (!known.has(deal.stage)) {  // a stage in use, not defined
    known.add(deal.stage);
    cols.push({ key: deal.stage, name: deal.stage, outcome: "open", extra: true });
  }
  return cols;
}

function totals(deals) {
  const sums = new Map();
  for (const d of deals) if (d.amount !== null && d.amount !== undefined)
    sums.set(d.currency || "", (sums.get(d.currency || "") || 0) + Number(d.amount));
  return [...sums.entries()].map(([currency, sum]) => money(sum.toFixed(2), currency)).join(" · ");
}

function renderCard(deal) {
  const owner = deal.owner_id ? (state.agents.get(deal.owner_id) || `#${deal.owner_id}`) : T.no_owner;
  const cols = columns();
  const conv = deal.conversation_id ? `/conversations/${deal.conversation_id}` : null;
  const card = el("article", { class: `deal${state.pending.has(deal.id) ? " pending" : ""}`, draggable: true,
                               "data-deal": deal.id, "data-stage": deal.stage, tabindex: "0",
                               "aria-label": deal.title, title: T.move_hint },
    el("div", { class: "deal-title" }, deal.title),
    el("div", { class: "deal-customer" }, conv
      ? el("a", { href: `${conv}#card`, class: "deal-customer-link", title: T.open_customer }, deal.customer_name || `#${deal.customer_id}`)
      : (deal.customer_name || `#${deal.customer_id}`)),
    el("div", { class: "deal-meta" },
      el("span", { class: "deal-amount" }, money(deal.amount, deal.currency)),
      el("span", { class: "deal-owner" }, owner)),
    deal.expected_close ? el("div", { class: "deal-close" }, `${T.closes} ${day(deal.expected_close)}`) : null,
    el("div", { class: "deal-foot" },
      el("select", { class: "deal-stage", "aria-label": `${T.stage}: ${deal.title}`, onchange: (e) => move(deal.id, e.target.value, true) },
        cols.map((c) => el("option", { value: c.key, selected: c.key === deal.stage }, c.name))),
      conv ? el("a", { href: conv, class: "deal-conversation" }, `${T.open_conversation} →`) : null));
  // keyboard: ← → move the focused card to the previous / next stage, and it keeps the focus
  card.addEventListener("keydown", (e) => {
    if (e.target !== card || !["ArrowLeft", "ArrowRight"].includes(e.key)) return;
    e.preventDefault();
    const at = cols.findIndex((c) => c.key === deal.stage);
    const to = cols[at + (e.key === "ArrowRight" ? 1 : -1)];
    if (to) move(deal.id, to.key, true);
  });
  card.addEventListener("dragstart", (e) => {
    e.dataTransfer.setData("text/plain", String(deal.id));
    e.dataTransfer.effectAllowed = "move";
    card.classList.add("dragging");
  });
  card.addEventListener("dragend", () => card.classList.remove("dragging"));
  return card;
}

function visible(deal) {
  if (!state.owner) return true;
  return state.owner === "none" ? !deal.owner_id : String(deal.owner_id) === state.owner;
}

function renderFilter() {
  const holder = document.getElementById("board-filter");
  const current = holder.querySelector("select");
  const options = [el("option", { value: "" }, T.all_owners), el("option", { value: "none" }, T.no_owner),
    [...state.agents.entries()].map(([id, name]) => el("option", { value: String(id) }, name))];
  if (current && current.options.length === state.agents.size + 2) return;
  holder.replaceChildren(el("label", { for: "owner-filter" }, T.owner),
    el("select", { id: "owner-filter", onchange: (e) => { state.owner = e.target.value; render(); } }, options));
  holder.querySelector("select").value = state.owner;
}

function render() {
  renderFilter();
  const byStage = new Map();
  for (const deal of [...state.deals.values()].filter(visible)) {
    if (!byStage.has(deal.stage)) byStage.set(deal.stage, []);
    byStage.get(deal.stage).push(deal);
  }
  const cols = columns().map((stage) => {
    const deals = byStage.get(stage.key) || [];
    const list = el("div", { class: "cards" }, deals.map(renderCard));
    const col = el("section", { class: `column outcome-${stage.outcome}${stage.extra ? " extra" : ""}`,
                                "data-stage": stage.key, "aria-label": stage.name },
      el("header", { class: "column-head" },
        el("strong", {}, stage.name),
        el("span", { class: "count" }, String(deals.length)),
        el("div", { class: "total", title: T.total }, totals(deals))),
      list);
    col.addEventListener("dragover", (e) => { e.preventDefault(); e.dataTransfer.dropEffect = "move"; col.classList.add("over"); });
    col.addEventListener("dragleave", (e) => { if (!col.contains(e.relatedTarget)) col.classList.remove("over"); });
    col.addEventListener("drop", (e) => {
      e.preventDefault();
      col.classList.remove("over");
      const id = Number(e.dataTransfer.getData("text/plain"));
      if (id) move(id, stage.key);
    });
    return col;
  });
  boardEl.replaceChildren(...cols);
  if (state.focus) {  // the card moved by keyboard keeps the focus in its new column
    const card = boardEl.querySelector(`[data-deal="${state.focus}"]`);
    if (card) card.focus();
  }
}

// --- moving --------------------------------------------------------------------------------

async function move(id, stage, keepFocus = false) {
  const deal = state.deals.get(id);
  if (!deal || deal.stage === stage) return;
  state.focus = keepFocus ? id : null;
  const before = { ...deal };
  deal.stage = stage;  // optimistic
  state.pending.set(id, (state.pending.get(id) || 0) + 1);
  render();
  try {
    const saved = await api(`/deals/${id}`, { method: "PATCH", body: JSON.stringify({ stage }) });
    Object.assign(deal, saved);
    if (keepFocus) {  // moved by keyboard or the select: said aloud (the toast is a live region)
      const name = (columns().find((c) => c.key === stage) || { name: stage }).name;
      toast(T.moved_to.replace("{title}", deal.title).replace("{stage}", name));
    }
  } catch (e) {
    Object.assign(deal, before);  // roll back
    toast(errorText(e));
  } finally {
    const left = (state.pending.get(id) || 1) - 1;
    if (left > 0) state.pending.set(id, left); else state.pending.delete(id);
    render();
  }
}

// --- live ----------------------------------------------------------------------------------

let reloadTimer = null;
function applyDeal(event) {
  if (event.id && state.seen.has(event.id)) return;  // the same event through two rooms
  if (event.id) state.seen.add(event.id);
  const data = event.data;
  const deal = state.deals.get(data.id);
  if (!deal) {  // a deal new to this board: load it with its customer's name
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => load().catch(() => {}), 200);
    return;
  }
  if (state.pending.has(data.id)) return;  // our own move in flight: its answer decides
  Object.assign(deal, data);
  render();
}

async function load() {
  const data = await api("/board/data");
  state.stages = data.stages;
  state.stagesDefined = data.stages_defined;
  state.agents = new Map(data.agents.map((a) => [a.id, a.name]));
  const pending = new Map([...state.pending.keys()].map((id) => [id, state.deals.get(id)]));
  state.deals = new Map(data.deals.map((d) => [d.id, d]));
  for (const [id, deal] of pending) if (deal && state.deals.has(id)) state.deals.set(id, deal);
  render();
}

function connect() {
  const socket = io("/agents", { transports: ["websocket", "polling"] });
  state.socket = socket;
  window.threadline.socket = socket;
  socket.on("deal.updated", applyDeal);
  socket.on("connect", async () => {
    try { await load(); } catch (e) { /* the next connect tries again */ }  // catch up
    document.body.dataset.live = "yes";
    document.getElementById("live").title = T.live;
  });
  socket.on("disconnect", () => {
    document.body.dataset.live = "no";
    document.getElementById("live").title = T.offline;
  });
}

await load();
document.body.dataset.ready = "yes";
connect();
