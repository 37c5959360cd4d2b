// pygnc ground station page: one WebSocket (/ws) of JSON messages (ground/station/model.py,
// MESSAGES), columnar series kept here and drawn with uPlot; the ground track on a canvas
// over the Natural Earth land outline.  No network beyond this server.
"use strict";

const GAP_FACTOR = 3.0;       // as model.GAP_FACTOR: a spacing this many times the usual is a gap
const MAX_ROWS = 50000;       // rows kept per series in the page (oldest dropped)
const REDRAW_MS = 250;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];
// Each partner has its own colour and its own dash, on every plot (after the sixth, both repeat).
const DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3], [4, 4], [14, 4]];
const NOT_OK_ALPHA = 0.35;    // a partner's estimates that are not ok: its colour, faint and thin
const BAND = "rgba(214, 39, 40, 0.12)";   // orbit and attitude plots: spans not ok, shaded

const S = {                   // what the page holds
  timeScale: "utc", orbit: null, attitude: null, formation: {}, residuals: {}, orbits: {},
  rows: {}, peers: [], status: null, files: [], dirty: true,
};
window.__station = { messages: 0, byType: {}, rowsReceived: 0, connected: false, redraws: 0 };
window.__stationState = S;    // for tests and the console

const $ = (id) => document.getElementById(id);
const fmt = (v, d) => (v === null || v === undefined || !isFinite(v)) ? "–" : Number(v).toFixed(d);

function utcText(t) {
  if (t === null || t === undefined || !isFinite(t)) return "–";
  if (S.timeScale !== "utc") return "SC " + t.toFixed(1) + " s";
  return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

// Time-axis labels: 24-hour UTC with seconds, the date on the first tick and where the day
// changes (uPlot's own labels are a 12-hour clock without seconds).
function utcAxisValues(u, splits) {
  let day = null;
  return splits.map((t) => {
    if (t === null || t === undefined || !isFinite(t)) return null;
    const iso = new Date(t * 1000).toISOString(), d = Math.floor(t / 86400);
    const text = iso.slice(11, 19) + (d !== day ? "\n" + iso.slice(0, 10) : "");
    day = d;
    return text;
  });
}

// Numeric axis labels with as many decimals as the tick step needs: uPlot's own keep at
// most 3, so ticks 0.0101 and 0.0102 both read "0.01" (a right axis of m/s repeated its
// labels).  A log axis: each value to 3 significant digits.
function decimalsFor(step) {
  if (!(step > 0) || !isFinite(step)) return 0;
  for (let d = 0; d <= 12; d++) {
    const x = step * 10 ** d;
    if (Math.abs(x - Math.round(x)) < 1e-6 * Math.max(1, x)) return d;
  }
  return 12;
}
const numberText = (v, opts) => v.toLocaleString("en-US", opts);
function numAxisValues(u, splits, axisIdx, foundSpace, foundIncr) {
  const d = decimalsFor(foundIncr);
  return splits.map((v) => (v === null || v === undefined || !isFinite(v)) ? null
    : numberText(v, { minimumFractionDigits: d, maximumFractionDigits: d }));
}
function logAxisValues(u, splits) {
  return splits.map((v) => (v === null || v === undefined || !isFinite(v) || v <= 0) ? null
    : numberText(v, { maximumSignificantDigits: 3 }));
}

// A y axis as wide as its widest tick label (at least uPlot's 50 px): its fixed 50 px let a
// six-character label run into the axis's unit.  (Called again by uPlot after the labels change; from the third
// call of one layout it keeps the size it has, so the layout settles.)
function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let widest = 0;
  u.ctx.font = axis.font[0];
  for (const v of values || []) if (v !== null && v !== undefined) widest = Math.max(widest, u.ctx.measureText(String(v)).width);
  // (never under uPlot's 50 px: the first time label, centred on the plot's left edge,
  // spills over this axis)
  return Math.max(50, Math.ceil(axis.ticks.size + axis.gap + widest / devicePixelRatio + 4));
}
const yAxis = (opts, log) => Object.assign({ size: axisSize, values: log ? logAxisValues : numAxisValues }, opts || {});

