/**
 * The dashboard page served at `/`: one self-contained HTML document — styles, the inlined uPlot
 * library and a small script — that polls `dashboard.json` once a second and draws link state,
 * streams and throughput per service over the last minutes (one line per service, added and
 * dropped as the services change), recent events and limits.
 *
 * Invariants: the page loads nothing from anywhere but the admin endpoint itself (no CDN, no web
 * font, not even a favicon request), so it works on an isolated host and under a strict CSP.
 * Everything it shows is text set with `textContent`: an event's text (which may carry a peer's
 * address) is never interpreted as HTML.
 *
 * @since 0.1.0
 */
import { UPLOT_CSS, UPLOT_JS } from "./uplot.ts"

const STYLE = `
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --muted: #6e7781; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 16px 24px; }
header { display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; }
h1 { font-size: 20px; margin: 0; }
h2 { font-size: 15px; margin: 20px 0 6px; }
.muted { color: var(--muted); }
.badge { padding: 2px 10px; border-radius: 10px; color: #fff; font-weight: 600; }
.ok { background: var(--ok); } .bad { background: var(--bad); }
table { border-collapse: collapse; min-width: 480px; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid var(--line); }
td.n, th.n { text-align: right; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 8px 32px; }
#events { list-style: none; padding: 0; margin: 0; max-height: 260px; overflow-y: auto; font-family: ui-monospace, monospace; font-size: 12px; }
#events li.LinkDown, #events li.ClientRefused, #events li.LimitReached { color: var(--bad); }
#limits { font-family: ui-monospace, monospace; font-size: 12px; }
`

