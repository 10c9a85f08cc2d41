// The card's deals: stage (a select), amount and expected close edited inline through
// PATCH /deals/<id>; other agents' edits arrive as `deal.updated` (same as the sales board).
// Until the pipeline's stages arrive, the stages are the server's defaults (the page's boot data).
import { T, api, el } from "../common.js";
import { showError } from "./format.js";
import { BOOT, state } from "./state.js";

const dealState = { stages: null, live: false };
const saving = new Map();  // deal id → the last save in line

// the pipeline's stages as known now (the server's defaults until the pipeline answers)
export function currentStages() {
  return dealState.stages || BOOT.deal_stages.map((key) => ({ key, name: (T.stage_names || {})[key] || key }));
}

export function renderDeals(deals) {
  if (!dealState.stages) {
    dealState.stages = BOOT.deal_stages.map((key) => ({ key, name: (T.stage_names || {})[key] || key }));
    api("/pipeline/stages").then((r) => { if (r.items.length) { dealState.stages = r.items; refreshDeals(); } }).catch(() => {});
  }
  if (!dealState.live && state.socket) {
    dealState.live = true;
    state.socket.on("deal.updated", (event) => {
      const deal = state.current && state.current.data.card.deals.find((d) => d.id === event.data.id);
      if (deal) { Object.assign(deal, event.data); refreshDeals(); }
    });
  }
  // one deal's saves go one after the other: a later edit never loses to an earlier one
  const save = (deal, patch) => {
    const chain = (saving.get(deal.id) || Promise.resolve()).then(async () => {
      try { Object.assign(deal, await api(`/deals/${deal.id}`, { method: "PATCH", body: JSON.stringify(patch) })); }
      catch (e) { showError(e); }
      if (saving.get(deal.id) === chain) { saving.delete(deal.id); refreshDeals(true); }  // the saved values, or the old ones back
    });
    saving.set(deal.id, chain);
    return chain;
  };
  return el("div", { id: "card-deals" }, deals.map((d) => {
    const stages = dealState.stages.some((s) => s.key === d.stage) ? dealState.stages : [...dealState.stages, { key: d.stage, name: d.stage }];
    return el("div", { class: "line deal-line", "data-deal": d.id },
      el("div", {}, d.title),
      el("select", { "aria-label": `${T.stage}: ${d.title}`, "data-field": "stage", onchange: (e) => save(d, { stage: e.target.value }) },
        stages.map((s) => el("option", { value: s.key, selected: s.key === d.stage }, s.name))),
      " ",
      el("input", { type: "number", min: "0", step: "0.01", value: d.amount ?? "", "aria-label": `${T.amount}: ${d.title}`, "data-field": "amount",
                    style: "width: 7em", onchange: (e) => save(d, { amount: e.target.value === "" ? null : e.target.value }) }),
      ` ${d.currency || ""} `,
      el("input", { type: "date", value: d.expected_close || "", "aria-label": `${T.expected_close}: ${d.title}`, title: T.expected_close, "data-field": "expected_close",
                    onchange: (e) => save(d, { expected_close: e.target.value || null }) }));
  }));
}

function refreshDeals(force = false) {
  const node = document.getElementById("card-deals");
  if (!node || !state.current) return;
  if (!force && node.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;  // mid-edit
  node.replaceWith(renderDeals(state.current.data.card.deals));
}