// A received note's text: the flight record keeps the first 64 bytes of a longer note and
// ends it with "…" (model.py marks such notes "cut"), so a cut text is shown to its last
// whole word, with the ellipsis.
function noteText(n) {
  let text = String(n.text === null || n.text === undefined ? "" : n.text);
  if (!n.cut) return text;
  if (text.endsWith("…")) text = text.slice(0, -1);
  const space = text.search(/\s\S*$/);
  return (space > 0 ? text.slice(0, space) : text).replace(/[\s,;:.-]+$/, "") + " …";
}

// ------------------------------------------------------------------------- series
function rowCount(series) {  // rows that are data (not gap rows)
  if (!series || !series.t_sc_s) return 0;
  let n = 0;
  for (const v of series.t_sc_s) if (v !== null) n++;
  return n;
}

function lastIndex(series) {
  if (!series || !series.t_sc_s) return -1;
  for (let i = series.t_sc_s.length - 1; i >= 0; i--) if (series.t_sc_s[i] !== null) return i;
  return -1;
}

function typicalDt(t) {
  const n = t.length, d = [];
  for (let i = Math.max(1, n - 50); i < n; i++) {
    const x = t[i] - t[i - 1];
    if (x > 0 && isFinite(x)) d.push(x);
  }
  if (!d.length) return null;
  d.sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)];
}

function appendSeries(old, add) {
  if (!old || !old.t_unix_s || old.t_unix_s.length === 0) return add;
  const keys = Object.keys(old);
  const tOld = old.t_unix_s, tNew = add.t_unix_s;
  if (!tNew || !tNew.length) return old;
  const dt = typicalDt(tOld), jump = tNew[0] - tOld[tOld.length - 1];
  if (dt !== null && jump > GAP_FACTOR * dt) {          // a gap between two updates: keep it a gap
    for (const k of keys) old[k].push(k === "t_unix_s" ? tOld[tOld.length - 1] + jump / 2 : null);
  }
  for (const k of keys) {
    const a = add[k] || new Array(tNew.length).fill(null);
    for (const v of a) old[k].push(v);
    if (old[k].length > MAX_ROWS) old[k].splice(0, old[k].length - MAX_ROWS);
  }
  return old;
}

function applySeries(series, append, rows) {
  if (rows) S.rows = rows;    // the source's own counts: what the page shows
  if (!series) return;
  for (const g of ["orbit", "attitude"]) {
    if (!series[g]) continue;
    window.__station.rowsReceived += rowCount(series[g]);
    S[g] = append ? appendSeries(S[g], series[g]) : series[g];
  }
  for (const g of ["formation", "residuals", "orbits"]) {
    if (!series[g]) continue;
    if (!append) S[g] = {};
    for (const [peer, s] of Object.entries(series[g])) {
      window.__station.rowsReceived += rowCount(s);
      S[g][peer] = append ? appendSeries(S[g][peer], s) : s;
    }
  }
  // Partners in the order of their names, each keeping its colour and dash once given.
  const seen = new Set(S.peers);
  const all = [...Object.keys(S.formation), ...Object.keys(S.residuals), ...Object.keys(S.orbits)];
  if (!append) S.peers = [...new Set(all)].sort();
  else for (const p of [...new Set(all)].sort()) if (!seen.has(p)) S.peers.push(p);
  S.dirty = true;
}

