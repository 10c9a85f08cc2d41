// The Reports page: fetches /api/v1/reports/<name> for the chosen period and filters and
// draws each figure as a chart (uPlot, vendored) with its numbers in a table beside it.
import { T, api, el } from "./common.js";
import uPlot from "./vendor/uPlot.esm.js";

const meta = JSON.parse(document.getElementById("report-meta").textContent);
const form = document.getElementById("report-filters");
const $ = (id) => document.getElementById(id);
const charts = [];
const channelNames = new Map(meta.channels.map((c) => [c.id, c.name]));

function shiftDay(iso, days) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

function setPeriod() {
  const period = form.period.value;
  const custom = period === "custom";
  form.from.disabled = form.to.disabled = !custom;
  if (!custom) {
    form.to.value = meta.today;
    form.from.value = shiftDay(meta.today, 1 - Number(period));
  }
}

function query() {
  const params = new URLSearchParams();
  for (const name of ["from", "to", "channel_id", "team_id", "agent_id", "label", "hours"]) {
    const value = form[name].value;
    if (value) params.set(name, value);
  }
  return params.toString();
}

const num = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString(document.documentElement.lang));
const pct = (x) => `${Math.round((x || 0) * 1000) / 10}%`;

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds} ${T.sec}`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} ${T.min}`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} ${T.hour}${minutes % 60 ? ` ${minutes % 60} ${T.min}` : ""}`;
  const days = Math.floor(hours / 24);
  return `${days} ${T.day}${hours % 24 ? ` ${hours % 24} ${T.hour}` : ""}`;
}

function table(caption, columns, rows, foot) {
  if (!rows.length) return el("p", { class: "empty" }, T.none);
  return el("table", { class: "report" },
    caption ? el("caption", { class: "sr-only" }, caption) : null,
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c.label)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, columns.map((c, i) =>
      el(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : {}, c.cell(r)))))),
    foot ? el("tfoot", {}, el("tr", {}, columns.map((c, i) => el("td", {}, i === 0 ? T.total : c.cell(foot))))) : null);
}

function bar(value, max) {
  const width = max ? Math.max(1, Math.round((value / max) * 80)) : 0;
  return [el("span", { class: "bar", style: `width:${width}px` }), num(value)];
}

function put(id, node) { $(id).replaceChildren(node); }

function chart(id, opts, data) {
  const box = $(id);
  box.replaceChildren();
  const width = Math.max(240, box.clientWidth || 600);
  const plot = new uPlot({ width, height: 240, ...opts }, data, box);
  charts.push([plot, box]);
}

function volume(r) {
  const t = r.totals;
  put("volume-totals", el("div", { class: "totals" }, ["messages_in", "messages_out", "conversations", "customers", "new_customers", "returning_customers"]
    .map((k) => el("span", {}, el("b", {}, num(t[k])), T[k]))));
  const days = r.series;
  chart("chart-daily", {
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    series: [{ label: T.date }, { label: T.messages_in, stroke: "#2f5bea", width: 2 },
      { label: T.messages_out, stroke: "#16a34a", width: 2 },
      { label: T.conversations, stroke: "#f59e0b", width: 2 }],
    axes: [{}, { size: 50 }],
  }, [days.map((d) => Date.parse(`${d.date}T00:00:00Z`) / 1000), days.map((d) => d.messages_in),
    days.map((d) => d.messages_out), days.map((d) => d.conversations)]);
  const daily = table(T.per_day, [
    { label: T.date, cell: (d) => d.date }, { label: T.messages_in, cell: (d) => num(d.messages_in) },
    { label: T.messages_out, cell: (d) => num(d.messages_out) }, { label: T.conversations, cell: (d) => num(d.conversations) },
    { label: T.customers, cell: (d) => num(d.customers) }], days.slice().reverse());
  $("table-daily").classList.add("scroll");
  put("table-daily", daily);
  const max = Math.max(0, ...r.items.map((i) => i.messages_in + i.messages_out));
  put("table-channels", table(T.per_channel, [
    { label: T.channel, cell: (i) => i.channel_name || `#${i.channel_id}` },
    { label: T.messages_in, cell: (i) => (i.total ? num(i.messages_in) : bar(i.messages_in, max)) },
    { label: T.messages_out, cell: (i) => num(i.messages_out) },
    { label: T.conversations, cell: (i) => num(i.conversations) },
    { label: T.customers, cell: (i) => num(i.customers) },
    { label: T.new_customers, cell: (i) => num(i.new_customers) },
    { label: T.returning_customers, cell: (i) => num(i.returning_customers) }], r.items, { ...t, total: true }));
  const names = T.weekdays.split(" ");
  const peak = Math.max(1, ...r.heatmap.flat());
  put("table-heatmap", el("table", { class: "report heat" },
    el("caption", { class: "sr-only" }, T.heatmap),
    el("thead", {}, el("tr", {}, el("th", {}, ""), [...Array(24).keys()].map((h) => el("th", { scope: "col" }, String(h))))),
    el("tbody", {}, r.heatmap.map((row, d) => el("tr", {}, el("th", { scope: "row" }, names[d] || String(d)),
      row.map((n) => el("td", { class: n ? "" : "zero",
        style: n ? `background: rgba(47, 91, 234, ${(0.12 + 0.88 * n / peak).toFixed(2)}); color: ${n / peak > 0.5 ? "#fff" : "#1d2330"}` : "" }, String(n))))))));
}

