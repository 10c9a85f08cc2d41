// The Campaigns page: a segment builder whose count updates as you edit (POST
// /api/v1/segments/preview), the new campaign form, and every campaign with a progress bar per
// channel, kept live by Socket.IO `campaign.progress` on /agents.
import { T, api, el, toast } from "./common.js";

const $ = (id) => document.getElementById(id);
const segmentForm = $("segment-form");
const campaignForm = $("campaign-form");
const list = $("campaign-list");
const cards = new Map();
const num = (n) => Number(n || 0).toLocaleString(document.documentElement.lang);

function fieldErrors(error) {
  const fields = (error.detail && error.detail.json) || {};
  const parts = Object.entries(fields).map(([k, v]) => `${k}: ${[].concat(v).join(", ")}`);
  return parts.length ? parts.join("; ") : error.message;
}

// --- the segment builder ---------------------------------------------------------------

function buildFilter() {
  const f = segmentForm.elements;
  const filter = {};
  const tags = f.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.length) filter.tags = { any: tags };
  const source = {};
  if (f.utm_source.value.trim()) source.utm_source = f.utm_source.value.trim();
  if (f.utm_campaign.value.trim()) source.utm_campaign = f.utm_campaign.value.trim();
  if (Object.keys(source).length) filter.source = source;
  const orders = {};
  if (f.ordered_within.value !== "") orders.last_within_days = Number(f.ordered_within.value);
  if (f.orders_min.value !== "") orders.count_min = Number(f.orders_min.value);
  if (f.items_contain.value.trim()) orders.items_contain = f.items_contain.value.trim();
  if (Object.keys(orders).length) filter.orders = orders;
  if (f.wrote_within.value !== "") filter.last_inbound = { within_days: Number(f.wrote_within.value) };
  if (f.contacted_before.value !== "") filter.last_outbound = { before_days: Number(f.contacted_before.value) };
  if (f.consent.value) filter.consent = { not_opted_out: [Number(f.consent.value)] };
  if (f.language.value) filter.language = [f.language.value];
  if (f.handle.value) filter.handles = { any: [f.handle.value] };
  if (f.team.value) filter.team_id = [Number(f.team.value)];
  if (f.exclude_opted_out.checked) filter.opted_out = false;
  return filter;
}

let previewTimer = null;
let previewSeq = 0;
function schedulePreview() {
  clearTimeout(previewTimer);
  $("segment-count").textContent = T.counting;
  previewTimer = setTimeout(preview, 250);
}

async function preview() {
  const seq = ++previewSeq;
  const error = $("segment-error");
  try {
    const body = await api("/segments/preview", { method: "POST", body: JSON.stringify({ filter: buildFilter() }) });
    if (seq !== previewSeq) return;
    $("segment-count").textContent = num(body.count);
    error.hidden = true;
  } catch (err) {
    if (seq !== previewSeq) return;
    $("segment-count").textContent = "—";
    error.textContent = fieldErrors(err);
    error.hidden = false;
  }
}

segmentForm.addEventListener("input", schedulePreview);
segmentForm.addEventListener("change", schedulePreview);
segmentForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const segment = await api("/segments", { method: "POST", body: JSON.stringify({
      name: segmentForm.elements.name.value, filter: buildFilter() }) });
    toast(`${T.saved}: ${segment.name}`);
    await loadSegments(segment.id);
  } catch (err) {
    $("segment-error").textContent = `${T.error}: ${fieldErrors(err)}`;
    $("segment-error").hidden = false;
  }
});

async function loadSegments(selected) {
  const body = await api("/segments");
  const select = campaignForm.elements.segment_id;
  select.replaceChildren(...body.items.map((s) =>
    el("option", { value: String(s.id), selected: s.id === selected }, `${s.name} (${num(s.count)})`)));
  if (!body.items.length) select.append(el("option", { value: "", disabled: true, selected: true }, T.no_segments));
}

// --- the campaign form -----------------------------------------------------------------

campaignForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = campaignForm.elements;
  const go = event.submitter && event.submitter.name === "go";
  const variants = {};
  if (f.subject.value.trim()) variants.email = { subject: f.subject.value.trim() };
  if (f.wa_template.value.trim()) variants.whatsapp = { template: { name: f.wa_template.value.trim(), language: document.documentElement.lang || "en" } };
  const error = $("campaign-error");
  try {
    const campaign = await api("/campaigns", { method: "POST", body: JSON.stringify({
      name: f.name.value, segment_id: Number(f.segment_id.value), text: f.text.value, variants }) });
    render(campaign);
    if (go) render(await api(`/campaigns/${campaign.id}/start`, { method: "POST" }));
    error.hidden = true;
    campaignForm.reset();
    await loadSegments();
  } catch (err) {
    error.textContent = `${T.error}: ${fieldErrors(err)}`;
    error.hidden = false;
  }
});

