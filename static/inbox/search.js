// The search box: customers and messages as you type (the last answer wins), matches
// highlighted; a hit opens its conversation.
import { T, api, el } from "../common.js";
import { channelBadge, highlight } from "./format.js";
import { $ } from "./state.js";
import { openConversation } from "./thread.js";

export function setupSearch() {
  const input = $("search"), results = $("search-results");
  let timer = null, seq = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value.trim();
      if (!q) { results.hidden = true; return; }
      const mine = ++seq;
      let answer;
      try { answer = await api(`/search?${new URLSearchParams({ q })}`); } catch (e) { return; }
      if (mine !== seq) return;
      const pick = (id) => { results.hidden = true; openConversation(id); };
      const customers = answer.customers.map((c) => el("button", { type: "button", class: "hit customer-hit",
          onclick: () => pick(answer.customer_conversations[String(c.id)]) },
        el("b", {}, highlight(c.name || "—", answer.terms)), " ",
        el("span", { class: "handles" }, highlight((c.identities || []).map((i) => i.value).join(", "), answer.terms))));
      const messages = answer.messages.map((h) => el("button", { type: "button", class: "hit message-hit",
          onclick: () => pick(h.message.conversation_id) },
        el("b", {}, h.customer ? h.customer.name : ""), " ", channelBadge(h.message.channel_id), " ",
        el("span", { class: "snippet" }, highlight(h.snippet, answer.terms))));
      results.replaceChildren(
        customers.length ? el("h4", {}, T.customers) : "", ...customers,
        messages.length ? el("h4", {}, T.messages) : "", ...messages,
        !customers.length && !messages.length ? el("p", { class: "empty" }, T.no_results) : "");
      results.hidden = false;
    }, 200);
  });
  input.addEventListener("keydown", (e) => { if (e.key === "Escape") { results.hidden = true; input.blur(); } });
  document.addEventListener("click", (e) => { if (!results.contains(e.target) && e.target !== input) results.hidden = true; });
}
