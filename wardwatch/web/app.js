// Ward view: renders the ward snapshot the server streams (Server-Sent Events, polling as a
// fallback). No framework and no build step; every server string goes through esc().
"use strict";

const SEVERITY_RANK = { emergency: 4, urgent: 3, low_medium: 2, technical: 1 };
const SEVERITY_LABEL = { emergency: "Emergency", urgent: "Urgent", low_medium: "Low–medium", technical: "Technical" };
const RULE_LABEL = {
  news2_aggregate: "NEWS2 aggregate", news2_single_parameter: "NEWS2 single parameter",
  model_risk: "Model risk", data_gap: "No data",
};
let riskLevels = [{ severity: "urgent", raise_at: 0.6 }]; // the alert rules' risk levels, from the snapshot
let dominant = 0.05; // a contribution at least this large explains the score (inference/records.py DOMINANT)
const STALE_MS = 3600 * 1000;
const EXPLAIN_STALE_MS = 30 * 60 * 1000;
// Inputs as a nurse names them, with units; NEWS2 parameter names; a 4 h change worth naming.
const INPUT = {
  hr: ["HR", "/min"], rr: ["RR", "/min"], spo2: ["SpO₂", "%"], temp: ["Temp", " °C"], sbp: ["SBP", " mmHg"],
  dbp: ["DBP", " mmHg"], bp: ["BP", " mmHg"], on_oxygen: ["Oxygen", ""], acvpu: ["Consciousness", ""],
};
const NEWS2_NAME = { rr: "RR", spo2: "SpO₂", on_oxygen: "O₂", sbp: "SBP", hr: "HR", acvpu: "ACVPU", temp: "Temp" };
const NOTABLE = { hr: 10, rr: 4, spo2: 3, temp: 0.6, sbp: 15, dbp: 10 };

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
    `<div><span class="val">${value}</span>${unit ? `<span class="u">${unit}</span>` : ""}</div>${trendSub(p, key)}</div>`;
}

function sparkline(history) {
  if (!history || history.length < 2) return `<svg class="spark" viewBox="0 0 100 40" preserveAspectRatio="none"></svg>`;
  const n = history.length;
  const pts = history.map(([, r], i) => `${((i / (n - 1)) * 100).toFixed(2)},${(39 - r * 38).toFixed(2)}`);
  const thr = (39 - alertAt() * 38).toFixed(2);
  return `<svg class="spark" viewBox="0 0 100 40" preserveAspectRatio="none" role="img" aria-label="risk trend">` +
    `<line class="thr" x1="0" x2="100" y1="${thr}" y2="${thr}" vector-effect="non-scaling-stroke"/>` +
    `<polygon class="area" points="0,40 ${pts.join(" ")} 100,40"/>` +
    `<polyline class="line" points="${pts.join(" ")}" vector-effect="non-scaling-stroke"/></svg>`;
}

function alertAt() {
  return riskLevels.length ? riskLevels[0].raise_at : 0.6;
}

function num(value) {
  const v = Number(value);
  return Math.abs(v) < 50 && v !== Math.round(v) ? v.toFixed(1) : v.toFixed(0);
}

function inputText(name, values) {
  const [label, unit] = INPUT[name] || [name, ""];
  if (name === "bp") {
    const s = values.sbp, d = values.dbp;
    return s === null || s === undefined ? "BP" : d === null || d === undefined ? `SBP ${num(s)}` : `BP ${num(s)}/${num(d)}`;
  }
  if (name === "on_oxygen") return "on oxygen";
  if (name === "acvpu") return "not alert";
  const v = values[name];
  return v === null || v === undefined ? label : `${label} ${num(v)}${unit}`;
}

function pts(c) {
  return `${c > 0 ? "+" : "−"}${Math.abs(Math.round(c * 100))}`;
}

// The model's reasons in words: the dominant inputs, each with the direction it pushes the risk.
function modelWords(e) {
  const top = (e.top || []).filter(([, c]) => Math.abs(c) >= dominant);
  if (!top.length) return "no single input stands out";
  return top.map(([n, c]) => `${inputText(n, e.values || {})} ${c > 0 ? "raises" : "lowers"} risk ${pts(c)} pts`).join(", ");
}

function news2Words(scores) {
  const named = Object.entries(scores || {}).filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1]);
  return named.map(([n, s]) => `${NEWS2_NAME[n] || n} ${s}`).join(", ");
}

// The notable 4 h changes of the vitals, biggest first relative to what counts as notable.
function changeWords(e, horizon) {
  const h = horizon === "1h" ? 0 : 1;
  const out = [];
  for (const [n, limit] of Object.entries(NOTABLE)) {
    const c = ((e.trend || {})[n] || [])[h];
    if (c !== null && c !== undefined && Math.abs(c) >= limit) out.push([Math.abs(c) / limit, `${INPUT[n][0]} ${c > 0 ? "+" : "−"}${num(Math.abs(c))}`]);
  }
  return out.sort((a, b) => b[0] - a[0]).map(([, t]) => t);
}

function whyText(a) {
  const e = a.explain;
  if (!e) return "";
  const parts = [];
  if (e.top) parts.push(`Model: ${modelWords(e)}`);
  const n2 = news2Words(e.news2_scores);
  if (e.news2 !== undefined) parts.push(`NEWS2 ${e.news2}${n2 ? ` (${n2})` : ""}`);
  const ch = changeWords(e, "4h");
  if (ch.length) parts.push(`in 4 h: ${ch.join(", ")}`);
  return parts.join(" · ");
}