function speed(r) {
  $("speed-clock").textContent = r.clock === "business" ? T.business_note : T.calendar_note;
  const rows = r.items.filter((i) => i.first_response.count || i.next_response.count || i.resolution.count);
  const cell = (key, stat) => (i) => (stat === "count" ? num(i[key].count) : duration(i[key][stat]));
  put("table-speed", table(T.speed, [
    { label: T.channel, cell: (i) => (i.total ? T.total : i.channel_name || `#${i.channel_id}`) },
    { label: `${T.first_response}: ${T.median}`, cell: cell("first_response", "median") },
    { label: T.p90, cell: cell("first_response", "p90") },
    { label: `${T.next_response}: ${T.median}`, cell: cell("next_response", "median") },
    { label: `${T.resolution}: ${T.median}`, cell: cell("resolution", "median") },
    { label: T.p90, cell: cell("resolution", "p90") },
    { label: T.count, cell: cell("first_response", "count") }], rows, { ...r.totals, total: true }));
  const labels = rows.map((i) => i.channel_name || `#${i.channel_id}`);
  const minutes = (key, stat) => rows.map((i) => (i[key][stat] === null ? null : Math.round(i[key][stat] / 6) / 10));
  chart("chart-speed", {
    series: [{ label: T.channel, value: (u, v) => (v === null || labels[v] === undefined ? "—" : labels[v]) }, { label: `${T.first_response}, ${T.median} (${T.min})`, fill: "#2f5bea88", stroke: "#2f5bea", paths: uPlot.paths.bars({ size: [0.35, 60], align: -1 }), points: { show: false } },
      { label: `${T.resolution}, ${T.median} (${T.min})`, fill: "#16a34a88", stroke: "#16a34a", paths: uPlot.paths.bars({ size: [0.35, 60], align: 1 }), points: { show: false } }],
    scales: { x: { time: false, range: [-0.6, Math.max(0.6, labels.length - 0.4)] },
      y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
    axes: [{ values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) && labels[t] !== undefined ? labels[t] : "")), splits: () => labels.map((_, i) => i) },
      { size: 50 }],
  }, [labels.map((_, i) => i), minutes("first_response", "median"), minutes("resolution", "median")]);
}

function slaTable(caption, first, rows) {
  const cells = (kind) => [
    { label: `${T[kind]}: ${T.sla_met}`, cell: (i) => num(i[kind].met) },
    { label: T.sla_breached, cell: (i) => num(i[kind].breached) },
    { label: T.sla_pending, cell: (i) => num(i[kind].pending) },
    { label: T.met_share, cell: (i) => (i[kind].met_share === null ? "—" : pct(i[kind].met_share)) }];
  return table(caption, [first, ...cells("first_response"), ...cells("resolution")], rows);
}

