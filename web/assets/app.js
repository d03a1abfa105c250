// coldchain dashboard: plain JavaScript, no framework, no CDN. Everything
// is read through the gateway's API with the viewer's token; untrusted
// text (dead-letter payloads, notes, party names) is always escaped.
"use strict";

const state = { token: sessionStorage.getItem("coldchain-token") || "", view: null, stream: null };
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const enc = encodeURIComponent;

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h.Authorization = "Bearer " + state.token;
  return h;
}

async function api(path, opts) {
  const o = Object.assign({}, opts || {});
  o.headers = headers(o.headers);
  const resp = await fetch(path, o);
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (!resp.ok) {
    const err = new Error((body && body.error) || resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function when(ts) {
  if (!ts) return "–";
  const d = new Date(ts);
  return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

function age(ts) {
  if (!ts) return "–";
  const s = Math.max(0, (Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 120) return Math.round(s) + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function badge(status) {
  return `<span class="badge ${esc(status)}">${esc(status)}</span>`;
}

function showError(e) {
  const hint = e.status === 401 ? " Paste an API token above (coldchain tokens create)." : "";
  $("#main").innerHTML = `<p class="error">${esc(e.message)}${esc(hint)}</p>`;
}

// ---------------------------------------------------------------- fleet

async function fleet() {
  state.view = { kind: "fleet" };
  const list = await api("/v1/shipments");
  const rows = list.shipments.map((s) => `<tr id="ship-${esc(s.id)}" data-shipment="${esc(s.id)}">
      <td><a href="#/shipment/${enc(s.id)}">${esc(s.id)}</a></td>
      <td class="status">…</td><td class="temp">${s.last_temp_c != null ? esc(s.last_temp_c.toFixed(1)) + " °C" : "–"}</td>
      <td class="age">${esc(age(s.last_reading))}</td><td class="open">…</td><td class="holder">…</td><td>${esc(s.devices)}</td></tr>`);
  $("#main").innerHTML = `<h1>Fleet</h1>
    <table id="fleet"><thead><tr><th>shipment</th><th>status</th><th>temperature</th><th>last reading</th><th>open alerts</th><th>custody holder</th><th>devices</th></tr></thead>
    <tbody>${rows.join("") || '<tr><td colspan="7" class="muted">No shipment you may see has data yet.</td></tr>'}</tbody></table>
    <h2>Latest alerts</h2><ul id="latest" class="muted"><li>Alerts appear here as they happen.</li></ul>`;
  await Promise.all(list.shipments.map((s) => fleetRow(s.id)));
}

async function fleetRow(id) {
  const row = document.getElementById("ship-" + id);
  if (!row) return false;
  try {
    const st = await api(`/v1/shipments/${enc(id)}/status`);
    row.querySelector(".status").innerHTML = badge(st.status);
    row.querySelector(".open").textContent = String(st.open_alerts.length);
    if (st.last_reading && st.last_reading.ts) {
      row.querySelector(".temp").textContent = st.last_reading.temp_c.toFixed(1) + " °C";
      row.querySelector(".age").textContent = age(st.last_reading.ts);
    }
  } catch (e) {
    row.querySelector(".status").innerHTML = '<span class="muted">no readings</span>';
    row.querySelector(".open").textContent = "0";
  }
  try {
    const c = await api(`/v1/shipments/${enc(id)}/custody`);
    row.querySelector(".holder").textContent = c.holder || "–";
  } catch (e) {
    row.querySelector(".holder").textContent = "–";
  }
  return true;
}

// ---------------------------------------------------------------- shipment

async function shipment(id) {
  state.view = { kind: "shipment", id };
  $("#main").innerHTML = `<h1>Shipment ${esc(id)}</h1><div id="cards" class="cards"></div>
    <div class="buttons">
      <button data-download="/v1/shipments/${enc(id)}/proof" data-name="${esc(id)}.bundle.json">Proof bundle</button>
      <button data-download="/v1/shipments/${enc(id)}/epcis" data-name="${esc(id)}.epcis.jsonld">EPCIS 2.0</button>
      <button data-download="/v1/shipments/${enc(id)}/report.pdf" data-name="${esc(id)}.report.pdf">Report (PDF)</button>
    </div>
    <h2>Temperature</h2><svg id="chart" class="chart" viewBox="0 0 1000 320" preserveAspectRatio="none" role="img" aria-label="temperature chart"></svg>
    <p id="chart-note" class="muted"></p>
    <h2>Alerts</h2><div id="alerts"></div>
    <h2>Custody</h2><div id="custody"></div>
    <h2>Anchors</h2><div id="anchors"></div>`;
  await Promise.all([shipmentStatus(id), shipmentAlerts(id), shipmentCustody(id), shipmentAnchors(id)]);
}

async function shipmentStatus(id) {
  let st;
  try {
    st = await api(`/v1/shipments/${enc(id)}/status`);
  } catch (e) {
    $("#cards").innerHTML = `<p class="muted">${esc(e.message)}</p>`;
    return;
  }
  const last = st.last_reading || {};
  const cards = [
    ["status", badge(st.status)],
    ["temperature", last.temp_c != null ? esc(last.temp_c.toFixed(1)) + " °C" : "–"],
    ["last reading", esc(age(last.ts))],
    ["MKT", st.mkt_c != null ? esc(st.mkt_c.toFixed(2)) + " °C" : "–"],
    ["readings", esc(st.readings)],
    ["profile", esc(st.profile) + ` (${esc(st.limits.low)} … ${esc(st.limits.high)} °C)`],
  ];
  if (st.out_of_calibration.length) cards.push(["out of calibration", esc(st.out_of_calibration.join(", "))]);
  if (st.unregistered_devices.length) cards.push(["unregistered", esc(st.unregistered_devices.join(", "))]);
  $("#cards").innerHTML = cards.map(([k, v]) => `<div class="card"><span class="muted">${k}</span><b>${v}</b></div>`).join("");
  await chart(id, st);
}

// chart draws each device's readings (or, for long ranges, the means of
// buckets the history API downsamples to), the band, and alert spans; a
// gap longer than three times the median spacing stays a gap.
async function chart(id, st) {
  const svg = $("#chart");
  const W = 1000, H = 320, L = 44, B = 22, T = 8;
  let pts;
  let note = "";
  const page = await api(`/v1/shipments/${enc(id)}/readings?limit=5000`);
  if (!page.truncated) {
    pts = page.readings.map((r) => ({ d: r.device, t: new Date(r.ts).getTime(), v: r.temp_c }));
  } else {
    const first = new Date(page.shipment.first_reading).getTime(), lastT = new Date(page.shipment.last_reading).getTime();
    const every = Math.max(60, Math.ceil((lastT - first) / 1000 / 800));
    const b = await api(`/v1/shipments/${enc(id)}/readings?every=${every}s&limit=100000`);
    pts = b.buckets.map((x) => ({ d: "mean", t: new Date(x.start).getTime(), v: x.mean, lo: x.min, hi: x.max }));
    note = `Downsampled: the mean of each ${every} s bucket (the history API's min/max/mean).`;
  }
  if (!pts.length) { svg.innerHTML = ""; return; }
  const t0 = Math.min(...pts.map((p) => p.t)), t1 = Math.max(...pts.map((p) => p.t), t0 + 60000);
  const lo = Math.min(st.limits.low, ...pts.map((p) => p.lo ?? p.v)) - 1, hi = Math.max(st.limits.high, ...pts.map((p) => p.hi ?? p.v)) + 1;
  const x = (t) => L + (W - L - 4) * (t - t0) / (t1 - t0);
  const y = (v) => T + (H - T - B) * (hi - v) / (hi - lo);
  const out = [];
  out.push(`<rect class="band" x="${L}" y="${y(st.limits.high)}" width="${W - L - 4}" height="${y(st.limits.low) - y(st.limits.high)}"/>`);
  let al = [];
  try { al = (await api(`/v1/shipments/${enc(id)}/alerts`)).alerts; } catch (e) { /* shown below */ }
  // Warnings first, alarms over them.
  for (const a of [...al].sort((p, q) => (p.severity === "alarm") - (q.severity === "alarm"))) {
    if (a.state === "retracted" || !a.end || a.end <= a.start) continue;
    const end = a.state === "open" ? t1 : new Date(a.end).getTime();
    out.push(`<rect class="${a.severity === "alarm" ? "alarm" : "warn"}" x="${x(new Date(a.start).getTime())}" y="${T}" width="${Math.max(1, x(end) - x(new Date(a.start).getTime()))}" height="${H - T - B}"><title>${esc(a.rule)}</title></rect>`);
  }
  for (let v = Math.ceil(lo); v <= hi; v += Math.max(1, Math.round((hi - lo) / 8))) {
    out.push(`<line class="axis" x1="${L - 4}" x2="${L}" y1="${y(v)}" y2="${y(v)}"/><text x="2" y="${y(v) + 4}">${v} °C</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (t1 - t0) * i / 4;
    out.push(`<text x="${Math.min(W - 90, x(t))}" y="${H - 6}">${esc(new Date(t).toISOString().slice(5, 16).replace("T", " "))}</text>`);
  }
  const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf"];
  const devices = [...new Set(pts.map((p) => p.d))].sort();
  devices.forEach((d, i) => {
    const ps = pts.filter((p) => p.d === d).sort((a, b) => a.t - b.t);
    const gaps = ps.slice(1).map((p, j) => p.t - ps[j].t).sort((a, b) => a - b);
    const limit = 3 * Math.max(1000, gaps.length ? gaps[Math.floor(gaps.length / 2)] : 3600000);
    let dpath = "";
    ps.forEach((p, j) => {
      const move = j === 0 || p.t - ps[j - 1].t > limit;
      dpath += `${move ? "M" : "L"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
    });
    out.push(`<path class="series" stroke="${colours[i % colours.length]}" d="${dpath}"><title>${esc(d)}</title></path>`);
    out.push(`<text x="${L + 6 + i * 200}" y="${T + 12}" fill="${colours[i % colours.length]}">${esc(d)}</text>`);
  });
  out.push(`<rect x="${L}" y="${T}" width="${W - L - 4}" height="${H - T - B}" fill="none" stroke="#999"/>`);
  svg.innerHTML = out.join("");
  $("#chart-note").textContent = (note ? note + " " : "") + `Green: the ${st.profile} band. Red: alarm spans; amber: warning spans. Gaps in the data are not bridged.`;
}

async function shipmentAlerts(id) {
  let al;
  try { al = (await api(`/v1/shipments/${enc(id)}/alerts`)).alerts; } catch (e) { $("#alerts").innerHTML = `<p class="error">${esc(e.message)}</p>`; return; }
  if (!al.length) { $("#alerts").innerHTML = '<p class="muted">No alert on this shipment.</p>'; return; }
  const rows = al.map((a) => {
    const trans = a.transitions.map((t) => `${esc(t.transition)} ${esc(when(t.at))}${t.by ? " by " + esc(t.by) + (t.comment ? ": " + esc(t.comment) : "") : ""}`).join("<br>");
    const ack = a.acknowledged ? '<span class="muted">acknowledged</span>'
      : `<form class="ack" data-alert="${esc(a.id)}"><input name="by" placeholder="who" required maxlength="128"><input name="comment" placeholder="comment" maxlength="1024"><button type="submit">Ack</button></form>`;
    return `<tr data-alert="${esc(a.id)}" data-rule="${esc(a.rule)}"><td>${esc(a.rule)}</td><td>${badge(a.severity)}</td><td>${esc(a.device)}</td><td>${esc(a.state)}</td>
      <td>${esc(when(a.start))}</td><td>${a.peak_c != null ? esc(a.peak_c.toFixed(1)) + " °C" : "–"}</td><td>${trans}</td><td>${ack}</td></tr>`;
  });
  $("#alerts").innerHTML = `<table id="alert-table"><thead><tr><th>rule</th><th>severity</th><th>device</th><th>state</th><th>start</th><th>peak</th><th>transitions</th><th>acknowledge</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

async function shipmentCustody(id) {
  try {
    const c = await api(`/v1/shipments/${enc(id)}/custody`);
    if (!c.custody.length) { $("#custody").innerHTML = '<p class="muted">No handover recorded.</p>'; return; }
    const rows = c.custody.map((p) => `<tr><td>${esc(p.party)}</td><td>${esc(p.site || "in transit")}</td><td>${esc(when(p.from))}</td><td>${esc(p.to ? when(p.to) : "now")}</td><td>${esc(p.seal || "")}</td><td>${esc(p.owner || "")}</td><td>${p.confirmed ? "yes" : "no"}</td></tr>`);
    const failed = c.checks.filter((f) => f.result === "fail").map((f) => `<li class="error">${esc(f.rule)}: ${esc(f.detail)}</li>`);
    $("#custody").innerHTML = `<p>Checks: ${badge(c.status === "failed" ? "alarm" : c.status === "pending" ? "warning" : "ok")} ${esc(c.status)}</p><ul>${failed.join("")}</ul>
      <table><thead><tr><th>held by</th><th>site</th><th>from</th><th>to</th><th>seal</th><th>owner</th><th>confirmed</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
  } catch (e) { $("#custody").innerHTML = `<p class="muted">${esc(e.message)}</p>`; }
}

async function shipmentAnchors(id) {
  try {
    const a = await api(`/v1/shipments/${enc(id)}/anchors`);
    const rows = a.anchors.map((e) => `<tr><td>${esc(e.epoch)}</td><td>${esc(e.size)}</td><td>${badge(e.state === "final" ? "ok" : "warning")} ${esc(e.state)}</td><td><code>${esc(e.tx || "")}</code></td><td>${esc(e.block || "")}</td></tr>`);
    const pending = a.size - (a.anchors.length ? a.anchors[a.anchors.length - 1].size : 0);
    $("#anchors").innerHTML = `<p class="muted">${esc(a.size)} records in the log; ${esc(pending)} wait for the next epoch.</p>
      <table><thead><tr><th>epoch</th><th>records</th><th>state</th><th>transaction</th><th>block</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
  } catch (e) { $("#anchors").innerHTML = `<p class="muted">${esc(e.message)}</p>`; }
}

// ---------------------------------------------------------------- dead letters

async function deadLetters(reason) {
  state.view = { kind: "deadletters" };
  const q = "/v1/deadletters?limit=200" + (reason ? "&reason=" + enc(reason) : "");
  const dl = (await api(q)).dead_letters;
  const rows = dl.map((d) => `<tr><td>${esc(when(d.stored))}</td><td>${esc(d.reason)}</td><td>${esc(d.field || "")}</td><td>${esc(d.detail)}</td><td>${esc(d.source)}</td>
      <td><code>${esc((d.payload || d.payload_base64 || "").slice(0, 200))}</code></td></tr>`);
  $("#main").innerHTML = `<h1>Dead letters</h1>
    <form id="dl-filter"><input name="reason" placeholder="reason, e.g. bad_timestamp" value="${esc(reason || "")}"> <button type="submit">Filter</button></form>
    <p class="muted">Input the gateway refused, with the reason, the field and the original bytes: what a provider fixes in its feed.</p>
    <table id="dl"><thead><tr><th>stored</th><th>reason</th><th>field</th><th>detail</th><th>source</th><th>payload</th></tr></thead>
    <tbody>${rows.join("") || '<tr><td colspan="6" class="muted">None.</td></tr>'}</tbody></table>`;
}

// ---------------------------------------------------------------- live

// stream reads the SSE alert stream with fetch (EventSource cannot send
// the Authorization header), and reconnects after a pause.
async function stream() {
  if (state.stream) state.stream.abort();
  const ctl = new AbortController();
  state.stream = ctl;
  const live = $("#live");
  try {
    const resp = await fetch("/v1/alerts/stream", { headers: headers({ Accept: "text/event-stream" }), signal: ctl.signal });
    if (!resp.ok) throw new Error(resp.statusText);
    live.className = "badge on"; live.textContent = "live";
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
        const data = chunk.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (data) { try { onAlert(JSON.parse(data)); } catch (e) { /* not an alert */ } }
      }
    }
  } catch (e) {
    if (ctl.signal.aborted) return;
  }
  live.className = "badge off"; live.textContent = "offline";
  setTimeout(() => { if (state.stream === ctl) stream(); }, 3000);
}

function onAlert(a) {
  const v = state.view || {};
  if (v.kind === "fleet") {
    const li = document.createElement("li");
    li.innerHTML = `${badge(a.severity)} ${esc(a.transition)} <b>${esc(a.rule)}</b> on <a href="#/shipment/${enc(a.shipment)}">${esc(a.shipment)}</a> ${esc(a.device)} at ${esc(when(a.at))}`;
    const ul = $("#latest");
    if (ul) { if (ul.classList.contains("muted")) { ul.innerHTML = ""; ul.classList.remove("muted"); } ul.prepend(li); }
    fleetRow(a.shipment).then((found) => { if (!found) fleet().catch(showError); });
  } else if (v.kind === "shipment" && v.id === a.shipment) {
    shipmentAlerts(a.shipment);
    shipmentStatus(a.shipment);
  }
}

// ---------------------------------------------------------------- wiring

async function route() {
  const h = location.hash || "#/";
  try {
    if (h.startsWith("#/shipment/")) await shipment(decodeURIComponent(h.slice(11)));
    else if (h.startsWith("#/deadletters")) await deadLetters(new URLSearchParams(h.split("?")[1] || "").get("reason"));
    else await fleet();
  } catch (e) { showError(e); }
}

document.addEventListener("submit", async (ev) => {
  const f = ev.target;
  if (f.id === "token-form") {
    ev.preventDefault();
    state.token = $("#token").value.trim();
    sessionStorage.setItem("coldchain-token", state.token);
    $("#token").value = "";
    stream(); route();
  } else if (f.classList.contains("ack")) {
    ev.preventDefault();
    const data = new FormData(f);
    try {
      await api(`/v1/alerts/${enc(f.dataset.alert)}/ack`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ by: data.get("by"), comment: data.get("comment") || "" }) });
      if (state.view && state.view.kind === "shipment") await shipmentAlerts(state.view.id);
    } catch (e) { f.insertAdjacentHTML("beforeend", ` <span class="error">${esc(e.message)}</span>`); }
  } else if (f.id === "dl-filter") {
    ev.preventDefault();
    location.hash = "#/deadletters?reason=" + enc(new FormData(f).get("reason") || "");
  }
});

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-download]");
  if (!b) return;
  try {
    const resp = await fetch(b.dataset.download, { headers: headers() });
    if (!resp.ok) throw new Error((await resp.text()) || resp.statusText);
    const url = URL.createObjectURL(await resp.blob());
    const a = document.createElement("a");
    a.href = url; a.download = b.dataset.name; document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { b.insertAdjacentHTML("afterend", ` <span class="error">${esc(e.message)}</span>`); }
});

window.addEventListener("hashchange", route);
stream();
route();
