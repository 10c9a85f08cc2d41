// "@" in an internal note suggests agents (by any word of the name or the email, whatever the
// script: "ан" finds "Анна", "luk" and "łuk" find "Łukasz"); arrow keys move, Enter or Tab
// takes, the mouse too. Picked agents go with the note as ids (`mentions`) while their
// @handle stays in the text; the server checks them and tells who cannot see the channel.
import { T, el } from "../common.js";
import { state } from "./state.js";

// letters without their marks, lower case: "Łukasz" → "lukasz", "Ёлка" → "елка"
export function fold(s) {
  return (s || "").normalize("NFD").replace(/\p{M}/gu, "").toLocaleLowerCase()
    .replace(/ł/g, "l").replace(/ё/g, "е");
}

const QUERY = /(^|[\s(,;])@([\p{L}\p{N}._-]*)$/u;

export function matchAgents(query) {
  const q = fold(query);
  return [...state.agents.values()]
    .filter((a) => a.id !== state.me.id)
    .filter((a) => !q || fold(a.name).split(/\s+/).some((w) => w.startsWith(q)) || fold(a.email).startsWith(q)
      || fold(a.name).startsWith(q))
    .slice(0, 8);
}

// the word put in the text: the first name when no other agent shares it, else the email's
// local part (both are what the server's @handle parser understands)
function handleOf(agent) {
  const first = (agent.name || "").split(/\s+/)[0];
  const same = [...state.agents.values()].filter((a) => fold((a.name || "").split(/\s+/)[0]) === fold(first));
  return first && same.length === 1 && !/[^\p{L}\p{N}._-]/u.test(first) ? first : agent.email.split("@")[0];
}

export function setupMentions(c) {
  c.mentionBox = el("div", { class: "mentions-box", id: "mention-list", role: "listbox", "aria-label": T.mention_agents, hidden: true });
  c.mentionItems = [];
  c.mentionIndex = 0;
  c.cur.mentionIds = new Map();
  c.text.setAttribute("aria-controls", "mention-list");
  c.text.setAttribute("aria-autocomplete", "list");
  return c.mentionBox;
}

export function hideMentions(c) {
  if (!c.mentionBox) return;
  c.mentionBox.hidden = true;
  c.mentionItems = [];
  c.text.removeAttribute("aria-activedescendant");
}

export function showMentions(c) {
  if (c.cur.mode !== "note") { hideMentions(c); return; }
  const m = QUERY.exec(c.text.value.slice(0, c.text.selectionStart));
  const found = m ? matchAgents(m[2]) : [];
  if (!found.length) { hideMentions(c); return; }
  c.mentionMatch = m;
  c.mentionItems = found;
  c.mentionIndex = 0;
  renderBox(c);
}

function renderBox(c) {
  c.mentionBox.replaceChildren(...c.mentionItems.map((a, i) => el("div", {
    class: `mention-option${i === c.mentionIndex ? " active" : ""}`, role: "option", id: `mention-${a.id}`,
    "aria-selected": i === c.mentionIndex ? "true" : "false", "data-agent": a.id,
    onmousedown: (e) => e.preventDefault(),  // the textarea keeps the focus
    onclick: () => pick(c, a),
  }, el("span", { class: "mention-name" }, a.name), el("span", { class: "mention-email" }, a.email))));
  c.mentionBox.hidden = false;
  c.text.setAttribute("aria-activedescendant", `mention-${c.mentionItems[c.mentionIndex].id}`);
}

// true when the key was the list's
export function mentionKeydown(c, e) {
  if (!c.mentionBox || c.mentionBox.hidden || !c.mentionItems.length) return false;
  const n = c.mentionItems.length;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    c.mentionIndex = (c.mentionIndex + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
    renderBox(c);
  } else if ((e.key === "Enter" && !e.ctrlKey && !e.metaKey) || e.key === "Tab") {
    pick(c, c.mentionItems[c.mentionIndex]);
  } else if (e.key === "Escape") {
    hideMentions(c);
  } else return false;
  e.preventDefault();
  e.stopPropagation();
  return true;
}

function pick(c, agent) {
  const { text } = c;
  const m = c.mentionMatch;
  const handle = handleOf(agent);
  const start = text.selectionStart - m[2].length - 1;
  const before = text.value.slice(0, start);
  const after = text.value.slice(text.selectionStart);
  text.value = `${before}@${handle} ${after.replace(/^ /, "")}`;
  const caret = before.length + handle.length + 2;
  text.setSelectionRange(caret, caret);
  c.cur.mentionIds.set(handle, agent.id);
  hideMentions(c);
  text.focus();
  text.dispatchEvent(new Event("input"));
}

// the picked agents whose @handle is still in the text
export function pickedMentions(c, body) {
  const ids = [];
  for (const [handle, id] of c.cur.mentionIds || []) if (body.includes(`@${handle}`)) ids.push(id);
  return ids;
}
