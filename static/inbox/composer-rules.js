// What the picked channel allows, shown above the text and enforced on the send button: no
// channel, WhatsApp's closed 24-hour window (templates only), Telegram's 4096-character split,
// email's subject line; the "reply here" handle while the channel can reach it.
import { T, el } from "../common.js";
import { ICONS, fmt } from "./format.js";
import { state } from "./state.js";

const channelOf = (c) => c.channels.find((ch) => ch.id === Number(c.picker.value));

export function updateRules(c) {
  const { cur, text } = c;
  const ch = channelOf(c);
  const reply = cur.mode === "reply";
  if (cur.to && !(ch && (ch.identity_kinds || []).includes(cur.to.kind))) cur.to = null;  // another channel picked
  renderTo(c, reply);
  c.picker.hidden = !reply; c.subject.hidden = !(reply && ch && ch.kind === "email");
  const notes = [];
  if (reply && !ch) notes.push(T.no_channel);
  const windowClosed = reply && ch && ch.kind === "whatsapp" && !ch.window_open;
  if (windowClosed) notes.push(T.wa_closed);
  const templates = windowClosed ? (ch.templates || []) : [];
  if (windowClosed && !templates.length) notes.push(T.no_templates);
  const template = pickTemplate(c, ch, templates);
  if (reply && ch && ch.kind === "telegram" && text.value.length > 4096)
    notes.push(fmt(T.tg_split, { n: Math.ceil(text.value.length / 4096) }));
  if (reply && ch && ch.kind === "email") notes.push(T.email_subject);
  c.rules.replaceChildren(...notes.map((n) => el("div", {}, n)));
  c.attachButton.hidden = !reply;
  c.chips.hidden = !reply || !cur.uploads.length;
  // offline: nothing can be sent (the draft stays in the box and in localStorage)
  c.sendButton.disabled = state.offline || (reply && (!ch || (windowClosed && !template)
    || cur.uploads.some((u) => !u.token)));
}

function renderTo(c, reply) {
  const { cur } = c;
  c.toChip.hidden = !(reply && cur.to);
  if (cur.to) c.toChip.replaceChildren(`→ ${ICONS[cur.to.kind] || ""} ${cur.to.value}`, el("button", { type: "button", class: "x",
    title: T.remove, onclick: () => { cur.to = null; updateRules(c); } }, "×"));
}

// the template picker lists the channel's approved templates; the picked one is cur.template
function pickTemplate(c, ch, templates) {
  const { templatePicker } = c;
  if (templatePicker.dataset.channel !== String(ch && ch.id)) {
    templatePicker.dataset.channel = String(ch && ch.id);
    templatePicker.replaceChildren(el("option", { value: "" }, T.choose_template),
      ...templates.map((t, i) => el("option", { value: String(i) }, `${t.name} (${t.language})`)));
  }
  templatePicker.hidden = !templates.length;
  const template = templates.length && templatePicker.value !== "" ? templates[Number(templatePicker.value)] : null;
  c.cur.template = template;
  return template;
}