function peerIndex(p) { const i = S.peers.indexOf(p); return i < 0 ? 0 : i; }
function rgba(hexColor, alpha) {
  const n = parseInt(hexColor.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// ------------------------------------------------------------------------- messages
const handlers = {
  hello(m) {
    $("source-kind").textContent = m.source.kind + (m.source.live ? " (live)" : "");
    $("source-name").textContent = m.source.name;
    S.timeScale = m.time_scale;
    $("time-scale").textContent = m.time_scale === "utc" ? "" : "times: spacecraft clock (no clock map yet)";
    S.files = m.files || [];
    drawFiles();
    for (const p of Object.values(plots)) p.reset();
  },
  files(m) { S.files = m.files || []; drawFiles(); },
  snapshot(m) {
    if (m.time_scale && m.time_scale !== S.timeScale) {   // a clock map arrived: times are UTC now
      S.timeScale = m.time_scale;
      $("time-scale").textContent = m.time_scale === "utc" ? "" : "times: spacecraft clock (no clock map yet)";
      for (const p of Object.values(plots)) p.reset();
    }
    applySeries(m.series, false, m.rows);
  },
  append(m) { applySeries(m.series, true, m.rows); },
  status(m) { S.status = m.status; drawStatus(); },
  source(m) {
    const el = $("source-state");
    el.textContent = m.state + (m.detail ? ": " + m.detail : "");
    el.className = "state " + m.state;
  },
};

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => { setConn("live", "connected"); window.__station.connected = true; };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    window.__station.messages++;
    window.__station.byType[m.type] = (window.__station.byType[m.type] || 0) + 1;
    const h = handlers[m.type];
    if (h) h(m);
  };
  ws.onclose = () => {
    window.__station.connected = false;
    setConn("closed", "disconnected: retrying");
    setTimeout(connect, 2000);
  };
}

function setConn(cls, text) { const el = $("conn-state"); el.className = "state " + cls; el.textContent = text; }

// ------------------------------------------------------------------------- plots
// Shade the spans [t0, t1] of u.__bands (the estimate not ok there) behind the series.
function drawBands(u) {
  const bands = u.__bands || [];
  if (!bands.length) return;
  const g = u.ctx, { left, top, width, height } = u.bbox;
  g.save();
  g.fillStyle = BAND;
  for (const [t0, t1] of bands) {
    const x0 = Math.max(left, u.valToPos(t0, "x", true)), x1 = Math.min(left + width, u.valToPos(t1, "x", true));
    if (x1 >= x0) g.fillRect(x0, top, Math.max(2, x1 - x0), height);
  }
  g.restore();
}

function makePlot(id, title, series, axes, scales) {
  const el = $(id);
  let u = null;
  const log = Object.values(scales || {}).some((s) => s.distr === 3);
  const yAxes = axes.map((a) => yAxis(a, log));
  const rightAxis = axes.some((a) => a.side === 1);
  const build = (data) => {
    const w = Math.max(320, el.clientWidth || 540);
    const utc = S.timeScale === "utc";
    u = new uPlot({
      title, width: w, height: 190,
      // room on the right for half the last time label (none is cut at the canvas' edge)
      padding: [null, rightAxis ? null : 32, null, null],
      scales: Object.assign({ x: { time: utc,       // one point: a minute either side, not years
                                   range: (u, lo, hi) => lo === hi ? [lo - 60, hi + 60] : [lo, hi] } },
                            scales || {}),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),   // axes in UTC, whatever the browser's zone
      series: [utc ? { label: "UTC", value: (u, v) => utcText(v) } : { label: "SC s" }].concat(series()),
      // time labels ("00:53:30") at least 66 px apart: uPlot's 50 px let them touch
      axes: [utc ? { values: utcAxisValues, size: 54, space: 66 } : { space: 66 }].concat(yAxes), legend: { live: true },
      hooks: { drawClear: [drawBands] },
    }, data, el);
  };
  return {
    set(data, labels, bands) {
      if (u && labels && labels !== u.__labels) { u.destroy(); u = null; }
      if (!u) { build(data); u.__labels = labels; u.__bands = bands || []; }
      else { u.__bands = bands || []; u.setData(data); }
    },
    reset() { if (u) { u.destroy(); u = null; } },
    get u() { return u; },
  };
}

