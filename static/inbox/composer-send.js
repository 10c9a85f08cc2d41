// Sending from the composer: a note, or a reply on the picked channel (to the picked handle,
// with subject, template and attachments). New messages from others since the agent started
// typing hold the first Send back with a warning; the second sends.
import { T, api, toast } from "../common.js";
import { pickedMentions } from "./composer-mentions.js";
import { draftKey } from "./composer.js";
import { renderChips } from "./composer-files.js";
import { updateRules } from "./composer-rules.js";
import { fmt, showError } from "./format.js";
import { $, state } from "./state.js";
import { replaceMessage } from "./timeline.js";

export async function send(c) {
  const { cur, text } = c;
  const body = text.value.trim();
  const reply = cur.mode === "reply";
  if (reply && cur.uploads.some((u) => !u.token)) return;  // still uploading
  const tokens = reply ? cur.uploads.map((u) => u.token) : [];
  const template = reply ? cur.template : null;
  if (!body && !tokens.length && !template) { hint(c, T.empty_reply); c.text.focus(); return; }
  if (state.offline) { hint(c, T.offline_banner); return; }
  if (cur.collision && !cur.collisionShown) { warnCollision(cur); return; }
  c.sendButton.disabled = true;
  try {
    const message = await post(c, body, tokens, template);
    replaceMessage(message);
    clearAfterSend(c, reply);
    tellUnreachable(message);
  } catch (e) { showError(e); }
  updateRules(c);
}

// a word under the text (an empty reply, offline), gone at the next keystroke
export function hint(c, text) {
  c.hint.textContent = text;
  c.hint.hidden = !text;
}

function warnCollision(cur) {
  cur.collisionShown = true;
  const warn = $("collision");
  warn.textContent = T.collision;
  warn.hidden = false;
  const messages = $("messages");
  if (messages) messages.scrollTop = messages.scrollHeight;
}

function post(c, body, tokens, template) {
  const { cur } = c;
  return cur.mode === "note"
    ? api(`/conversations/${cur.id}/notes`, { method: "POST", body: JSON.stringify({ text: body, mentions: pickedMentions(c, body) }) })
    : api(`/conversations/${cur.id}/messages`, { method: "POST", body: JSON.stringify({
        text: body || (template ? `[template ${template.name}]` : ""),
        template: template ? { name: template.name, language: { code: template.language } } : null,
        channel_id: Number(c.picker.value) || null, attachments: tokens, identity_id: cur.to ? cur.to.id : null,
        canned_reply_id: cur.cannedId || null,
        subject: !c.subject.hidden && c.subject.value ? c.subject.value : null }) });
}

// mentioned agents who may not see this conversation's channel were not notified: say so
function tellUnreachable(message) {
  const unreachable = (message.meta || {}).mentions_unreachable || [];
  if (unreachable.length)
    toast(fmt(T.mention_unreachable, { names: unreachable.map((a) => a.name).join(", ") }), 10000);
}

function clearAfterSend(c, reply) {
  const { cur } = c;
  c.text.value = "";
  if (cur.mentionIds) cur.mentionIds.clear();
  if (reply) { cur.uploads = []; cur.cannedId = null; renderChips(c); }
  localStorage.removeItem(draftKey(cur.id, cur.mode));
  cur.typingSince = null; cur.collision = false; cur.collisionShown = false;
  $("collision").hidden = true;
  if (state.socket && state.socket.connected) state.socket.emit("typing", { conversation_id: cur.id, typing: false });
}
