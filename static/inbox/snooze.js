// Snoozing the open conversation: presets (later today, tomorrow 9:00, next week) or a picked
// date and time; the snooze-until time is shown in the thread head and the Snoozed list.
import { T, el } from "../common.js";
import { dateTime } from "./format.js";

// each preset's moment, counted from `now` in the agent's local time
export function snoozePresets(now = new Date()) {
  const later = new Date(now.getTime() + 3 * 3600 * 1000);
  later.setMinutes(0, 0, 0);
  const tomorrow = new Date(now);
  tomorrow.setDate(now.getDate() + 1); tomorrow.setHours(9, 0, 0, 0);
  const nextWeek = new Date(now);
  nextWeek.setDate(now.getDate() + (((8 - now.getDay()) % 7) || 7)); nextWeek.setHours(9, 0, 0, 0);
  return [
    { key: "later", label: T.snooze_later_today, at: later },
    { key: "tomorrow", label: T.snooze_tomorrow, at: tomorrow },
    { key: "next-week", label: T.snooze_next_week, at: nextWeek },
  ];
}

// the menu that opens when "Snoozed" is picked: onPick(Date) snoozes, onCancel puts the select back
export function snoozeMenu(onPick, onCancel) {
  const custom = el("input", { type: "datetime-local", "aria-label": T.snooze_until, "data-snooze": "custom" });
  return el("div", { class: "snooze-menu", id: "snooze-menu", role: "group", "aria-label": T.snooze_until },
    snoozePresets().map((p) => el("button", { type: "button", "data-snooze": p.key, onclick: () => onPick(p.at) },
      p.label, el("span", { class: "when" }, ` ${dateTime(p.at.toISOString())}`))),
    custom,
    el("button", { type: "button", "data-snooze": "custom-ok", onclick: () => custom.value && onPick(new Date(custom.value)) }, T.snooze),
    el("button", { type: "button", class: "link", "data-snooze": "cancel", onclick: onCancel }, T.cancel));
}

export function snoozedUntil(conversation, prefix = T.snoozed_until) {
  if (conversation.status !== "snoozed" || !conversation.snoozed_until) return "";
  return el("span", { class: "snoozed-until", title: dateTime(conversation.snoozed_until) },
    `◷ ${prefix} ${dateTime(conversation.snoozed_until)}`);
}