const line = (label, i, extra) => Object.assign({ label, stroke: COLORS[i % COLORS.length], width: 1.2 }, extra || {});
const dashed = (label, i) => line(label, i, { dash: [4, 4], width: 1 });
// A partner's series: its colour and dash; "ok" estimates bold, the others faint and thin.
const peerLine = (p, ok, what) => {
  const j = peerIndex(p), c = COLORS[j % COLORS.length];
  return { label: p + (what ? " " + what : "") + (ok ? "" : " (not ok)"), stroke: ok ? c : rgba(c, NOT_OK_ALPHA),
           dash: DASHES[j % DASHES.length], width: ok ? 2 : 1 };
};
// A partner's kept orbit k (range-only): points of its colour, their size growing with k's rank.
const keptPoints = (p, k) => {
  const c = COLORS[peerIndex(p) % COLORS.length];
  return { label: `${p} kept orbit ${k}`, stroke: c, fill: rgba(c, 0.5), width: 0, paths: () => null,
           points: { show: true, size: 6, width: 1 } };
};
const col = (s, k) => (s && s[k]) ? s[k] : [];
const times = (s) => col(s, "t_unix_s");
// uPlot.join leaves undefined where a series has no row at a time (drawn across) and null
// is a gap (a break in the line): both must stay what they are, never become NaN.
const missing = (v) => v === null || v === undefined;
const scaled = (a, f) => a.map((v) => missing(v) ? v : v * f);
const plus = (a, b, f) => a.map((v, i) => missing(v) ? v : missing(b[i]) ? null : v + f * b[i]);
const positive = (a) => a.map((v) => (missing(v) || v > 0) ? v : null);   // for a log axis

const plots = {   // window.__stationPlots (below): each plot's uPlot as .u, for tests and the console
  orbitSigma: makePlot("plot-orbit-sigma", "3σ position (m, left) and velocity (m/s, right)",
    () => [line("3σ position m", 0, { scale: "m" }), line("3σ velocity m/s", 1, { scale: "m/s" })],
    [{ scale: "m", label: "m" }, { scale: "m/s", side: 1, label: "m/s", grid: { show: false } }]),
  attQ: makePlot("plot-att-q", "quaternion body → GCRS",
    () => ["qw", "qx", "qy", "qz"].map((k, i) => line(k, i)), [{}]),
  attSigma: makePlot("plot-att-sigma", "3σ attitude error about body axes (deg, log)",
    () => ["x", "y", "z"].map((k, i) => line("3σ " + k, i)), [{ label: "deg" }], { y: { distr: 3, log: 10 } }),
  attRate: makePlot("plot-att-rate", "body rate (deg/s)",
    () => ["x", "y", "z"].map((k, i) => line(k, i)), [{ label: "deg/s" }]),
  attBias: makePlot("plot-att-bias", "gyro bias with ±3σ (deg/s)",
    () => ["x", "y", "z"].flatMap((k, i) => [line(k, i), dashed(k + "+3σ", i), dashed(k + "−3σ", i)]),
    [{ label: "deg/s" }]),
  peerDist: makePlot("plot-peer-dist", "distance to each partner |Δr| (m); dots: each kept orbit",
    () => peerSeries(true), [{ label: "m" }]),
  peerRadial: makePlot("plot-peer-radial", "radial, RTN of our orbit (m); dots: each kept orbit",
    () => peerSeries(true), [{ label: "m" }]),
  peerAlong: makePlot("plot-peer-along", "along-track (m); dots: each kept orbit",
    () => peerSeries(true), [{ label: "m" }]),
  peerCross: makePlot("plot-peer-cross", "cross-track (m); dots: each kept orbit",
    () => peerSeries(true), [{ label: "m" }]),
  peerLos: makePlot("plot-peer-los", "3σ along the line of sight (m)",
    () => peerSeries(false), [{ label: "m" }]),
  residuals: makePlot("plot-residuals", "range residuals: measured − |Δr| − bias (m)",
    () => Object.keys(S.residuals).map((p) => {
      const c = COLORS[peerIndex(p) % COLORS.length];
      return { label: p, stroke: c, fill: c, width: 0, paths: () => null, points: { show: true, size: 4 } };
    }), [{ label: "m" }]),
};

