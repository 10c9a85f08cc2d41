// Keyboard shortcuts outside text fields: j/k move through the list, r reply, n note,
// e resolve, x select, / search, ? this help.
import { T, el } from "../common.js";
import { resolveCurrent } from "./actions.js";
import { toggleSelect } from "./list.js";
import { $, state } from "./state.js";
import { openConversation } from "./thread.js";

const KEYS = [["j / k", "key_move"], ["Enter", "key_open"], ["r", "key_reply"], ["n", "key_note"],
  ["e", "key_resolve"], ["x", "key_select"], ["/", "key_search"], ["Ctrl+Enter", "key_send"], ["?", "key_help"]];

export function showHelp() {
  let dialog = $("shortcut-help");
  if (!dialog) {
    dialog = el("dialog", { id: "shortcut-help", class: "help", "aria-labelledby": "shortcut-help-title" },
      el("h2", { id: "shortcut-help-title" }, T.shortcut_help),
      el("dl", {}, KEYS.map(([key, what]) => [el("dt", {}, el("kbd", {}, key)), el("dd", {}, T[what])])),
      el("form", { method: "dialog" }, el("button", { type: "submit", class: "close" }, T.close)));
    document.body.append(dialog);
  }
  if (!dialog.open) dialog.showModal();
}

export function setupKeys() {
  document.addEventListener("keydown", (e) => {
    const tag = (e.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || e.ctrlKey || e.metaKey || e.altKey) return;
    if ($("shortcut-help") && $("shortcut-help").open) return;
    const move = (delta) => {
      if (!state.list.length) return;
      state.cursor = Math.max(0, Math.min(state.list.length - 1, state.cursor + delta));
      openConversation(state.list[state.cursor].id);
    };
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "r": if (state.current) { e.preventDefault(); state.current.focusComposer("reply"); } break;
      case "n": if (state.current) { e.preventDefault(); state.current.focusComposer("note"); } break;
      case "e": resolveCurrent(); break;
      case "x": if (state.current) toggleSelect(state.current.id, !state.selected.has(state.current.id)); break;
      case "/": e.preventDefault(); $("search").focus(); break;
      case "?": e.preventDefault(); showHelp(); break;
      default: return;
    }
  });
}
