// The card's handles said for a person (Telegram's @username, the site chat's pre-chat email and
// phone rather than a 32-character visitor id) and the first-touch source (channel, UTM,
// referrer, landing page, ad click ids, deep-link payload).
import { T, el } from "../common.js";
import { ICONS } from "./format.js";

// what the customer's messages tell about a handle: @username, pre-chat email and phone
export function handleDetails(identity, messages) {
  const mine = messages.filter((m) => m.direction === "in" && m.meta);
  if (identity.kind === "telegram") {
    const m = [...mine].reverse().find((x) => String(x.meta.chat_id) === identity.value && x.meta.username);
    return { label: m ? `@${m.meta.username}` : identity.value, extra: [] };
  }
  if (identity.kind === "webchat") {
    const from = mine.filter((x) => x.meta.visitor_id === identity.value);
    const email = from.map((x) => x.meta.contact_email).filter(Boolean).pop();
    const phone = from.map((x) => x.meta.contact_phone).filter(Boolean).pop();
    const id = identity.value.length > 16 ? `…${identity.value.slice(-6)}` : identity.value;
    return { label: `${T.site_visitor} ${id}`, title: identity.value,
      extra: [email && { kind: "email", value: email }, phone && { kind: "phone", value: phone }].filter(Boolean) };
  }
  return { label: identity.value, extra: [] };
}

// pre-chat handles not already on the card (as identities)
export function prechatHandles(customer, messages) {
  const known = new Set((customer.identities || []).map((i) => `${i.kind}:${i.value}`));
  const out = [];
  for (const identity of customer.identities || []) {
    for (const h of handleDetails(identity, messages).extra) {
      if (!known.has(`${h.kind}:${h.value}`)) { known.add(`${h.kind}:${h.value}`); out.push(h); }
    }
  }
  return out.map((h) => el("div", { class: "identity prechat", "data-prechat": h.kind },
    el("span", { class: "icon", "aria-hidden": "true" }, ICONS[h.kind] || "•"), ` ${h.value} `,
    el("span", { class: "via" }, `(${T.prechat})`)));
}

export function renderSource(source) {
  if (!source || typeof source !== "object") return null;
  const utm = source.utm || {};
  const ad = source.ad && typeof source.ad === "object"
    ? Object.entries(source.ad).filter(([, v]) => v && typeof v !== "object").map(([k, v]) => `${k}: ${v}`).join(", ")
    : ["gclid", "fbclid", "yclid"].filter((k) => source[k]).map((k) => `${k}: ${source[k]}`).join(", ");
  const rows = [
    ["src_channel", source.channel],
    ["src_utm_source", utm.source || source.utm_source],
    ["src_utm_medium", utm.medium || source.utm_medium],
    ["src_utm_campaign", utm.campaign || source.utm_campaign],
    ["src_referrer", source.referrer],
    ["src_landing", source.page_url || source.landing_page],
    ["src_ad", ad],
    ["src_payload", source.deep_link || source.payload],
  ].filter(([, v]) => v);
  if (!rows.length) return null;
  return el("section", { class: "source", "aria-label": T.source },
    el("h4", {}, T.source),
    el("dl", { class: "kv" }, rows.map(([key, value]) => [
      el("dt", {}, T[key]), el("dd", { "data-source": key, title: String(value) }, String(value))])));
}