// --- the list ----------------------------------------------------------------------------

const ACTIONS = {
  draft: ["start", "cancel"], scheduled: ["pause", "cancel"], running: ["pause", "cancel"],
  paused: ["resume", "cancel"], done: [], cancelled: [],
};

async function act(campaign, action) {
  if (action === "cancel" && !window.confirm(T.cancel_confirm)) return;
  try {
    render(await api(`/campaigns/${campaign.id}/${action}`, { method: "POST" }));
  } catch (err) {
    toast(`${T.error}: ${fieldErrors(err)}`, 8000);
  }
}

function channelRow(c) {
  const pct = Math.round((c.progress || 0) * 100);
  return el("tr", { "data-channel": String(c.channel_id) },
    el("th", { scope: "row" }, c.channel_name || c.channel_kind),
    el("td", { class: "bar-cell" },
      el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
        "aria-valuenow": String(pct), "aria-label": `${c.channel_name} ${T.progress}` },
      el("span", { style: `width:${pct}%` })), el("span", { class: "pct" }, `${pct}%`)),
    ...["queued", "sent", "delivered", "read", "failed", "replied", "opted_out"].map((k) =>
      el("td", { "data-count": k }, num(c[k]))));
}

function render(campaign) {
  const old = cards.get(campaign.id);
  const skipped = Object.entries(campaign.skipped || {});
  const card = el("article", { class: `campaign status-${campaign.status}`, "data-id": String(campaign.id) },
    el("header", {},
      el("h3", {}, campaign.name),
      el("span", { class: "status", "data-status": campaign.status }, T[`status_${campaign.status}`] || campaign.status),
      campaign.segment_name ? el("span", { class: "muted" }, `${T.segment}: ${campaign.segment_name}`) : null,
      el("span", { class: "overall" }, `${T.progress}: ${Math.round((campaign.progress || 0) * 100)}%`),
      campaign.ordered ? el("span", { class: "ordered" }, `${T.ordered}: ${num(campaign.ordered)}`) : null,
      // only the campaign's creator or an admin may start, pause or cancel it (the API: 403)
      el("span", { class: "buttons" }, (campaign.can_manage ? ACTIONS[campaign.status] || [] : []).map((action) =>
        el("button", { type: "button", class: action === "cancel" ? "ghost danger" : "ghost", "data-action": action,
          onclick: () => act(campaign, action) }, T[action])))),
    el("p", { class: "text" }, campaign.text),
    campaign.channels && campaign.channels.length ? el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": `${campaign.name}: ${T.per_channel}` }, el("table", { class: "report" },
      el("caption", { class: "sr-only" }, T.per_channel),
      el("thead", {}, el("tr", {}, [T.channel, T.progress, T.queued, T.sent, T.delivered, T.read, T.failed, T.replied, T.opted_out]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, campaign.channels.map(channelRow)))) : null,
    skipped.length ? el("p", { class: "muted skipped" }, `${T.skipped}: `,
      skipped.map(([why, n]) => `${T[`skipped_${why}`] || why} — ${num(n)}`).join(", ")) : null);
  if (old) old.replaceWith(card);
  else list.prepend(card);
  cards.set(campaign.id, card);
  card.campaign = campaign;   // a progress event (counts only) redraws from this
  const empty = list.querySelector(".empty");
  if (empty) empty.remove();
}

async function loadCampaigns() {
  const body = await api("/campaigns");
  list.replaceChildren();
  cards.clear();
  if (!body.items.length) list.append(el("p", { class: "empty" }, T.no_campaigns));
  for (const c of body.items.slice().reverse()) render(c);
}

// live progress: the event carries the counts; the card's text and name come from the API
function connect() {
  if (typeof io === "undefined") return;
  const socket = io("/agents", { transports: ["websocket", "polling"] });
  socket.on("campaign.progress", async (event) => {
    const data = event.data || {};
    document.body.dataset.progressEvents = String(Number(document.body.dataset.progressEvents || 0) + 1);
    const card = cards.get(data.id);
    // a campaign this agent may not see answers 404: no card
    if (!card) return api(`/campaigns/${data.id}`).then(render).catch(() => {});
    render({ ...(card.campaign || await api(`/campaigns/${data.id}`)), ...data });
  });
  socket.on("connect", () => loadCampaigns().catch(() => {}));
}

// a missed event is caught up: campaigns still sending are read again every few seconds
setInterval(() => {
  for (const [id, card] of cards) {
    if (card.campaign && ["running", "scheduled"].includes(card.campaign.status))
      api(`/campaigns/${id}`).then(render).catch(() => {});
  }
}, 5000);

await Promise.all([loadSegments(), loadCampaigns()]);
await preview();
connect();
document.body.dataset.campaigns = "ready";
