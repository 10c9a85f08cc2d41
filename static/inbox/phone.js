// Phone width: one pane at a time (views → list → thread → card), each with a way back. The
// pane on screen is body[data-pane]; the CSS shows only that one below 700 px, and ignores
// it on a wide screen (all panes side by side).
import { T, el } from "../common.js";

export function setPane(pane) {
  document.body.dataset.pane = pane;
}

// a button shown only at phone width
export function paneButton(pane, label, extra = {}) {
  return el("button", { type: "button", class: "phone-only pane-nav", "data-pane-to": pane,
    onclick: () => setPane(pane), ...extra }, label);
}

export function setupPhone() {
  if (!document.body.dataset.pane) setPane("list");
  const bar = document.getElementById("phone-bar");
  if (bar) bar.replaceChildren(paneButton("views", `☰ ${T.show_views}`));
}

export const backToList = () => paneButton("list", `← ${T.back}`, { "aria-label": T.back });
export const toCard = () => paneButton("card", `${T.show_card} →`);
export const backToThread = () => paneButton("thread", `← ${T.back}`, { "aria-label": T.back });

// the card on screen: its own pane at phone width; scrolled to and focused beside the thread
export function showCard() {
  setPane("card");
  const card = document.querySelector("aside.card");
  if (card) { card.tabIndex = -1; card.focus(); }
}