function sla(r) {
  const t = r.sla;
  put("sla-totals", el("div", { class: "totals" }, ["first_response", "resolution"].map((kind) =>
    el("span", {}, el("b", {}, t[kind].met_share === null ? "—" : pct(t[kind].met_share)),
      `${T[kind]}: ${T.met_share} (${num(t[kind].met)} / ${num(t[kind].met + t[kind].breached)})`))));
  const rows = r.sla_by_channel.filter((i) => i.first_response.met + i.first_response.breached + i.first_response.pending
    + i.resolution.met + i.resolution.breached + i.resolution.pending);
  put("table-sla", slaTable(T.sla_by_channel, { label: T.channel, cell: (i) => i.channel_name || `#${i.channel_id}` }, rows));
  put("table-sla-teams", slaTable(T.sla_by_team, { label: T.team, cell: (i) => i.name || (i.team_id ? `#${i.team_id}` : T.no_team) }, r.sla_by_team));
  put("table-sla-agents", slaTable(T.sla_by_agent, { label: T.agent, cell: (i) => i.name || (i.agent_id ? `#${i.agent_id}` : T.unassigned) }, r.sla_by_agent));
  const labels = rows.map((i) => i.channel_name || `#${i.channel_id}`);
  const share = (kind) => rows.map((i) => (i[kind].met_share === null ? null : Math.round(i[kind].met_share * 1000) / 10));
  chart("chart-sla", {
    series: [{ label: T.channel, value: (u, v) => (v === null || labels[v] === undefined ? "—" : labels[v]) },
      { label: `${T.first_response}: ${T.met_share}, %`, fill: "#16a34a88", stroke: "#16a34a", paths: uPlot.paths.bars({ size: [0.35, 60], align: -1 }), points: { show: false } },
      { label: `${T.resolution}: ${T.met_share}, %`, fill: "#2f5bea88", stroke: "#2f5bea", paths: uPlot.paths.bars({ size: [0.35, 60], align: 1 }), points: { show: false } }],
    scales: { x: { time: false, range: [-0.6, Math.max(0.6, labels.length - 0.4)] }, y: { range: [0, 100] } },
    axes: [{ values: (u, ticks) => ticks.map((v) => (Number.isInteger(v) && labels[v] !== undefined ? labels[v] : "")), splits: () => labels.map((_, i) => i) },
      { size: 50 }],
  }, [labels.map((_, i) => i), share("first_response"), share("resolution")]);
}

function agents(r) {
  put("table-agents", table(T.agents, [
    { label: T.agent, cell: (a) => a.name || `#${a.agent_id}` }, { label: T.handled, cell: (a) => num(a.handled) },
    { label: T.replies, cell: (a) => num(a.replies) }, { label: T.canned_replies, cell: (a) => num(a.canned_replies) },
    { label: T.median_first_response, cell: (a) => duration(a.median_first_response) },
    { label: T.resolved, cell: (a) => num(a.resolved) }, { label: T.reopened, cell: (a) => num(a.reopened) }], r.items));
}

function canned(r) {
  put("canned-totals", el("div", { class: "totals" }, el("span", {}, el("b", {}, num(r.totals.replies)), T.replies),
    el("span", {}, el("b", {}, num(r.totals.canned_replies)), T.canned_replies), el("span", {}, el("b", {}, pct(r.totals.share)), T.share)));
  const max = Math.max(0, ...r.items.map((i) => i.uses));
  put("table-canned", table(T.canned, [
    { label: T.shortcut, cell: (i) => `/${i.shortcut}` }, { label: T.uses, cell: (i) => bar(i.uses, max) },
    { label: T.agents, cell: (i) => num(i.agents) }, { label: T.share, cell: (i) => pct(i.share) }], r.items));
  put("table-canned-agents", table(T.by_agent, [
    { label: T.agent, cell: (a) => a.name || `#${a.agent_id}` }, { label: T.replies, cell: (a) => num(a.replies) },
    { label: T.canned_replies, cell: (a) => num(a.canned_replies) }, { label: T.share, cell: (a) => pct(a.share) }], r.by_agent));
}

function sources(r) {
  const text = (v) => v || T.unknown;
  // source columns no row fills are left out
  const keys = ["source_channel", "utm_source", "utm_medium", "utm_campaign", "referrer", "deep_link"]
    .filter((k, n) => n === 0 || r.items.some((i) => i[k]));
  put("table-sources", table(T.sources, [
    ...keys.map((k) => ({ label: T[k], cell: (i) => text(i[k]) })),
    { label: T.conversations, cell: (i) => num(i.conversations) }, { label: T.customers, cell: (i) => num(i.customers) },
    { label: T.buyers, cell: (i) => num(i.buyers) }, { label: T.orders, cell: (i) => num(i.orders) },
    { label: T.revenue, cell: (i) => Object.entries(i.revenue).map(([c, v]) => `${num(v)} ${c}`).join(", ") || "—" }], r.items));
}

