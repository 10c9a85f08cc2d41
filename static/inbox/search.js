// The search box: customers and messages as you type (the last answer wins), word forms
// matched by the server and highlighted here, each hit with its date. Arrow keys move through
// the hits, Enter opens one, "More results" fetches the next page; a message hit opens its
// conversation scrolled to that message, highlighted.
import { T, api, el } from "../common.js";
import { channelBadge, fullTime, highlight, time } from "./format.js";
import { $ } from "./state.js";
import { openConversation } from "./thread.js";

// the longest first, so "заказу" is marked whole rather than as "заказ" + "у"
const byLength = (words) => [...words].sort((a, b) => b.length - a.length);

export function setupSearch() {
  const input = $("search"), results = $("search-results");
  let timer = null, seq = 0, active = -1, query = "", terms = [];
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-controls", "search-results");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-autocomplete", "list");
  results.setAttribute("role", "listbox");

  const hits = () => [...results.querySelectorAll(".hit")];
  const close = () => { results.hidden = true; input.setAttribute("aria-expanded", "false"); setActive(-1); };
  const open = () => { results.hidden = false; input.setAttribute("aria-expanded", "true"); };
  function setActive(i) {
    const all = hits();
    active = all.length ? Math.max(-1, Math.min(i, all.length - 1)) : -1;
    all.forEach((node, n) => node.setAttribute("aria-selected", n === active ? "true" : "false"));
    if (active >= 0) {
      input.setAttribute("aria-activedescendant", all[active].id);
      all[active].scrollIntoView({ block: "nearest" });
    } else input.removeAttribute("aria-activedescendant");
  }
  const pick = (conversationId, messageId) => {
    close();
    if (conversationId) openConversation(conversationId, { messageId, terms });
  };
  let hitSeq = 0;
  const option = (cls, onclick, ...children) =>
    el("button", { type: "button", class: `hit ${cls}`, role: "option", id: `search-hit-${++hitSeq}`,
      tabindex: "-1", "aria-selected": "false", onclick }, ...children);
  const when = (iso) => (iso ? el("time", { class: "when", dateTime: iso, title: fullTime(iso) }, time(iso)) : null);

  function messageHit(h) {
    return option("message-hit", () => pick(h.message.conversation_id, h.message.id),
      el("span", { class: "hit-head" },
        el("b", {}, h.customer ? h.customer.name || "—" : "—"), " ", channelBadge(h.message.channel_id),
        when(h.message.created_at)),
      el("span", { class: "snippet" }, highlight(h.snippet, terms)));
  }
  function moreButton(cursor) {
    return option("more-hit", async () => {
      const mine = seq;
      let answer;
      try { answer = await api(`/search?${new URLSearchParams({ q: query, cursor })}`); } catch (e) { return; }
      if (mine !== seq) return;
      terms = byLength([...new Set([...terms, ...answer.terms])]);
      const at = hits().length - 1;
      results.querySelector(".more-hit").replaceWith(...answer.messages.map(messageHit),
        ...(answer.next_cursor ? [moreButton(answer.next_cursor)] : []));
      setActive(at);
      input.focus();
    }, T.more_results);
  }

  async function run() {
    const q = input.value.trim();
    if (!q) { close(); return; }
    const mine = ++seq;
    let answer;
    try { answer = await api(`/search?${new URLSearchParams({ q })}`); } catch (e) { return; }
    if (mine !== seq) return;
    query = q; terms = byLength(answer.terms);
    const customers = answer.customers.map((c) => option("customer-hit",
      () => pick(answer.customer_conversations[String(c.id)]),
      el("span", { class: "hit-head" },
        el("b", {}, highlight(c.name || "—", terms)), when(answer.customer_activity[String(c.id)])),
      el("span", { class: "handles" }, highlight((c.identities || []).map((i) => i.value).join(", "), terms))));
    const messages = answer.messages.map(messageHit);
    const parts = [];
    if (customers.length) parts.push(el("h4", {}, T.customers), ...customers);
    if (messages.length) parts.push(el("h4", {}, T.messages), ...messages);
    if (answer.next_cursor) parts.push(moreButton(answer.next_cursor));
    if (!parts.length) parts.push(el("p", { class: "empty" }, T.no_results));
    results.replaceChildren(...parts);
    open();
    setActive(-1);
  }

  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 200); });
  input.addEventListener("focus", () => { if (input.value.trim() && results.childElementCount) open(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { close(); input.blur(); return; }
    if (results.hidden) {
      if (e.key === "ArrowDown" && input.value.trim()) { e.preventDefault(); open(); setActive(0); }
      return;
    }
    if (e.key === "ArrowDown") { e.preventDefault(); setActive(active + 1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); setActive(active - 1); }
    else if (e.key === "Enter") {
      const all = hits();
      const target = active >= 0 ? all[active] : all[0];
      if (target) { e.preventDefault(); target.click(); }
    }
  });
  document.addEventListener("click", (e) => { if (!results.contains(e.target) && e.target !== input) close(); });
}