// The formation plots' series: per partner its estimates ok and not ok, then (with kept) its
// kept orbits.
function keptIndexes(p) {
  const s = S.orbits[p];
  if (!s || !s.index) return [];
  return [...new Set(s.index.filter((k) => k !== null))].sort((a, b) => a - b);
}
function peerSeries(kept) {
  const out = [];
  for (const p of Object.keys(S.formation)) out.push(peerLine(p, true), peerLine(p, false));
  if (kept) for (const p of Object.keys(S.formation)) for (const k of keptIndexes(p)) out.push(keptPoints(p, k));
  return out;
}

window.__stationPlots = plots;

function joined(group, key) {   // per-peer series on one x axis (missing: undefined, gaps stay null)
  const peers = Object.keys(S[group]);
  if (!peers.length) return [[]];
  const tables = peers.map((p) => [times(S[group][p]), col(S[group][p], key)]);
  return uPlot.join(tables, tables.map(() => [1]));
}

// The values whose estimate is "ok" (want true) or not - another word, or none recorded (want
// false); rows without a value (gaps, acquiring partners' placeholders) stay as they are.
const byQuality = (vals, words, want) => vals.map((v, i) => missing(v) ? v : ((words[i] === "ok") === want ? v : null));

// The formation plot of column *key* (scaled by *f*): per partner ok / not ok, then (kept) each
// kept orbit's *key* as dots, all on one x axis.
function peerData(key, f, kept) {
  const tables = [];
  for (const p of Object.keys(S.formation)) {
    const s = S.formation[p], v = scaled(col(s, key), f), q = col(s, "quality");
    tables.push([times(s), byQuality(v, q, true)], [times(s), byQuality(v, q, false)]);
  }
  if (kept) for (const p of Object.keys(S.formation)) for (const k of keptIndexes(p)) {
    const s = S.orbits[p], t = [], v = [];
    col(s, "index").forEach((i, r) => { if (i === k) { t.push(s.t_unix_s[r]); v.push(s[key][r]); } });
    tables.push([t, v]);
  }
  return tables.length ? uPlot.join(tables, tables.map(() => [1])) : [[]];
}

// Spans [t0, t1] of a series whose rows have a quality word other than "ok" (shaded; gap rows
// and rows without a word are neither).
function notOkSpans(s) {
  const out = [], t = times(s), q = col(s, "quality");
  let start = null, end = null;
  for (let i = 0; i < t.length; i++) {
    if (t[i] === null || q[i] === null || q[i] === undefined) continue;
    if (q[i] !== "ok") {
      if (start === null) start = t[i];
      end = t[i];
    } else if (start !== null) { out.push([start, end]); start = null; }
  }
  if (start !== null) out.push([start, end]);
  return out;
}

function drawPlots() {
  const o = S.orbit, a = S.attitude;
  if (o) plots.orbitSigma.set([times(o), scaled(col(o, "sigma_r_m"), 3), scaled(col(o, "sigma_v_m_s"), 3)], undefined, notOkSpans(o));
  if (a) {
    const bands = notOkSpans(a);
    plots.attQ.set([times(a), col(a, "qw"), col(a, "qx"), col(a, "qy"), col(a, "qz")], undefined, bands);
    plots.attSigma.set([times(a)].concat(["x", "y", "z"].map((k) => positive(scaled(col(a, "sigma_att_" + k + "_deg"), 3)))), undefined, bands);
    plots.attRate.set([times(a)].concat(["x", "y", "z"].map((k) => col(a, "rate_" + k + "_deg_s"))), undefined, bands);
    plots.attBias.set([times(a)].concat(["x", "y", "z"].flatMap((k) => {
      const b = col(a, "bias_" + k + "_deg_s"), s = col(a, "sigma_bias_" + k + "_deg_s");
      return [b, plus(b, s, 3), plus(b, s, -3)];
    })), undefined, bands);
  }
  const peers = Object.keys(S.formation), resPeers = Object.keys(S.residuals).join(",");
  if (peers.length) {   // a new partner, or a new kept orbit, rebuilds the plots with more series
    const labels = peers.map((p) => p + ":" + keptIndexes(p).join("+")).join(",");
    plots.peerDist.set(peerData("dist_m", 1, true), labels);
    plots.peerRadial.set(peerData("radial_m", 1, true), labels);
    plots.peerAlong.set(peerData("along_m", 1, true), labels);
    plots.peerCross.set(peerData("cross_m", 1, true), labels);
    plots.peerLos.set(peerData("sigma_los_m", 3, false), peers.join(","));
  }
  if (resPeers) plots.residuals.set(joined("residuals", "residual_m"), resPeers);
}

