// The composer under the thread: Reply or Note (a draft per conversation and mode kept in
// localStorage), the reply channel and handle, subject, WhatsApp templates, attachments,
// canned replies on "/", typing notices; Ctrl+Enter sends. One composer per opened thread:
// its parts and per-composer flags live in one object `c`, handed to the functions below.
import { T, el } from "../common.js";
import { showSuggestions } from "./canned.js";
import { buildFileParts } from "./composer-files.js";
import { hideMentions, mentionKeydown, setupMentions, showMentions } from "./composer-mentions.js";
import { updateRules } from "./composer-rules.js";
import { send } from "./composer-send.js";
import { ICONS } from "./format.js";
import { state } from "./state.js";

export function draftKey(id, mode) { return `tl-draft:${state.me.id}:${id}:${mode}`; }

export function renderComposer() {
  const cur = state.current;
  const c = { cur, channels: cur.data.reply_channels, modeLoaded: false, typingTimer: null, lastTypingSent: 0 };
  buildFields(c);
  buildFileParts(c);
  buildForm(c);
  exposeHooks(c);
  c.text.addEventListener("input", () => onInput(c));
  c.text.addEventListener("keydown", (e) => onKeydown(c, e));
  c.picker.addEventListener("change", () => updateRules(c));
  setTimeout(() => { if (!c.modeLoaded) setMode(c, cur.mode); }, 0);  // unless r or n came first
  return c.form;
}

function buildFields(c) {
  const { cur, channels } = c;
  const defaultChannel = cur.data.default_channel_id;
  c.text = el("textarea", { id: "composer-text", rows: 4, "aria-label": T.message_text });
  c.picker = el("select", { id: "composer-channel", "aria-label": T.channel },
    channels.map((ch) => el("option", { value: ch.id, selected: ch.id === defaultChannel }, `${ICONS[ch.kind] || ""} ${ch.name}`)));
  c.subject = el("input", { id: "composer-subject", placeholder: T.subject, "aria-label": T.subject, value: cur.conversation.subject || "" });
  c.rules = el("div", { class: "rules", id: "composer-rules" });
  // the handle picked by "reply here" on the card (else the one the customer last wrote from)
  c.toChip = el("span", { class: "reply-to", id: "composer-to", hidden: true });
  cur.to = null;
  // WhatsApp's window closed: only an approved template may go out
  c.templatePicker = el("select", { id: "composer-template", hidden: true,
    "aria-label": T.template || "Template", onchange: () => updateRules(c) });
  c.suggestions = el("div", { class: "suggestions", hidden: true });
  c.sendButton = el("button", { type: "submit", id: "composer-send", class: "send" });
  c.hint = el("div", { class: "hint", id: "composer-hint", role: "status", hidden: true });
}

function buildForm(c) {
  c.tabs = el("div", { class: "tabs" },
    el("button", { type: "button", "data-mode": "reply", onclick: () => setMode(c, "reply") }, T.reply),
    el("button", { type: "button", "data-mode": "note", onclick: () => setMode(c, "note") }, T.note));
  c.form = el("form", { class: "composer", id: "composer", onsubmit: (e) => { e.preventDefault(); send(c); } },
    c.tabs, el("div", { class: "route" }, c.picker, c.toChip, c.subject, c.templatePicker), c.rules, c.suggestions,
    setupMentions(c), c.text, c.hint, c.chips,
    el("div", { class: "buttons" }, c.attachButton, c.fileInput, c.sendButton));
}

// the textarea holds cur.mode's draft only once a mode was set: before that it is empty,
// and saving it would wipe the draft a reload is meant to bring back
function setMode(c, mode) {
  const { cur, text } = c;
  if (c.modeLoaded) localStorage.setItem(draftKey(cur.id, cur.mode), text.value);
  c.modeLoaded = true;
  cur.mode = mode;
  c.form.classList.toggle("note-mode", mode === "note");
  c.tabs.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b.dataset.mode === mode));
  text.value = localStorage.getItem(draftKey(cur.id, mode)) || "";
  text.placeholder = mode === "note" ? T.note_placeholder : T.reply_placeholder;
  c.sendButton.textContent = mode === "note" ? T.add_note : T.send;
  hideMentions(c);
  updateRules(c);
}

// what the keyboard shortcuts (r, n) and the card's "reply here" call on the open thread
function exposeHooks(c) {
  const { cur } = c;
  cur.setMode = (mode) => setMode(c, mode);
  cur.updateRules = () => updateRules(c);
  cur.focusComposer = (mode) => { setMode(c, mode); c.text.focus(); };
  cur.replyHere = (identity, channelId) => {
    setMode(c, "reply");
    c.picker.value = String(channelId);
    cur.to = identity;
    updateRules(c);
    c.text.focus();
  };
}

export function onInput(c) {
  const { cur, text } = c;
  c.hint.hidden = true;
  localStorage.setItem(draftKey(cur.id, cur.mode), text.value);
  if (!text.value) { cur.typingSince = null; cur.collision = false; cur.collisionShown = false; }
  else if (!cur.typingSince) cur.typingSince = Date.now();
  updateRules(c);
  showSuggestions(c);
  showMentions(c);
  announceTyping(c);
}

function announceTyping(c) {
  // "typing" at most every 2 s while the text changes; "stopped" 4 s after the last change
  const { cur, text } = c;
  const now = Date.now();
  if (state.socket && state.socket.connected && now - c.lastTypingSent > 2000 && text.value) {
    c.lastTypingSent = now;
    state.socket.emit("typing", { conversation_id: cur.id, typing: true });
  }
  clearTimeout(c.typingTimer);
  c.typingTimer = setTimeout(() => {
    c.lastTypingSent = 0;
    if (state.socket && state.socket.connected) state.socket.emit("typing", { conversation_id: cur.id, typing: false });
  }, 4000);
}

function onKeydown(c, e) {
  if (mentionKeydown(c, e)) return;
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); send(c); }
  else if ((e.key === "Tab" || e.key === "Enter") && c.cur.suggestion) { e.preventDefault(); c.cur.suggestion(); }
  else if (e.key === "Escape") { c.suggestions.hidden = true; c.text.blur(); }
}
