// Live events through Socket.IO /agents: conversations, messages and the open customer's card
// applied as they come (deduplicated by event id), caught up through GET /events after a
// reconnect; presence; my notifications (app/domain/notifications.py) to the bell.
import { T, api } from "../common.js";
import { onNotification, refreshBell } from "./bell.js";
import { concernsCard, refreshCard } from "./card.js";
import { upsertConversation } from "./list.js";
import { setOffline } from "./offline.js";
import { $, state } from "./state.js";
import { announceView, renderPresence } from "./thread.js";
import { replaceMessage } from "./timeline.js";
import { applyActivity, applyAvailability, refreshAvailability } from "./routing.js";
import { refreshCounts } from "./views.js";

function applyEvent(event) {
  if (typeof event.id !== "number") return;  // not from the event log
  if (event.id <= state.lastEventId && state.seen.has(event.id)) return;  // caught up already
  state.seen.add(event.id);
  state.lastEventId = Math.max(state.lastEventId, event.id);
  const data = event.data;
  if (event.type === "conversation.created" || event.type === "conversation.updated") {
    upsertConversation(data);
    refreshCounts();
  } else if (event.type === "message.created" || event.type === "message.updated") {
    applyMessage(event);
  } else if (event.type === "customer.updated" || event.type === "customer.merged" || event.type === "deal.updated") {
    if (concernsCard(event.type, data)) refreshCard();
  } else if (event.type === "conversation.activity") {
    applyActivity(data);
  } else if (event.type === "agent.availability") {
    applyAvailability(data);
  }
}

function applyMessage(event) {
  const data = event.data;
  const cur = state.current;
  if (cur && cur.data.conversations.some((c) => c.id === data.conversation_id)) {
    replaceMessage(data);
    const fromOthers = data.direction === "in" || (data.direction === "out" && data.author_id !== state.me.id);
    if (event.type === "message.created" && fromOthers && cur.typingSince) cur.collision = true;
    if (event.type === "message.created" && data.direction === "in" && data.conversation_id === cur.id && !document.hidden)
      api(`/conversations/${cur.id}/read`, { method: "POST" }).then(upsertConversation).catch(() => {});
  }
}

async function catchUp() {
  for (;;) {
    const page = await api(`/events?after=${state.lastEventId}`);
    page.items.forEach(applyEvent);
    if (!page.next_cursor) break;
  }
}

export function connect() {
  const socket = io("/agents", { transports: ["websocket", "polling"] });
  state.socket = socket;
  window.threadline.socket = socket;
  ["conversation.created", "conversation.updated", "message.created", "message.updated",
   "customer.updated", "customer.merged", "deal.updated", "conversation.activity"]
    .forEach((type) => socket.on(type, applyEvent));
  // to admins as a logged event (with its id), to the agent's own browsers as a notification
  // (no id): never through applyEvent's id bookkeeping
  socket.on("agent.availability", (event) => applyAvailability(event.data));
  socket.on("presence", (event) => {
    if (state.current && event.data.conversation_id === state.current.id) {
      state.viewers = event.data.viewers;
      renderPresence();
    }
  });
  // mentions, assignments, new messages in mine: a row each on the server, pushed to me only
  socket.on("notification.created", onNotification);
  // an admin changed what this agent sees (a new channel, a team membership): the server has
  // already moved this socket into the right rooms; the page re-reads its channels and teams
  socket.on("access.changed", async () => {
    try {
      const boot = await api("/inbox/bootstrap");
      state.teams = boot.teams;
      state.channels.clear();
      boot.channels.forEach((c) => state.channels.set(c.id, c));
      refreshCounts();
    } catch (e) { /* the next change or reload tries again */ }
  });
  socket.on("connect", async () => {
    try { await catchUp(); } catch (e) { /* next connect tries again */ }
    setOffline(!navigator.onLine);
    $("live").title = T.live;
    refreshCounts();
    refreshBell();
    announceView();
    refreshAvailability();
  });
  socket.on("disconnect", (reason) => {
    setOffline(true);
    $("live").title = T.offline;
    // the server ends the sockets of a signed-out agent: try once more, and when the
    // session is gone too the connect is refused (below)
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", (err) => {
    if (err && err.message === "Connection rejected by server") {
      document.body.dataset.signedOut = "yes";
      window.location.assign("/login");
    }
  });
  // the site chat's visitor typing (the server sends it to agents who may see the channel)
  socket.on("widget.typing", (event) => {
    const d = event.data;
    if (!d.conversation_id) return;
    state.visitorTyping.set(d.conversation_id, d.typing ? Date.now() : 0);
    if (state.current && state.current.id === d.conversation_id) renderPresence();
    clearTimeout(state.visitorTypingTimer);
    // no "stopped" may come (the tab closed): the notice fades after a few quiet seconds
    state.visitorTypingTimer = setTimeout(() => { state.visitorTyping.clear(); renderPresence(); }, 6000);
  });
}