function trendSub(p, key) {
  const e = p.explain;
  if (!e || !e.trend) return "";
  const names = key === "sbp" ? ["sbp"] : [key];
  for (const n of names) {
    const [h1, h4] = e.trend[n] || [];
    const pick = h4 !== null && h4 !== undefined ? [h4, "4h"] : h1 !== null && h1 !== undefined ? [h1, "1h"] : null;
    if (!pick) continue;
    const [c, h] = pick;
    const notable = Math.abs(c) >= (NOTABLE[n] || Infinity);
    const arrow = c > 0 ? "▲" : c < 0 ? "▼" : "·";
    return `<div class="tr${notable ? " notable" : ""}" data-trend="${n}" title="change over ${h}">${arrow} ${c > 0 ? "+" : c < 0 ? "−" : ""}${num(Math.abs(c))} /${h}</div>`;
  }
  return "";
}

function explainHtml(p) {
  const e = p.explain;
  if (!e) return `<div class="explain none">No explanation yet</div>`;
  const old = p.ts_ms - e.ts_ms > EXPLAIN_STALE_MS ? ` <span class="when">as of ${clock(e.ts_ms)}</span>` : "";
  // Contributions under half a point would read as "+0": they are not shown.
  const chips = (e.top || []).filter(([, c]) => Math.abs(c) >= 0.005).map(([n, c]) => {
    const dom = Math.abs(c) >= dominant;
    return `<span class="chip ${c > 0 ? "up" : "down"}${dom ? " dom" : ""}" data-input="${esc(n)}" title="risk with ${esc(n)} at a normal value: ${pts(-c)} pts">` +
      `${esc(inputText(n, e.values || {}))} <b>${pts(c)}</b></span>`;
  }).join("");
  const none = (e.top || []).some(([, c]) => Math.abs(c) >= dominant) ? "" : `<span class="nodom">no single input stands out</span>`;
  return `<div class="explain"><span class="lbl">Why</span>${chips}${none}${old}</div>`;
}

function riskHtml(p) {
  if (p.risk === null || p.risk === undefined) return `<span class="risk">risk <b>–</b></span>`;
  const at = alertAt();
  const r4 = p.explain && p.explain.trend && p.explain.trend.risk ? p.explain.trend.risk[1] : null;
  let base = "";
  if (r4 !== null && r4 !== undefined) {
    const then = Math.max(0, Math.min(1, p.explain.risk - r4));
    base = `<span class="base" title="the patient's own risk 4 h earlier">4 h ago ${Math.round(then * 100)}%</span>`;
  }
  const over = p.risk >= at ? " over" : "";
  return `<span class="risk${over}" title="model risk; alert at ${Math.round(at * 100)}%">risk <b>${Math.round(p.risk * 100)}%</b>` +
    `<span class="thr">alert ≥ ${Math.round(at * 100)}%</span>${base}</span>`;
}

function alertItem(p, a) {
  const sev = esc(a.severity);
  let action;
  if (a.acknowledged) action = `<span class="ack-done">✓ Acknowledged</span>`;
  else if (a.ack_pending || sending.has(a.alert_id)) action = `<button class="ack" disabled>Acknowledging…</button>`;
  else if (!me.may_acknowledge) action = `<span class="ack-none" title="only clinicians acknowledge">open</span>`;
  else action = `<button class="ack" data-patient="${esc(p.patient_id)}" data-alert="${esc(a.alert_id)}">Acknowledge</button>`;
  const why = whyText(a);
  return `<li class="alert sev-${sev}${a.acknowledged ? " acked" : ""}" data-alert-id="${esc(a.alert_id)}">` +
    `<div class="alert-top"><span class="pill sev-${sev}">${esc(SEVERITY_LABEL[a.severity] || a.severity)}</span>` +
    `<span class="rule">${esc(RULE_LABEL[a.rule] || a.rule)}</span><span class="when">since ${clock(a.raised_ts_ms)}</span></div>` +
    (why ? `<div class="why-words">${esc(why)}</div>` : "") +
    `<div class="alert-foot"><span class="why">${esc(a.reason)}</span>${action}</div></li>`;
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
    `<div class="scores">${riskHtml(p)}` +
    `<span class="news2 ${band}" title="NEWS2 aggregate score">NEWS2 ${p.news2 ?? "–"}</span></div></div>` +
    `<div class="vitals">` +
    tile(p, "hr", "HR", fmt(v.hr, 0), "bpm") + tile(p, "rr", "RR", fmt(v.rr, 0), "/min") +
    tile(p, "spo2", "SpO₂", fmt(v.spo2, 0), "%") + tile(p, "temp", "Temp", fmt(v.temp, 1), "°C") +
    tile(p, "sbp", "BP", bp, "mmHg", "sbp", true) + tile(p, "on_oxygen", "O₂", o2, "") +
    tile(p, "acvpu", "ACVPU", esc(v.acvpu ?? "–"), "") +
    `</div>${explainHtml(p)}${sparkline(p.history)}<div class="spark-lbl"><span title="${esc(p.model || "")}">risk, last ${p.history.length} scores</span><span>alert ≥ ${Math.round(alertAt() * 100)}%</span></div>` +
    (p.alerts.length ? `<ul class="alerts">${p.alerts.map((a) => alertItem(p, a)).join("")}</ul>` : "");
}

function render(ward) {
  const grid = $("patients");
  if (Array.isArray(ward.risk_levels) && ward.risk_levels.length) riskLevels = ward.risk_levels;
  if (typeof ward.dominant === "number") dominant = ward.dominant;
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