// ------------------------------------------------------------------------- map
let land = null, landCanvas = null;
function loadLand() {
  fetch("/static/vendor/land-110m.json").then((r) => r.json()).then((topo) => {
    land = topojson.feature(topo, topo.objects.land);
    landCanvas = null;
    S.dirty = true;
  }).catch(() => { land = null; });
}

function project(lon, lat, w, h) { return [(lon + 180) / 360 * w, (90 - lat) / 180 * h]; }

function drawLand(w, h) {
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const g = c.getContext("2d");
  g.strokeStyle = "rgba(255,255,255,0.6)"; g.lineWidth = 0.5;
  for (let lon = -180; lon <= 180; lon += 30) { const [x] = project(lon, 0, w, h); g.beginPath(); g.moveTo(x, 0); g.lineTo(x, h); g.stroke(); }
  for (let lat = -60; lat <= 60; lat += 30) { const [, y] = project(0, lat, w, h); g.beginPath(); g.moveTo(0, y); g.lineTo(w, y); g.stroke(); }
  if (land) {
    g.fillStyle = "#e9e4d4"; g.strokeStyle = "#9a927a"; g.lineWidth = 0.6;
    const feats = land.type === "FeatureCollection" ? land.features : [land];
    for (const f of feats) {
      const geom = f.geometry;
      const polys = geom.type === "Polygon" ? [geom.coordinates] : geom.type === "MultiPolygon" ? geom.coordinates : [];
      for (const poly of polys) {
        g.beginPath();
        for (const ring of poly) {
          let prev = null;
          ring.forEach(([lon, lat], i) => {
            const [x, y] = project(lon, lat, w, h);
            if (i === 0 || (prev !== null && Math.abs(lon - prev) > 180)) g.moveTo(x, y); else g.lineTo(x, y);
            prev = lon;
          });
        }
        g.fill("evenodd"); g.stroke();
      }
    }
  }
  return c;
}

function drawMap() {
  const cv = $("map"), g = cv.getContext("2d"), w = cv.width, h = cv.height;
  if (!landCanvas) landCanvas = drawLand(w, h);
  g.clearRect(0, 0, w, h);
  g.drawImage(landCanvas, 0, 0);
  const o = S.orbit;
  if (!o || !o.lat_deg) return;
  g.strokeStyle = "#c0392b"; g.lineWidth = 1.4;
  g.beginPath();
  let pen = false, prevLon = null;
  for (let i = 0; i < o.lat_deg.length; i++) {
    const lat = o.lat_deg[i], lon = o.lon_deg[i];
    if (lat === null || lon === null) { pen = false; prevLon = null; continue; }   // a gap stays a gap
    const [x, y] = project(lon, lat, w, h);
    if (!pen || (prevLon !== null && Math.abs(lon - prevLon) > 180)) g.moveTo(x, y); else g.lineTo(x, y);
    pen = true; prevLon = lon;
  }
  g.stroke();
  const i = lastIndex(o);
  if (i >= 0 && o.lat_deg[i] !== null) {
    const [x, y] = project(o.lon_deg[i], o.lat_deg[i], w, h);
    g.fillStyle = "#c0392b"; g.beginPath(); g.arc(x, y, 5, 0, 2 * Math.PI); g.fill();
    g.strokeStyle = "#fff"; g.lineWidth = 1.5; g.stroke();
  }
}

