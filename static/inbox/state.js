// The inbox's one state object, the page's boot data and the panes the modules draw into.
// Every module reads and writes `state`; `window.threadline` exposes it (and the socket) to
// the browser tests.
export const BOOT = JSON.parse(document.getElementById("boot").textContent);
export const $ = (id) => document.getElementById(id);
export const viewsEl = $("views"), listEl = $("list"), threadEl = $("thread"), bulkEl = $("bulk");

// the left pane's merge view (the middle pane then shows the suggestions, not conversations)
export const MERGE_VIEW = "merge-suggestions";

export const state = {
  me: null, agents: new Map(), teams: [], channels: new Map(), labels: [], canned: [],
  view: "open", list: [], byId: new Map(), nextCursor: null, counts: {},
  selected: new Set(), cursor: -1, current: null, lastEventId: 0, socket: null,
  viewers: [], notify: localStorage.getItem("tl-notify") === "1",
  mergeCount: 0, totals: {}, offline: false, visitorTyping: new Map(), visitorTypingTimer: null,
};
window.threadline = { state, boot: BOOT };
