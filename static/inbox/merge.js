// Merge suggestions (issue 8): a view in the left pane; the open suggestions queue in the
// middle pane; Review shows the preview's field conflicts (a radio per field), Merge accepts
// with the choices. The card gets an Unmerge button when merges went into the customer.
import { T, api, el, toast } from "../common.js";
import { ICONS, fmt, fullTime, showError } from "./format.js";
import { loadList } from "./list.js";
import { MERGE_VIEW, bulkEl, listEl, state } from "./state.js";
import { openConversation } from "./thread.js";
import { refreshCounts, renderViews, selectView } from "./views.js";

export function mergeViewItem() {
  const n = state.mergeCount;
  return el("button", { class: `view${state.view === MERGE_VIEW ? " active" : ""}`, "data-view": MERGE_VIEW,
                        type: "button", onclick: () => selectView(MERGE_VIEW) },
    el("span", { class: "label" }, `⇄ ${T.merge_suggestions}`),
    el("span", { class: `count${n ? "" : " zero"}`, "data-count": MERGE_VIEW }, n ? String(n) : ""));
}

export async function loadMergeCount() {
  try {
    const page = await api("/merge-suggestions?limit=100");
    const n = page.items.length + (page.next_cursor ? 1 : 0);
    if (n !== state.mergeCount) { state.mergeCount = n; renderViews(); }
    return page;
  } catch (e) { return null; }
}

const customerLabel = (c) => el("div", { class: "merge-who" },
  el("b", {}, c.name || "—"), " ",
  el("span", { class: "handles" }, (c.identities || []).map((i) => `${ICONS[i.kind] || "•"} ${i.value}`).join(", ")));

function reasonText(r) {
  const parts = [r.kind || r.type || r.reason, r.handle].filter(Boolean);
  return parts.length ? parts.join(": ") : JSON.stringify(r);
}

export async function loadSuggestions() {
  bulkEl.hidden = true;
  let page;
  try { page = await api("/merge-suggestions?limit=100"); } catch (e) { showError(e); return; }
  if (state.view !== MERGE_VIEW) return;
  state.mergeCount = page.items.length + (page.next_cursor ? 1 : 0);
  renderViews();
  const rows = page.items.map(renderSuggestion);
  if (!rows.length) rows.push(el("p", { class: "empty" }, T.no_suggestions));
  listEl.replaceChildren(el("h3", { class: "merge-title" }, T.merge_suggestions), ...rows);
}

function renderSuggestion(s) {
  const review = el("div", { class: "merge-review", hidden: true });
  const reject = async () => {
    try { await api(`/merge-suggestions/${s.id}/reject`, { method: "POST", body: JSON.stringify({}) }); }
    catch (e) { showError(e); }
    await loadSuggestions();
  };
  const open = async () => {
    if (!review.hidden) { review.hidden = true; return; }
    try { review.replaceChildren(await renderReview(s)); review.hidden = false; } catch (e) { showError(e); }
  };
  return el("div", { class: "suggestion", "data-suggestion": s.id },
    el("div", { class: "merge-pair" }, customerLabel(s.customer), el("div", { class: "merge-and" }, "⇄"), customerLabel(s.other_customer)),
    el("div", { class: "merge-reasons" },
      el("span", { class: "score", title: T.score }, `${T.score}: ${s.score}`),
      (s.reasons || []).map((r) => el("span", { class: "tag" }, reasonText(r)))),
    el("div", { class: "merge-buttons" },
      el("button", { type: "button", "data-action": "reject", onclick: reject }, T.reject),
      el("button", { type: "button", "data-action": "review", class: "primary", onclick: open }, T.review)),
    review);
}

async function renderReview(s, keepId = s.customer.id) {
  // the agent picks the survivor (the suggestion's first customer unless changed); the other
  // is merged into it, conflicts read "this" = the survivor
  const keep = keepId === s.other_customer.id ? s.other_customer : s.customer;
  const other = keep === s.customer ? s.other_customer : s.customer;
  const preview = await api(`/customers/${keep.id}/merge/preview`, { method: "POST", body: JSON.stringify({ other_id: other.id }) });
  const show = (v) => (v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const conflicts = preview.conflicts.map((c) => el("fieldset", { class: "conflict", "data-field": c.field },
    el("legend", {}, c.field),
    ["this", "other"].map((side) => el("label", { class: "choice" },
      el("input", { type: "radio", name: `merge-${s.id}-${c.field}`, value: side, checked: side === "this", "data-side": side }),
      " ", show(c[side]), " ", el("span", { class: "who" }, `(${(side === "this" ? keep : other).name || "—"})`)))));
  const moves = Object.entries(preview.moves || {}).filter(([, n]) => n).map(([k, n]) => `${k}: ${n}`).join(", ");
  const reason = el("input", { type: "text", class: "merge-reason", placeholder: T.merge_reason, "aria-label": T.merge_reason, maxLength: 2000 });
  const button = el("button", { type: "button", class: "primary", "data-action": "merge" }, T.merge);
  const survivor = el("fieldset", { class: "survivor" }, el("legend", {}, T.keep_customer),
    [s.customer, s.other_customer].map((c) => el("label", { class: "choice" },
      el("input", { type: "radio", name: `merge-${s.id}-keep`, value: c.id, checked: c.id === keep.id, "data-keep": c.id,
        onchange: async () => { try { form.replaceWith(await renderReview(s, c.id)); } catch (e) { showError(e); } } }),
      " ", customerLabel(c))));
  const form = el("div", { class: "merge-form" }, survivor,
    el("div", { class: "merge-into" }, fmt(T.merge_into, { other: other.name || "—", keep: keep.name || "—" })),
    conflicts.length ? conflicts : el("div", { class: "muted" }, T.no_conflicts),
    moves ? el("div", { class: "muted" }, `${T.moves}: ${moves}`) : null,
    reason, button);
  button.addEventListener("click", async () => {
    const choose = {};
    form.querySelectorAll("fieldset.conflict").forEach((fs) => {
      const picked = fs.querySelector("input[type=radio]:checked");
      if (picked) choose[fs.dataset.field] = picked.value;
    });
    button.disabled = true;
    try {
      await api(`/merge-suggestions/${s.id}/accept`, { method: "POST",
        body: JSON.stringify({ keep: keep.id, choose, reason: reason.value.trim() }) });
      toast(T.merged);
    } catch (e) { showError(e); button.disabled = false; return; }
    await loadSuggestions();
  });
  return form;
}

export function renderMerges(customerId) {
  // the timeline's card has no merges: ask the CRM card, then offer Unmerge for the latest one
  const holder = el("div", { class: "card-merges", "data-customer": customerId });
  api(`/customers/${customerId}`).then((full) => {
    const merged = (full.merges || []).filter((m) => m.target_id === customerId && m.status === "merged");
    if (!merged.length) return;
    const button = el("button", { type: "button", class: "unmerge", "data-action": "unmerge", onclick: async () => {
      button.disabled = true;
      try {
        await api(`/customers/${customerId}/unmerge`, { method: "POST", body: JSON.stringify({}) });
        toast(T.unmerged);
      } catch (e) { showError(e); button.disabled = false; return; }
      if (state.current) await openConversation(state.current.id);
      refreshCounts();
      if (state.view === MERGE_VIEW) loadSuggestions(); else loadList().catch(() => {});
    } }, T.unmerge);
    holder.replaceChildren(el("h4", {}, T.merges),
      ...merged.map((m) => el("div", { class: "line merge-line" }, fmt(T.merged_from, { id: m.source_id }), " · ", fullTime(m.created_at))),
      button);
  }).catch(() => {});
  return holder;
}
