// Small helpers the inbox's modules share: string templates, times, channel icons, the error
// toast, search highlighting. Text only ever enters the page as text nodes.
import { T, el, toast } from "../common.js";
import { state } from "./state.js";

// dates, times and numbers in the agent's chosen language (the page's lang), not the browser's
export const LOCALE = document.documentElement.lang || "en";
export const fmt = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");
export function time(iso) {
  if (!iso) return "";
  const d = new Date(iso), now = new Date();
  return d.toDateString() === now.toDateString()
    ? d.toLocaleTimeString(LOCALE, { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString(LOCALE, { day: "numeric", month: "short",
      ...(d.getFullYear() === now.getFullYear() ? {} : { year: "numeric" }) });
}
export const fullTime = (iso) => (iso ? new Date(iso).toLocaleString(LOCALE, { dateStyle: "medium", timeStyle: "short" }) : "");
// an amount with its currency in the agent's language: 9 150,50 EUR (pl, ru), 9,150.50 EUR (en)
export function money(amount, currency) {
  if (amount === null || amount === undefined || amount === "") return "";
  const n = Number(amount);
  const text = Number.isFinite(n)
    ? n.toLocaleString(LOCALE, { minimumFractionDigits: Number.isInteger(n) ? 0 : 2, maximumFractionDigits: 2 }) : String(amount);
  return currency ? `${text} ${currency}` : text;
}
export const ICONS = { email: "✉", telegram: "✈", whatsapp: "◔", phone: "☎", webchat: "✦", site_user: "✦" };

export function showError(error) { toast(`${T.error}: ${error.message}`); }

export function highlight(text, terms) {
  // split on the search terms and wrap matches in <mark> elements (text nodes only)
  if (!terms || !terms.length) return [text];
  const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(`(${escaped.join("|")})`, "giu");
  return text.split(re).map((part, i) => (i % 2 ? el("mark", {}, part) : part));
}

export function channelIcons(customer) {
  const kinds = [...new Set((customer.identities || []).map((i) => (i.kind === "site_user" ? "webchat" : i.kind)))];
  return el("span", { class: "icons" }, kinds.map((k) => el("span", { class: `icon ${k}`, title: k }, ICONS[k] || "•")));
}

export function channelBadge(channelId) {
  const ch = state.channels.get(channelId);
  if (!ch) return channelId ? el("span", { class: "badge" }, `#${channelId}`) : null;
  return el("span", { class: `badge ${ch.kind}`, title: ch.name }, `${ICONS[ch.kind] || ""} ${ch.name}`);
}
