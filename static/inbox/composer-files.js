// Files attached to a reply: uploaded on pick (multipart POST /uploads), shown as chips
// (uploading…, then the size; × removes), sent as upload tokens with the reply.
import { T, csrf, el, toast } from "../common.js";
import { updateRules } from "./composer-rules.js";
import { fmt, showError } from "./format.js";
import { BOOT } from "./state.js";

function paperclipIcon() {
  // an inline SVG (an emoji paperclip needs a colour-emoji font the machine may not have)
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: "16", height: "16", fill: "none",
    stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "aria-hidden": "true" }))
    svg.setAttribute(k, v);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M21 12.5l-8.5 8.5a6 6 0 0 1-8.5-8.5l9-9a4 4 0 0 1 5.7 5.7l-9 9a2 2 0 0 1-2.9-2.9l8.5-8.5");
  svg.append(path);
  return svg;
}

export function megabytes(bytes) {
  const mb = bytes / 1024 / 1024;
  return mb >= 10 ? String(Math.round(mb)) : mb.toFixed(1).replace(/\.0$/, "");
}

function fileSize(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${Math.max(1, Math.ceil(bytes / 1024))} KB`;
}

async function uploadFile(file) {
  // multipart: no JSON Content-Type header, the browser sets the boundary
  const form = new FormData();
  form.append("file", file);
  const response = await fetch("/api/v1/uploads", {
    method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf }, body: form });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) { const error = new Error(body.message || response.statusText); error.status = response.status; throw error; }
  return body;
}

// the composer's file input, attach button and chips (into `c`)
export function buildFileParts(c) {
  c.cur.uploads = [];
  c.fileInput = el("input", { type: "file", id: "composer-file", multiple: true, hidden: true,
    "aria-label": T.attach_files });
  c.attachButton = el("button", { type: "button", id: "composer-attach", class: "attach",
    title: T.attach_files, "aria-label": T.attach_files,
    onclick: () => c.fileInput.click() }, paperclipIcon(), el("span", {}, T.attach));
  c.chips = el("div", { class: "chips", id: "composer-chips" });
  c.fileInput.addEventListener("change", () => { const files = [...c.fileInput.files]; c.fileInput.value = ""; addFiles(c, files); });
}

export function renderChips(c) {
  const { cur } = c;
  const reply = cur.mode === "reply";
  c.chips.hidden = !reply || !cur.uploads.length;
  c.chips.replaceChildren(...cur.uploads.map((u) => el("span", {
    class: `chip ${u.token ? "ready" : "uploading"}`, "data-filename": u.name, title: u.name },
    el("span", { class: "name" }, u.name),
    el("span", { class: "size" }, u.token ? fileSize(u.size) : T.uploading),
    el("button", { type: "button", class: "remove", title: T.remove, "aria-label": `${T.remove} ${u.name}`,
      onclick: () => { cur.uploads = cur.uploads.filter((x) => x !== u); renderChips(c); updateRules(c); } }, "×"))));
}

async function addFiles(c, files) {
  const { cur } = c;
  for (const file of files) {
    // too large: said in MB before a byte goes up
    if (BOOT.max_upload_bytes && file.size > BOOT.max_upload_bytes) {
      toast(fmt(T.file_too_large, { name: file.name, size: megabytes(file.size), max: megabytes(BOOT.max_upload_bytes) }), 8000);
      continue;
    }
    const entry = { name: file.name, size: file.size, token: null };
    cur.uploads.push(entry);
    renderChips(c); updateRules(c);
    try {
      const result = await uploadFile(file);
      Object.assign(entry, { token: result.upload_token, size: result.size, name: result.filename });
    } catch (e) {
      cur.uploads = cur.uploads.filter((x) => x !== entry);
      showError(Object.assign(new Error(`${file.name}: ${e.message}`), { status: e.status }));
    }
    renderChips(c); updateRules(c);
  }
}
