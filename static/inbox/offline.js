// Offline: the socket dropped or the browser lost the network. A banner says so ("your draft
// is kept") and Send is disabled until the connection is back; the draft stays in localStorage.
import { $, state } from "./state.js";

export function setOffline(offline) {
  state.offline = offline;
  document.body.dataset.live = offline ? "no" : "yes";
  $("offline-banner").hidden = !offline;
  if (state.current && state.current.updateRules) state.current.updateRules();
}

export function watchNetwork() {
  window.addEventListener("offline", () => setOffline(true));
  window.addEventListener("online", () => { if (state.socket && state.socket.connected) setOffline(false); });
}