// ------------------------------------------------------------------------- text
const rowsOf = (g, p) => {   // the source's count (a snapshot's series may be thinned)
  const r = S.rows || {};
  if (p === undefined) return r[g] !== undefined ? r[g] : null;
  const by = (r.by_peer || {})[g] || {};
  return by[p] !== undefined ? by[p] : null;
};

function qualityChip(q) {
  const w = q || "quality not recorded";
  return `<span class="q ${w === "ok" ? "ok" : "bad"}">${w}</span>`;
}

function keptText(p) {   // the kept orbits of a partner's latest set (range-only)
  const s = S.orbits[p];
  const i = lastIndex(s);
  if (i < 0) return "";
  const t = s.t_unix_s[i], parts = [];
  for (let r = 0; r < s.t_unix_s.length; r++) {
    if (s.t_unix_s[r] !== t || s.index[r] === null) continue;
    parts.push(`<span class="kept" data-index="${s.index[r]}">#${s.index[r]} w ${fmt(s.weight[r], 3)}: ` +
      `|Δr| ${fmt(s.dist_m[r], 0)} m, RTN ${fmt(s.radial_m[r], 0)} / ${fmt(s.along_m[r], 0)} / ` +
      `${fmt(s.cross_m[r], 0)} m, 3σ ${fmt(3 * s.sigma_dr_m[r], 0)} m</span>`);
  }
  return parts.length ? `<br>kept orbits at ${utcText(t)}: ` + parts.join("; ") : "";
}

function drawNow() {
  const o = S.orbit, a = S.attitude;
  let tLast = null, scLast = null;
  const io = lastIndex(o);
  $("orbit-points").textContent = rowsOf("orbit") ?? rowCount(o);
  if (io >= 0) {
    $("orbit-lat").textContent = fmt(o.lat_deg[io], 2);
    $("orbit-lon").textContent = fmt(o.lon_deg[io], 2);
    $("orbit-alt").textContent = fmt(o.alt_km[io], 1);
    $("orbit-sigma").textContent = fmt(3 * o.sigma_r_m[io], 1);
    $("orbit-fixes").textContent = fmt(o.n_fixes_used[io], 0);
    tLast = o.t_unix_s[io]; scLast = o.t_sc_s[io];
  }
  const ia = lastIndex(a);
  $("att-points").textContent = rowsOf("attitude") ?? rowCount(a);
  if (ia >= 0) {
    $("att-q").textContent = ["qw", "qx", "qy", "qz"].map((k) => fmt(a[k][ia], 4)).join(", ");
    $("att-sigma").textContent = ["x", "y", "z"].map((k) => fmt(3 * a["sigma_att_" + k + "_deg"][ia], 2)).join(" / ");
    if (tLast === null || a.t_unix_s[ia] > tLast) { tLast = a.t_unix_s[ia]; scLast = a.t_sc_s[ia]; }
  }
  const ul = $("peer-list");
  ul.textContent = "";
  for (const [p, s] of Object.entries(S.formation)) {
    const i = lastIndex(s);
    if (i < 0) continue;
    const li = document.createElement("li"), q = s.quality ? s.quality[i] : null, j = peerIndex(p);
    li.id = "peer-" + p;
    li.dataset.peer = p;
    li.dataset.quality = q === null || q === undefined ? "" : q;
    const count = rowsOf("formation", p) ?? rowCount(s);
    const swatch = `<span class="swatch" style="border-top: 3px ${j % DASHES.length ? "dashed" : "solid"} ` +
      `${COLORS[j % COLORS.length]}"></span>`;
    li.innerHTML = q === "acquiring"
      ? `${swatch}partner <b>${p}</b> (${qualityChip(q)}): no estimate yet, its acquisition window is collecting ` +
        `ranges (the prior's placeholder is not drawn) · ${count} estimates`
      : `${swatch}partner <b>${p}</b> (${qualityChip(q)}): |Δr| <b class="dist">${fmt(s.dist_m[i], 1)}</b> m, ` +
        `RTN <b class="rtn">${fmt(s.radial_m[i], 1)} / ${fmt(s.along_m[i], 1)} / ${fmt(s.cross_m[i], 1)}</b> m, ` +
        `3σ line of sight <b class="los">${fmt(3 * s.sigma_los_m[i], 1)}</b> m, ` +
        `range bias <b>${fmt(s.range_bias_m[i], 2)}</b> m · ${count} estimates` +
        (s.n_orbits && s.n_orbits[i] > 1 ? keptText(p) : "");
    ul.appendChild(li);
    if (tLast === null || s.t_unix_s[i] > tLast) { tLast = s.t_unix_s[i]; scLast = s.t_sc_s[i]; }
  }
  let nres = 0;
  for (const s of Object.values(S.residuals)) nres += rowCount(s);
  $("res-points").textContent = rowsOf("residuals") ?? nres;
  $("last-utc").textContent = utcText(tLast);
  $("last-sc").textContent = fmt(scLast, 1);
}

