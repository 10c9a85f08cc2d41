// The right pane: opening a conversation (the last pick wins), the thread's head with who
// else is viewing or typing, the timeline, the composer and the customer card.
import { api, el, T } from "../common.js";
import { renderActions } from "./actions.js";
import { renderCard } from "./card.js";
import { renderComposer } from "./composer.js";
import { channelIcons, showError } from "./format.js";
import { renderList, upsertConversation } from "./list.js";
import { $, state, threadEl } from "./state.js";
import { renderTimeline } from "./timeline.js";
import { loadActivity } from "./routing.js";

let openSeq = 0;
export async function openConversation(id) {
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
  loadActivity(id);
  renderList();
  announceView();
  if (data.conversation.unread_count) {
    api(`/conversations/${id}/read`, { method: "POST" }).then(upsertConversation).catch(() => {});
  }
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
    el("div", { class: "who" }, el("strong", { class: "customer-name" }, customer.name || "—"), channelIcons(customer)),
    el("div", { id: "presence", class: "presence" }),
    el("div", { id: "actions", class: "actions" }));
  const timeline = renderTimeline();
  const main = el("div", { class: "thread-main" }, head, timeline, renderComposer(), el("div", { id: "collision", class: "collision", hidden: true }));
  threadEl.replaceChildren(main, renderCard());
  renderActions();
  renderPresence();
  timeline.scrollTop = timeline.scrollHeight;
}

export function renderPresence() {
  const node = $("presence");
  if (!node) return;
  const others = state.viewers.filter((v) => v.agent_id !== state.me.id);
  node.replaceChildren(...others.map((v) => el("span", { class: `viewer${v.typing ? " typing" : ""}`, "data-agent": v.agent_id },
    `● ${v.name} ${v.typing ? T.typing : T.viewing}`)));
}
