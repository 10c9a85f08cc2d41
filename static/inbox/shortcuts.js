// Keyboard shortcuts outside text fields: j/k move through the list, r reply, n note,
// e resolve, x select, / search.
import { patchCurrent } from "./actions.js";
import { toggleSelect } from "./list.js";
import { $, state } from "./state.js";
import { openConversation } from "./thread.js";

export function setupKeys() {
  document.addEventListener("keydown", (e) => {
    const tag = (e.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || e.ctrlKey || e.metaKey || e.altKey) return;
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
      case "e": if (state.current && state.current.conversation.status !== "resolved") patchCurrent({ status: "resolved" }); break;
      case "x": if (state.current) toggleSelect(state.current.id, !state.selected.has(state.current.id)); break;
      case "/": e.preventDefault(); $("search").focus(); break;
      default: return;
    }
  });
}
