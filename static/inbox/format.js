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
export const ICONS = { email: "✉", telegram: "✈", whatsapp: "◔", phone: "☎", webchat: "✦", site_user: "✦" };

// what went wrong, said for a person: no "Failed to fetch", no bare status codes
export function humanError(error) {
  const message = (error && error.message) || "";
  if (error instanceof TypeError || /failed to fetch|networkerror|load failed/i.test(message)) return T.err_network;
  const fields = error && error.detail && (error.detail.json || error.detail.files || error.detail.query);
  if (error.status === 422 && fields) return Object.values(fields).flat().join("; ");
  if (error.status === 403) return T.err_forbidden;
  if (error.status === 404) return T.err_not_found;
  if (error.status === 413) return message;
  if (error.status >= 500) return fmt(T.err_server, { status: error.status });
  return message || T.error;
}
export function showError(error) { toast(humanError(error), 8000); }

// an amount in the agent's language: 9 150,50 € (ru), €9,150.50 (en)
export function money(amount, currency) {
  const n = Number(amount);
  if (amount === null || amount === undefined || amount === "" || Number.isNaN(n)) return "";
  try {
    return new Intl.NumberFormat(document.documentElement.lang || undefined, currency
      ? { style: "currency", currency: currency.toUpperCase() } : { minimumFractionDigits: 2 }).format(n);
  } catch (e) { return `${amount} ${currency || ""}`.trim(); }
}

// "30 Nov, 09:00" in the page's language (the agent's, not the browser's)
export function dateTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(document.documentElement.lang || [], {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

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
