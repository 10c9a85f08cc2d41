// Desktop notifications (the header's toggle, remembered in localStorage): new messages in the
// agent's conversations and mentions; clicking one opens its conversation.
import { T } from "../common.js";
import { $, state } from "./state.js";
import { openConversation } from "./thread.js";

export function notifyDesktop(title, body, conversationId) {
  if (!state.notify || !("Notification" in window) || Notification.permission !== "granted") return;
  const n = new Notification(title, { body, tag: `tl-${conversationId}` });
  n.onclick = () => { window.focus(); openConversation(conversationId); };
}

export function setupNotifications() {
  const button = $("notify");
  const render = () => { button.textContent = state.notify ? `✓ ${T.notifications_on}` : T.notifications; };
  render();
  button.addEventListener("click", async () => {
    if (!state.notify && "Notification" in window) {
      const permission = await Notification.requestPermission();
      state.notify = permission === "granted";
    } else state.notify = false;
    localStorage.setItem("tl-notify", state.notify ? "1" : "0");
    render();
  });
}