function chip(parent, text, cls) {
  const s = document.createElement("span");
  s.textContent = text;
  if (cls) s.className = cls;
  parent.appendChild(s);
}

function drawStatus() {
  const st = S.status;
  if (!st) return;
  const q = $("quality"); q.textContent = "";
  for (const [k, v] of Object.entries(st.quality || {})) chip(q, k + ": " + v, v === "ok" ? "ok" : "bad");
  const f = $("flags"); f.textContent = "";
  for (const name of st.flags || []) chip(f, name, /failed|missing|no_valid|limited/.test(name) ? "bad" : "");
  $("tasks").style.display = (st.tasks || []).length ? "" : "none";   // a replay has no task table
  const tb = $("tasks").querySelector("tbody"); tb.textContent = "";
  for (const t of st.tasks || []) {
    const tr = document.createElement("tr");
    tr.className = t.state;
    for (const v of [t.name, t.state, t.restarts]) { const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
    tb.appendChild(tr);
  }
  const cb = $("counters").querySelector("tbody"); cb.textContent = "";
  for (const [k, v] of Object.entries(st.counters || {})) {
    const tr = document.createElement("tr");
    tr.dataset.counter = k;
    const a = document.createElement("td"), b = document.createElement("td");
    a.textContent = k; b.textContent = (typeof v === "number" && !Number.isInteger(v)) ? v.toFixed(1) : v;
    tr.appendChild(a); tr.appendChild(b); cb.appendChild(tr);
  }
  const pl = $("problems"); pl.textContent = "";
  const problems = (st.problems || []).concat(st.gaps || []);
  for (const text of problems) {
    const li = document.createElement("li");
    li.textContent = text;
    pl.appendChild(li);
  }
  const more = (st.problems_more || 0) + (st.gaps_more || 0);
  if (more) {
    const li = document.createElement("li");
    li.className = "more";
    li.textContent = `… and ${more} more (python -m ground decode lists them all)`;
    pl.appendChild(li);
  }
  $("problems-panel").style.display = problems.length ? "" : "none";
  const nl = $("notes"); nl.textContent = "";
  for (const n of (st.notes || []).slice(-20)) {
    const li = document.createElement("li");
    li.textContent = `${n.estimator}: ${noteText(n)} [${n.code}]`;
    if (n.cut) { li.title = `${n.text} (the note as downlinked: cut on board to 64 bytes)`; li.className = "cut"; }
    nl.appendChild(li);
  }
}

function drawFiles() {
  const ul = $("files"); ul.textContent = "";
  for (const name of S.files) {
    const li = document.createElement("li"), a = document.createElement("a");
    a.href = "/files/" + name.split("/").map(encodeURIComponent).join("/");
    a.textContent = name;
    li.appendChild(a); ul.appendChild(li);
  }
}

setInterval(() => {
  if (!S.dirty) return;
  S.dirty = false;
  drawNow();
  drawMap();
  drawPlots();
  window.__station.redraws++;
}, REDRAW_MS);

loadLand();
connect();
