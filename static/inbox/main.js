// The agents' inbox: views, conversation list, thread + customer card, composer; live through
// Socket.IO /agents. Plain JavaScript modules, no build step. Customer text is only ever put
// into the page as text nodes (textContent / append of strings), never parsed as HTML.
// This module starts the page: the event head, the bootstrap, the list, then live updates.
import { api } from "../common.js";
import { setupBell } from "./bell.js";
import { showError } from "./format.js";
import { loadList } from "./list.js";
import { setupNotifications } from "./notifications.js";
import { watchNetwork } from "./offline.js";
import { setupPhone, showCard } from "./phone.js";
import { setupSearch } from "./search.js";
import { setupKeys } from "./shortcuts.js";
import { connect } from "./socket.js";
import { BOOT, state } from "./state.js";
import { openConversation } from "./thread.js";
import { refreshCounts, renderViews } from "./views.js";
import { setupAvailability } from "./routing.js";

async function start() {
  state.seen = new Set();
  // the event head first: whatever happens while the page loads is caught up on connect
  state.lastEventId = (await api("/events/head")).last_id;
  const boot = await api("/inbox/bootstrap");
  state.me = boot.me;
  boot.agents.forEach((a) => state.agents.set(a.id, a));
  state.teams = boot.teams;
  boot.channels.forEach((c) => state.channels.set(c.id, c));
  state.labels = boot.labels;
  state.canned = boot.canned_replies;
  setupPhone();
  renderViews();
  await loadList();
  refreshCounts();
  setupSearch();
  setupKeys();
  setupNotifications();
  setupBell();
  watchNetwork();
  setupAvailability().catch(() => {});
  connect();
  const wantsCard = location.hash === "#card";  // the board's link to a customer's card
  if (BOOT.conversation_id) await openConversation(BOOT.conversation_id);
  if (wantsCard && state.current) showCard();
  document.body.dataset.ready = "yes";
}

start().catch(showError);