function bot(r) {
  put("table-bot", table(T.bot, [
    { label: T.channel, cell: (i) => i.channel_name || channelNames.get(i.channel_id) || `#${i.channel_id}` },
    { label: T.automated_replies, cell: (i) => num(i.automated_replies) },
    { label: T.bot_answered, cell: (i) => num(i.answered || 0) },
    { label: T.bot_resolved, cell: (i) => num(i.bot_resolved || 0) },
    { label: T.bot_handed_off, cell: (i) => num(i.handed_off || 0) }], r.items));
}

function csat(r) {
  const t = r.totals;
  const avg = (x) => (x === null || x === undefined ? "—" : Number(x).toLocaleString(document.documentElement.lang, { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
  const rate = (x) => (x === null || x === undefined ? "—" : pct(x));
  put("csat-totals", el("div", { class: "totals" },
    el("span", { "data-figure": "average" }, el("b", {}, avg(t.average)), T.csat_average),
    el("span", { "data-figure": "answered" }, el("b", {}, num(t.answered)), T.csat_answered),
    el("span", { "data-figure": "asked" }, el("b", {}, num(t.asked)), T.csat_asked),
    el("span", { "data-figure": "response_rate" }, el("b", {}, rate(t.response_rate)), T.csat_rate)));
  const scores = [1, 2, 3, 4, 5];
  chart("chart-csat", {
    series: [{ label: T.csat_score }, { label: T.csat_answers, fill: "#d4a01799", stroke: "#b8860b", paths: uPlot.paths.bars({ size: [0.6, 60] }), points: { show: false } }],
    scales: { x: { time: false, range: [0.4, 5.6] }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
    axes: [{ values: (u, ticks) => ticks.map((v) => (Number.isInteger(v) && v >= 1 && v <= 5 ? `${v} ★` : "")), splits: () => scores },
      { size: 50 }],
  }, [scores, scores.map((n) => t.distribution[String(n)] || 0)]);
  const rows = r.items.filter((i) => i.group !== "total");
  put("table-csat", table(T.csat, [
    { label: `${T.channel} / ${T.agent}`, cell: (i) => (i.group === "channel" ? `${T.channel}: ${i.name || channelNames.get(i.channel_id) || `#${i.channel_id}`}` : `${T.agent}: ${i.name || T.unknown}`) },
    { label: T.csat_average, cell: (i) => avg(i.average) },
    { label: T.csat_answered, cell: (i) => num(i.answered) },
    { label: T.csat_asked, cell: (i) => num(i.asked) },
    { label: T.csat_rate, cell: (i) => rate(i.response_rate) }], rows, t.asked ? t : null));
}

const RENDER = { volume, "response-times": (r) => { speed(r); sla(r); }, agents, "canned-usage": canned, sources, csat, bot };

let loading = 0;  // a newer request wins: an older answer arriving late is dropped

async function load() {
  const mine = ++loading;
  const q = query();
  const error = $("report-error");
  error.hidden = true;
  for (const a of document.querySelectorAll("a.csv")) {
    a.href = `/api/v1/reports/${a.dataset.report}?${q}${q ? "&" : ""}format=csv${a.dataset.table ? `&table=${a.dataset.table}` : ""}`;
  }
  document.body.dataset.reports = "loading";
  try {
    const bodies = await Promise.all(Object.keys(RENDER).map((name) => api(`/reports/${name}?${q}`)));
    if (mine !== loading) return;
    charts.splice(0).forEach(([plot]) => plot.destroy());
    Object.values(RENDER).forEach((render, i) => render(bodies[i]));
  } catch (e) {
    if (mine !== loading) return;
    error.textContent = `${T.error}: ${e.message}`;
    error.hidden = false;
  }
  document.body.dataset.reports = "ready";
}

form.period.addEventListener("change", () => { setPeriod(); if (form.period.value !== "custom") load(); });
form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => charts.forEach(([plot, box]) => plot.setSize({ width: Math.max(240, box.clientWidth), height: 240 })), 150);
});
setPeriod();
load();
