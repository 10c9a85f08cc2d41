// Canned replies in the composer: "/shortcut" suggests up to six (Tab or Enter takes the
// first), the chosen text fills in {{customer.first_name}} and the like.
import { api, el } from "../common.js";
import { onInput } from "./composer.js";
import { state } from "./state.js";

// canned replies change on the admins' page: the list is fetched again (at most every few
// seconds) when an agent starts a /shortcut, so an open page never needs a reload for them
let cannedFetchedAt = Date.now();
function refreshCanned(then) {
  if (Date.now() - cannedFetchedAt < 5000) return;
  cannedFetchedAt = Date.now();
  api("/canned-replies").then((r) => { state.canned = r.items; then(); }).catch(() => {});
}

function cannedFill(text) {
  const customer = state.current.data.customer;
  const values = {
    "customer.first_name": (customer.name || "").split(/\s+/)[0] || "",
    "customer.name": customer.name || "",
    "agent.name": state.me.name, "agent.first_name": state.me.name.split(/\s+/)[0],
  };
  return text.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (m, key) => (key in values ? values[key] : m));
}

export function showSuggestions(c) {
  const { cur, text, suggestions } = c;
  // shortcuts may be Cyrillic (the API takes any letter): Unicode letters, not ASCII \w
  const m = /(^|\s)\/([\p{L}\p{N}_-]*)$/u.exec(text.value.slice(0, text.selectionStart));
  if (m && m[2] === "") refreshCanned(() => showSuggestions(c));
  const matches = m ? state.canned.filter((x) => x.shortcut.startsWith(m[2])).slice(0, 6) : [];
  suggestions.hidden = !matches.length;
  suggestions.replaceChildren(...matches.map((x, i) => el("button", { type: "button", class: i === 0 ? "first" : "",
    "data-shortcut": x.shortcut, onclick: () => insertCanned(c, x, m) }, el("b", {}, `/${x.shortcut}`), ` ${x.title || x.text.slice(0, 60)}`)));
  cur.suggestion = matches.length ? () => insertCanned(c, matches[0], m) : null;
}

function insertCanned(c, canned, m) {
  const { cur, text } = c;
  const before = text.value.slice(0, text.selectionStart - m[2].length - 1);
  const after = text.value.slice(text.selectionStart);
  text.value = before + cannedFill(canned.text) + after;
  cur.cannedId = canned.id;  // the reply carries canned_reply_id: the reports count script use
  c.suggestions.hidden = true; cur.suggestion = null;
  text.focus(); onInput(c);
}
