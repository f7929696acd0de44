// Ward view: renders the ward snapshot the server streams (Server-Sent Events, polling as a
// fallback). No framework and no build step; every server string goes through esc().
"use strict";

const SEVERITY_RANK = { emergency: 4, urgent: 3, low_medium: 2, technical: 1 };
const SEVERITY_LABEL = { emergency: "Emergency", urgent: "Urgent", low_medium: "Low–medium", technical: "Technical" };
const RULE_LABEL = {
  news2_aggregate: "NEWS2 aggregate", news2_single_parameter: "NEWS2 single parameter",
  model_risk: "Model risk", data_gap: "No data",
};
const URGENT_RISK = 0.6; // the model_risk rule's urgent level, drawn on the sparkline
const STALE_MS = 3600 * 1000;

const $ = (id) => document.getElementById(id);
const cards = new Map(); // patient_id -> {el, html}
let me = { user: "", role: "viewer", may_acknowledge: false, csrf: "" }; // the signed-in user, from /api/me
const sending = new Set(); // alert ids with a POST in flight

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function clock(ms) {
  if (!ms) return "–";
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

function fmt(value, digits) {
  return value === undefined || value === null ? "–" : Number(value).toFixed(digits);
}

function news2Band(p) {
  if (p.news2 === null || p.news2 === undefined) return "";
  if (p.news2 >= 7) return "high";
  if (p.news2 >= 5 || p.news2_single3) return "medium";
  return "";
}

function tile(p, key, label, value, unit, scoreKey, wide) {
  const score = (p.news2_scores || {})[scoreKey || key];
  const ts = (p.vitals_ts_ms || {})[key];
  const stale = ts && p.ts_ms - ts > STALE_MS ? " stale" : "";
  const cls = score ? ` s${score}` : "";
  return `<div class="v${cls}${stale}${wide ? " wide" : ""}" data-vital="${key}"><div class="k">${label}</div>` +
    `<div><span class="val">${value}</span>${unit ? `<span class="u">${unit}</span>` : ""}</div></div>`;
}

function sparkline(history) {
  if (!history || history.length < 2) return `<svg class="spark" viewBox="0 0 100 40" preserveAspectRatio="none"></svg>`;
  const n = history.length;
  const pts = history.map(([, r], i) => `${((i / (n - 1)) * 100).toFixed(2)},${(39 - r * 38).toFixed(2)}`);
  const thr = (39 - URGENT_RISK * 38).toFixed(2);
  return `<svg class="spark" viewBox="0 0 100 40" preserveAspectRatio="none" role="img" aria-label="risk trend">` +
    `<line class="thr" x1="0" x2="100" y1="${thr}" y2="${thr}" vector-effect="non-scaling-stroke"/>` +
    `<polygon class="area" points="0,40 ${pts.join(" ")} 100,40"/>` +
    `<polyline class="line" points="${pts.join(" ")}" vector-effect="non-scaling-stroke"/></svg>`;
}

function alertItem(p, a) {
  const sev = esc(a.severity);
  let action;
  if (a.acknowledged) action = `<span class="ack-done">✓ Acknowledged</span>`;
  else if (a.ack_pending || sending.has(a.alert_id)) action = `<button class="ack" disabled>Acknowledging…</button>`;
  else if (!me.may_acknowledge) action = `<span class="ack-none" title="only clinicians acknowledge">open</span>`;
  else action = `<button class="ack" data-patient="${esc(p.patient_id)}" data-alert="${esc(a.alert_id)}">Acknowledge</button>`;
  return `<li class="alert sev-${sev}${a.acknowledged ? " acked" : ""}" data-alert-id="${esc(a.alert_id)}">` +
    `<span class="pill sev-${sev}">${esc(SEVERITY_LABEL[a.severity] || a.severity)}</span>` +
    `<div class="head"><span class="rule">${esc(RULE_LABEL[a.rule] || a.rule)}</span> · ` +
    `<span class="when">since ${clock(a.raised_ts_ms)}</span></div>${action}<div class="why">${esc(a.reason)}</div></li>`;
}

function topSeverity(p) {
  let best = "";
  for (const a of p.alerts) if (!a.acknowledged && (SEVERITY_RANK[a.severity] || 0) > (SEVERITY_RANK[best] || 0)) best = a.severity;
  return best;
}

function cardHtml(p) {
  const v = p.vitals || {};
  const band = news2Band(p);
  const bp = v.sbp !== undefined ? `${fmt(v.sbp, 0)}/${fmt(v.dbp, 0)}` : "–";
  const o2 = v.on_oxygen === undefined ? "–" : v.on_oxygen ? "O₂" : "Air";
  return `<div class="card-head"><div><div class="pid">${esc(p.patient_id)}</div>` +
    `<div class="seen">last reading ${clock(p.ts_ms)}</div></div>` +
    `<div class="scores"><span class="risk">risk <b>${p.risk === null ? "–" : Math.round(p.risk * 100) + "%"}</b></span>` +
    `<span class="news2 ${band}" title="NEWS2 aggregate score">NEWS2 ${p.news2 ?? "–"}</span></div></div>` +
    `<div class="vitals">` +
    tile(p, "hr", "HR", fmt(v.hr, 0), "bpm") + tile(p, "rr", "RR", fmt(v.rr, 0), "/min") +
    tile(p, "spo2", "SpO₂", fmt(v.spo2, 0), "%") + tile(p, "temp", "Temp", fmt(v.temp, 1), "°C") +
    tile(p, "sbp", "BP", bp, "mmHg", "sbp", true) + tile(p, "on_oxygen", "O₂", o2, "") +
    tile(p, "acvpu", "ACVPU", esc(v.acvpu ?? "–"), "") +
    `</div>${sparkline(p.history)}<div class="spark-lbl"><span title="${esc(p.model || "")}">risk, last ${p.history.length} scores</span><span>urgent ≥ ${URGENT_RISK * 100}%</span></div>` +
    (p.alerts.length ? `<ul class="alerts">${p.alerts.map((a) => alertItem(p, a)).join("")}</ul>` : "");
}

function render(ward) {
  const grid = $("patients");
  $("empty").hidden = ward.patients.length > 0;
  $("count-patients").textContent = ward.patients.length;
  for (const sev of Object.keys(SEVERITY_RANK)) $(`count-${sev}`).textContent = (ward.open_alerts || {})[sev] || 0;
  setConnection(ward.connected ? "live" : "down", ward.connected ? "Live" : "Kafka unreachable");
  const seen = new Set();
  ward.patients.forEach((p, index) => {
    seen.add(p.patient_id);
    let entry = cards.get(p.patient_id);
    if (!entry) {
      const el = document.createElement("article");
      el.dataset.patientId = p.patient_id;
      entry = { el, html: "" };
      cards.set(p.patient_id, entry);
    }
    const html = cardHtml(p);
    if (html !== entry.html) { entry.el.innerHTML = html; entry.html = html; }
    const sev = topSeverity(p);
    entry.el.className = `card${sev ? " sev-" + sev : ""}`;
    if (grid.children[index + 1] !== entry.el) grid.insertBefore(entry.el, grid.children[index + 1] || null);
  });
  for (const [id, entry] of cards) if (!seen.has(id)) { entry.el.remove(); cards.delete(id); }
  $("recent").innerHTML = (ward.recent || []).slice(0, 25).map((e) =>
    `<li><span class="st ${esc(e.status)}">${esc(e.status)}</span> · ${esc(e.patient_id)} · ` +
    `${esc(SEVERITY_LABEL[e.severity] || e.severity)} <span class="when">${clock(e.ts_ms)}</span><br>` +
    `<span class="when">${esc(RULE_LABEL[e.rule] || e.rule)}</span></li>`).join("");
}

function setConnection(state, text) {
  const el = $("conn");
  el.dataset.state = state;
  el.textContent = text;
}

async function acknowledge(button) {
  const alertId = button.dataset.alert;
  sending.add(alertId);
  button.disabled = true;
  button.textContent = "Acknowledging…";
  try {
    // The server names the signed-in user; the CSRF token proves the request comes from this page.
    const response = await fetch("/api/acknowledge", {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf },
      body: JSON.stringify({ patient_id: button.dataset.patient, alert_id: alertId }),
    });
    if (response.status === 401) { location.assign("/login"); return; }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.error || response.statusText);
    }
  } catch (err) {
    button.disabled = false;
    button.textContent = "Retry";
    button.title = `Not acknowledged: ${err.message}`;
  } finally {
    sending.delete(alertId);
  }
}

function poll() {
  fetch("/api/ward").then((r) => { if (r.status === 401) location.assign("/login"); return r.json(); }).then(render)
    .catch(() => setConnection("down", "Reconnecting…"))
    .finally(() => setTimeout(poll, 2000));
}

function connect() {
  if (!window.EventSource) { poll(); return; }
  const source = new EventSource("/api/events");
  source.addEventListener("ward", (e) => render(JSON.parse(e.data)));
  source.onerror = () => setConnection("down", "Reconnecting…"); // EventSource retries by itself
}

document.addEventListener("click", (e) => {
  const button = e.target.closest("button.ack");
  if (button && !button.disabled) acknowledge(button);
});
async function signOut() {
  const response = await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": me.csrf } });
  location.assign(response.redirected ? response.url : "/login");
}

async function start() {
  const response = await fetch("/api/me");
  if (!response.ok) { location.assign("/login"); return; }
  me = await response.json();
  $("me").textContent = `${me.user} · ${me.role}`;
  $("signout").addEventListener("click", signOut);
  connect();
}

start();