const SCRIPT = `
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var since = 0;
  var samples = [];
  var MAX = 900;
  var charts = null;
  var names = [];

  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }
  function age(s) {
    s = Math.floor(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  function row(tbody, cells, numeric) {
    var tr = document.createElement("tr");
    cells.forEach(function (cell, i) {
      var td = document.createElement("td");
      td.textContent = cell;
      if (numeric.indexOf(i) >= 0) td.className = "n";
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  var COLORS = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e"];
  function makeCharts() {
    var width = Math.max(320, Math.min(760, $("charts").clientWidth / (window.innerWidth > 1100 ? 2 : 1) - 16));
    // The links up, as a grey step line under the streams: a link going down shows as a dip to 0.
    var streamSeries = [{}, { label: "links up", stroke: "#8c959f", width: 2, dash: [2, 3], paths: uPlot.paths.stepped({ align: 1 }) }]
      .concat(names.map(function (name, i) {
        return { label: name, stroke: COLORS[i % COLORS.length], width: 2 };
      }));
    var byteSeries = [{}];
    names.forEach(function (name, i) {
      var color = COLORS[i % COLORS.length];
      byteSeries.push({ label: name + " up", stroke: color, width: 2, value: function (u, v) { return v == null ? "–" : bytes(v) + "/s"; } });
      byteSeries.push({ label: name + " down", stroke: color, dash: [6, 4], width: 2, value: function (u, v) { return v == null ? "–" : bytes(v) + "/s"; } });
    });
    var axes = function (format) {
      return [{}, { size: 84, values: function (u, vals) { return vals.map(format); } }];
    };
    charts = {
      streams: new uPlot({ title: "links up and streams open", width: width, height: 220, series: streamSeries,
        axes: axes(function (v) { return String(v); }), scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } } },
        [[], []].concat(names.map(function () { return []; })), $("streams-chart")),
      bytes: new uPlot({ title: "throughput", width: width, height: 220, series: byteSeries,
        axes: axes(function (v) { return bytes(v) + "/s"; }), scales: { y: { range: function (u, min, max) { return [0, Math.max(1024, max)]; } } } },
        [[]].concat(byteSeries.slice(1).map(function () { return []; })), $("bytes-chart"))
    };
  }
  function draw() {
    if (charts === null) makeCharts();
    var xs = samples.map(function (s) { return s.t / 1000; });
    charts.streams.setData([xs, samples.map(function (s) { return s.links; })].concat(names.map(function (name) {
      return samples.map(function (s) { return s.streams[name] || 0; });
    })));
    var data = [xs];
    names.forEach(function (name) {
      data.push(samples.map(function (s) { return s.up[name] || 0; }));
      data.push(samples.map(function (s) { return s.down[name] || 0; }));
    });
    charts.bytes.setData(data);
  }

  function render(data) {
    var st = data.status;
    $("role").textContent = "plait " + st.role;
    $("identity").textContent = st.version + " on " + st.runtime + " · pid " + st.pid + " · " +
      (st.upstream ? (st.listen === "none" ? "dials " : st.listen + " → ") + st.upstream : st.listen) + " · up " + age(st.uptimeSeconds) + " · RSS " + bytes(st.process.rssBytes) +
      " · event-loop delay " + (st.process.eventLoopDelaySeconds * 1000).toFixed(1) + " ms";
    var ready = $("ready");
    ready.textContent = st.ready ? "ready" : "not ready";
    ready.className = "badge " + (st.ready ? "ok" : "bad");
    $("reason").textContent = st.ready ? "" : st.reason;
    var state = $("link-state");
    state.textContent = st.links.length > 0 ? "up" : "down";
    state.className = "badge " + (st.links.length > 0 ? "ok" : "bad");
    $("link-count").textContent = st.links.length + (st.links.length === 1 ? " link" : " links");
    var links = $("links"); clear(links);
    st.links.forEach(function (l) {
      row(links, [l.peer, age(l.ageSeconds), l.rttMillis === null ? "–" : l.rttMillis + " ms", String(l.streams), bytes(l.bufferedBytes)], [1, 2, 3, 4]);
    });
    if (st.links.length === 0) row(links, ["no link", "", "", "", ""], []);
    var services = $("services"); clear(services);
    var total = 0;
    st.services.forEach(function (s) {
      total += s.streams;
      row(services, [s.active ? s.name : s.name + " (removed)", s.address, String(s.streams), String(s.opened),
        String(s.reset), bytes(s.bytesUp), bytes(s.bytesDown)], [2, 3, 4, 5, 6]);
    });
    $("streams-now").textContent = String(total);
    var limits = $("limits");
    limits.textContent = Object.keys(st.limits).map(function (k) {
      var v = st.limits[k];
      // As plait status shows them: durations in seconds, windows and buffers in bytes.
      var text = /Millis$/.test(k) ? (v === 0 ? "0 (off)" : v % 1000 === 0 ? v / 1000 + "s" : v + "ms")
        : /Window$|Buffer$/.test(k) ? bytes(v).replace(" ", "") : String(v);
      return k + "=" + text;
    }).join("  ");
    var list = $("events"); clear(list);
    data.events.slice().reverse().forEach(function (e) {
      var li = document.createElement("li");
      li.className = e.kind;
      li.textContent = new Date(e.t).toLocaleTimeString() + "  " + e.text;
      list.appendChild(li);
    });
    if (data.events.length === 0) { var li = document.createElement("li"); li.textContent = "none yet"; list.appendChild(li); }
    var current = st.services.map(function (s) { return s.name; });
    if (current.join() !== names.join()) { names = current; if (charts) { charts.streams.destroy(); charts.bytes.destroy(); charts = null; } }
    data.samples.forEach(function (s) { samples.push(s); since = s.t; });
    if (samples.length > MAX) samples.splice(0, samples.length - MAX);
    draw();
  }

  function poll() {
    fetch("dashboard.json?since=" + since, { cache: "no-store" })
      .then(function (res) {
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.json();
      })
      .then(function (data) { render(data); $("conn").textContent = "live"; })
      .catch(function (e) { $("conn").textContent = "disconnected (" + e.message + ")"; })
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
`

/** `</` inside an inline script or style would end it early. */
const inline = (text: string): string => text.replace(/<\//g, "<\\/")

/** The dashboard page. */
export const page = (): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>plait</title>
<link rel="icon" href="data:,">
<style>${inline(UPLOT_CSS)}</style>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1 id="role">plait</h1>
  <span class="badge" id="ready">…</span>
  <span id="reason" class="muted"></span>
  <span class="muted" id="conn">connecting</span>
</header>
<div class="muted" id="identity"></div>
<div class="grid">
  <section>
    <h2>link <span class="badge" id="link-state">…</span> <span class="muted" id="link-count"></span></h2>
    <table><thead><tr><th>peer</th><th class="n">age</th><th class="n">rtt</th><th class="n">streams</th><th class="n">buffered</th></tr></thead>
    <tbody id="links"></tbody></table>
  </section>
  <section>
    <h2>services · <span id="streams-now">0</span> streams open</h2>
    <table><thead><tr><th>name</th><th>address</th><th class="n">streams</th><th class="n">opened</th><th class="n">reset</th><th class="n">up</th><th class="n">down</th></tr></thead>
    <tbody id="services"></tbody></table>
  </section>
</div>
<div class="grid" id="charts">
  <div id="streams-chart"></div>
  <div id="bytes-chart"></div>
</div>
<div class="grid">
  <section><h2>recent events</h2><ul id="events"></ul></section>
  <section><h2>limits</h2><div id="limits"></div></section>
</div>
<script>${inline(UPLOT_JS)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`
