// The right pane: opening a conversation (the last pick wins), the thread's head with who
// else is viewing or typing, the timeline, the composer and the customer card.
import { api, el, T } from "../common.js";
import { renderActions } from "./actions.js";
import { renderCard } from "./card.js";
import { backToList, setPane, toCard } from "./phone.js";
import { renderComposer } from "./composer.js";
import { channelIcons, fmt, highlight, showError } from "./format.js";
import { renderList, upsertConversation } from "./list.js";
import { $, state, threadEl } from "./state.js";
import { renderTimeline, scrollToCurrent } from "./timeline.js";
import { loadActivity } from "./routing.js";
import { readConversation } from "./bell.js";

let openSeq = 0;
// `focus`: {messageId, terms} from a search hit: that message scrolled into view, highlighted
export async function openConversation(id, focus = null) {
  // j/k pressed quickly: timelines may answer out of order, the last pick wins
  const seq = ++openSeq;
  let data;
  try { data = await api(`/conversations/${id}/timeline`); } catch (e) { if (seq === openSeq) showError(e); return; }
  if (seq !== openSeq) return;
  const previous = state.current;
  state.current = {
    id, conversation: data.conversation, data, mode: "reply",
    typingSince: null, collision: false, collisionShown: false,
  };
  state.cursor = state.list.findIndex((c) => c.id === id);
  if (!previous || previous.id !== id) history.replaceState(null, "", `/conversations/${id}`);
  state.viewers = [];
  renderThread();
  setPane("thread");
  loadActivity(id);
  renderList();
  if (focus && focus.messageId) showMessage(focus.messageId, focus.terms);
  announceView();
  readConversation(id);  // its notifications in the bell are read now
  if (data.conversation.unread_count) {
    api(`/conversations/${id}/read`, { method: "POST" }).then(upsertConversation).catch(() => {});
  }
}

// a search hit: the message scrolled into view and outlined, the matched words marked
export function showMessage(messageId, terms = []) {
  const node = document.querySelector(`#messages [data-message="${Number(messageId)}"]`);
  if (!node) return false;
  if (terms.length) {
    const walk = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
    const texts = [];
    while (walk.nextNode()) if (!walk.currentNode.parentElement.closest("button, .meta, .badge, time")) texts.push(walk.currentNode);
    for (const t of texts) {
      const parts = highlight(t.textContent, terms);
      if (parts.length > 1) t.replaceWith(...parts);
    }
  }
  const folded = node.closest(".conv-body");
  if (folded && folded.hidden) folded.previousElementSibling.click();
  document.querySelectorAll("#messages .msg.search-hit").forEach((n) => n.classList.remove("search-hit"));
  node.classList.add("search-hit");
  node.scrollIntoView({ block: "center" });
  return true;
}

export function announceView() {
  if (!state.socket || !state.socket.connected) return;
  const id = state.current ? state.current.id : null;
  state.socket.emit("view", { conversation_id: id }, (answer) => {
    if (answer && answer.ok && state.current && state.current.id === id) {
      state.viewers = answer.viewers || [];
      renderPresence();
    }
  });
}

function renderThread() {
  const cur = state.current;
  const customer = cur.data.customer;
  const head = el("header", { class: "thread-head" },
    el("div", { class: "who" }, backToList(), el("strong", { class: "customer-name" }, customer.name || "—"), channelIcons(customer), toCard()),
    el("div", { id: "presence", class: "presence" }),
    el("div", { id: "actions", class: "actions" }));
  const timeline = renderTimeline();
  const main = el("div", { class: "thread-main" }, head, timeline, renderComposer(), el("div", { id: "collision", class: "collision", hidden: true }));
  threadEl.replaceChildren(main, renderCard());
  renderActions();
  renderPresence();
  scrollToCurrent(timeline);
}

export function renderPresence() {
  const node = $("presence");
  if (!node) return;
  const others = state.viewers.filter((v) => v.agent_id !== state.me.id);
  const visitor = state.current && state.visitorTyping.get(state.current.id)
    ? el("span", { class: "visitor-typing", "data-visitor-typing": "yes" },
        `✎ ${fmt(T.customer_typing, { name: state.current.data.customer.name || T.site_visitor })}`) : "";
  node.replaceChildren(visitor, ...others.map((v) => el("span", { class: `viewer${v.typing ? " typing" : ""}`, "data-agent": v.agent_id },
    `● ${v.name} ${v.typing ? T.typing : T.viewing}`)));
}
