// Editing on the card: labelled inline fields (name, company, email, phone, tags, custom
// fields), each saved on change with "Saved" or the error next to it; a note; a new deal.
import { T, api, el } from "../common.js";
import { refreshCard } from "./card.js";
import { humanError } from "./format.js";
import { state } from "./state.js";

// what each field last said ("Saved", an error), kept across the card's live redraws
const said = new Map();
let fieldDefs = null;

function fieldStatus(key) {
  const entry = said.get(key);
  return el("span", { class: `field-status${entry ? ` ${entry.kind}` : ""}`, id: `${key}-status`, role: "status" },
    entry ? entry.text : "");
}

// one labelled input; save(value) answers or throws; the status beside it says how it went
export function editField(key, label, value, save, attrs = {}) {
  const id = `card-${key}`;
  const input = el("input", { id, value: value ?? "", "data-card-field": key, "aria-describedby": `${id}-status`, ...attrs });
  const status = fieldStatus(id);
  if (said.get(id) && said.get(id).kind === "error") input.setAttribute("aria-invalid", "true");
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && input.tagName === "INPUT") { e.preventDefault(); input.blur(); } });
  input.addEventListener("change", async () => {
    status.className = "field-status"; status.textContent = T.saving;
    try {
      await save(input.value.trim());
      said.set(id, { kind: "ok", text: `✓ ${T.saved}` });
      input.removeAttribute("aria-invalid");
    } catch (e) {
      said.set(id, { kind: "error", text: humanError(e) });
      input.setAttribute("aria-invalid", "true");
    }
    const entry = said.get(id);
    // a live redraw of the card while saving replaced these nodes: say it on the ones shown
    const shown = document.getElementById(`${id}-status`) || status;
    shown.className = `field-status ${entry.kind}`; shown.textContent = entry.text;
    const field = document.getElementById(id);
    if (field && field !== input) {
      if (entry.kind === "error") field.setAttribute("aria-invalid", "true"); else field.removeAttribute("aria-invalid");
    }
  });
  return el("div", { class: "card-field" }, el("label", { for: id }, label), input, status);
}

async function patchCustomer(patch) {
  const customer = state.current.data.customer;
  const card = await api(`/customers/${customer.id}`, { method: "PATCH", body: JSON.stringify(patch) });
  Object.assign(customer, { name: card.name, company: card.company, tags: card.tags, custom_fields: card.custom_fields });
  return card;
}

async function addHandle(kind, value) {
  const customer = state.current.data.customer;
  if (!value || (customer.identities || []).some((i) => i.kind === kind && i.value === value)) return;
  await api(`/customers/${customer.id}/identities`, { method: "POST", body: JSON.stringify({ kind, value }) });
  setTimeout(refreshCard, 0);  // the new handle in the list (once the field is left)
}

export function renderEditor(customer, onDefs) {
  if (fieldDefs === null) {
    fieldDefs = [];
    api("/custom-fields").then((r) => { fieldDefs = r.items || []; onDefs(); }).catch(() => {});
  }
  const first = (kind) => ((customer.identities || []).find((i) => i.kind === kind) || {}).value || "";
  const custom = customer.custom_fields || {};
  const keys = [...new Set([...fieldDefs.map((d) => d.key), ...Object.keys(custom)])];
  const labelOf = (key) => (fieldDefs.find((d) => d.key === key) || {}).label || key;
  return el("form", { class: "card-edit", id: "card-edit", onsubmit: (e) => e.preventDefault() },
    editField("name", T.name, customer.name, (v) => patchCustomer({ name: v })),
    editField("company", T.company, customer.company, (v) => patchCustomer({ company: v || null })),
    editField("email", T.email, first("email"), (v) => addHandle("email", v), { type: "email" }),
    editField("phone", T.phone, first("phone"), (v) => addHandle("phone", v), { type: "tel" }),
    editField("tags", `${T.tags} (${T.tags_hint})`, (customer.tags || []).join(", "),
      (v) => patchCustomer({ tags: v.split(",").map((t) => t.trim()).filter(Boolean) })),
    keys.map((key) => editField(`cf-${key}`, labelOf(key), custom[key] ?? "",
      (v) => patchCustomer({ custom_fields: { [key]: v === "" ? null : v } }))));
}

export function renderNoteForm(customerId, after) {
  const text = el("textarea", { id: "card-note", rows: 2, "aria-describedby": "card-note-status" });
  const status = fieldStatus("card-note");
  const submit = async (e) => {
    e.preventDefault();
    if (!text.value.trim()) { status.className = "field-status error"; status.textContent = T.empty_reply; text.focus(); return; }
    try {
      await api("/notes", { method: "POST", body: JSON.stringify({ customer_id: customerId, text: text.value.trim() }) });
      said.set("card-note", { kind: "ok", text: `✓ ${T.saved}` });
      text.value = "";
    } catch (err) { said.set("card-note", { kind: "error", text: humanError(err) }); }
    status.className = `field-status ${said.get("card-note").kind}`; status.textContent = said.get("card-note").text;
    after();
  };
  return el("form", { class: "card-add note-form", onsubmit: submit },
    el("label", { for: "card-note" }, T.add_note_card), text,
    el("div", { class: "card-add-row" }, el("button", { type: "submit", "data-action": "card-note" }, T.add_note), status));
}

export function renderDealForm(customerId, stages, currency, after) {
  const title = el("input", { id: "new-deal-title", required: true });
  const amount = el("input", { id: "new-deal-amount", type: "number", min: "0", step: "0.01" });
  const stage = el("select", { id: "new-deal-stage" }, stages.map((s) => el("option", { value: s.key }, s.name)));
  const status = fieldStatus("new-deal");
  const submit = async (e) => {
    e.preventDefault();
    try {
      await api("/deals", { method: "POST", body: JSON.stringify({ customer_id: customerId, title: title.value.trim(),
        stage: stage.value, amount: amount.value === "" ? null : amount.value, currency }) });
      said.set("new-deal", { kind: "ok", text: `✓ ${T.saved}` });
    } catch (err) { said.set("new-deal", { kind: "error", text: humanError(err) }); }
    status.className = `field-status ${said.get("new-deal").kind}`; status.textContent = said.get("new-deal").text;
    after();
  };
  return el("details", { class: "card-add deal-form" }, el("summary", {}, `+ ${T.new_deal}`),
    el("form", { onsubmit: submit },
      el("label", { for: "new-deal-title" }, T.deal_title), title,
      el("label", { for: "new-deal-amount" }, `${T.amount} (${currency})`), amount,
      el("label", { for: "new-deal-stage" }, T.stage), stage,
      el("div", { class: "card-add-row" }, el("button", { type: "submit", "data-action": "create-deal" }, T.create_deal), status)));
}
