// camloc explorer: leaderboard + comparison views over the data block written by pipeline/report/explorer.py.
// Every box drawn here is read from the evaluator's precomputed boxes (tau_boxes.parquet): this script
// never thresholds a map. State lives in the URL hash (view, cols, backbone, method, tau, sort, filter).
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("camloc-data").textContent);
  const LB = D.leaderboard;
  const TAUS = D.taus;
  const T = TAUS.length;
  const BACKBONES = D.backbone_order.filter(function (b) { return b in D.backbones; });
  const PAGE = 40;
  const COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];
  const SVGNS = "http://www.w3.org/2000/svg";
  const $ = function (id) { return document.getElementById(id); };

  const state = {view: "leaderboard", cols: "", backbone: [], method: [], tau: null, filter: {},
                 sort: {leaderboard: "", compare: ""}, shown: PAGE};

  // ---------------------------------------------------------------------------------------------
  // URL hash

  function parseHash() {
    const kv = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      const i = part.indexOf("=");
      const k = decodeURIComponent(i < 0 ? part : part.slice(0, i));
      kv[k] = i < 0 ? "" : decodeURIComponent(part.slice(i + 1));
    });
    const list = function (s) { return s ? s.split(",").filter(Boolean) : []; };
    state.view = kv.view === "compare" ? "compare" : "leaderboard";
    state.cols = kv.cols === "backbone" || kv.cols === "method" ? kv.cols : "";
    state.backbone = list(kv.backbone || "");
    state.method = list(kv.method || "");
    state.tau = kv.tau !== undefined && kv.tau !== "" && isFinite(Number(kv.tau)) ? Number(kv.tau) : null;
    state.filter = {};
    (kv.filter || "").split(";").forEach(function (f) {
      const i = f.indexOf(":");
      if (i > 0) state.filter[f.slice(0, i)] = f.slice(i + 1).split("|").filter(Boolean);
    });
    state.sort = {leaderboard: "", compare: ""};
    state.sort[state.view] = kv.sort || "";
    state.shown = PAGE;
  }

  function writeHash() {
    const parts = [["view", state.view]];
    if (state.view === "compare") parts.push(["cols", colsMode()]);
    if (state.backbone.length) parts.push(["backbone", state.backbone.join(",")]);
    if (state.method.length) parts.push(["method", state.method.join(",")]);
    if (state.view === "compare" && T) parts.push(["tau", TAUS[tauIndex()].toFixed(2)]);
    if (state.sort[state.view]) parts.push(["sort", state.sort[state.view]]);
    const f = Object.keys(state.filter).sort().filter(function (k) { return state.filter[k].length; })
      .map(function (k) { return k + ":" + state.filter[k].join("|"); });
    if (f.length) parts.push(["filter", f.join(";")]);
    const hash = "#" + parts.map(function (p) { return p[0] + "=" + encodeURIComponent(p[1]).replace(/%2C/g, ",").replace(/%3A/g, ":").replace(/%7C/g, "|").replace(/%3B/g, ";"); }).join("&");
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  // ---------------------------------------------------------------------------------------------
  // Leaderboard view

  function ciPairs() {
    const pairs = {};
    LB.columns.forEach(function (c) {
      if (LB.columns.indexOf(c + "_ci_low") >= 0 && LB.columns.indexOf(c + "_ci_high") >= 0) pairs[c] = true;
    });
    return pairs;
  }

  const INTEGRAL = {};  // columns whose every value is a whole number (counts) are shown without decimals
  LB.columns.forEach(function (c, k) {
    INTEGRAL[c] = !/_ci_(low|high)$/.test(c) && LB.rows.every(function (r) { return r[k] === null || Number.isInteger(r[k]); })
      && LB.rows.some(function (r) { return typeof r[k] === "number"; }) && !/^tau/.test(c) && !/acc|loc|ap|iou/.test(c);
  });

  function fmt(col, v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (INTEGRAL[col]) return String(v);
    return v.toFixed(/^tau/.test(col) ? 2 : 1);
  }

  function selectedValues(col) {
    if (col === "backbone") return state.backbone;
    if (col === "method") return state.method;
    return state.filter[col] || [];
  }

  function setSelected(col, values) {
    if (col === "backbone") state.backbone = values;
    else if (col === "method") state.method = values;
    else state.filter[col] = values;
  }

  function renderFilters() {
    const box = $("lb-filters");
    box.textContent = "";
    LB.categorical.forEach(function (col) {
      const ci = LB.columns.indexOf(col);
      const values = [];
      LB.rows.forEach(function (r) { if (values.indexOf(r[ci]) < 0 && r[ci] !== null) values.push(r[ci]); });
      const fs = document.createElement("fieldset");
      fs.dataset.filter = col;
      const lg = document.createElement("legend");
      lg.textContent = col;
      fs.appendChild(lg);
      const sel = selectedValues(col);
      values.forEach(function (v) {
        const lab = document.createElement("label");
        const cb = document.createElement("input");
        cb.type = "checkbox"; cb.value = v; cb.checked = sel.indexOf(v) >= 0;
        cb.addEventListener("change", function () {
          const now = Array.from(fs.querySelectorAll("input:checked")).map(function (x) { return x.value; });
          setSelected(col, now);
          update();
        });
        lab.appendChild(cb);
        lab.appendChild(document.createTextNode(" " + v));
        fs.appendChild(lab);
      });
      box.appendChild(fs);
    });
  }

  function renderLeaderboard() {
    renderFilters();
    const pairs = ciPairs();
    const shownCols = LB.columns.filter(function (c) { return !/_ci_(low|high)$/.test(c) || !pairs[c.replace(/_ci_(low|high)$/, "")]; });
    const idx = function (c) { return LB.columns.indexOf(c); };
    let rows = LB.rows.filter(function (r) {
      return LB.categorical.every(function (col) {
        const sel = selectedValues(col);
        return !sel.length || sel.indexOf(r[idx(col)]) >= 0;
      });
    });
    const spec = state.sort.leaderboard;
    const sortCol = spec.replace(/^-/, "");
    if (sortCol && idx(sortCol) >= 0) {
      const k = idx(sortCol), sign = spec[0] === "-" ? -1 : 1;
      rows = rows.map(function (r, i) { return [r, i]; }).sort(function (a, b) {
        const x = a[0][k], y = b[0][k];
        if (x === null || y === null) return (x === null) - (y === null) || a[1] - b[1];
        const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
        return sign * c || a[1] - b[1];
      }).map(function (p) { return p[0]; });
    }
    const table = $("lb-table");
    table.textContent = "";
    const head = table.createTHead().insertRow();
    shownCols.forEach(function (c) {
      const th = document.createElement("th");
      const card = (LB.metrics || {})[c];  // the metric card: label, direction (↑/↓), legend
      th.textContent = (pairs[c] ? c + " [95% CI]" : c) + (card && card.direction === "↓" ? " ↓" : "");
      if (card) th.title = card.label + " (" + card.direction + ")" + (card.legend ? ": " + card.legend : "");
      th.dataset.col = c;
      if (sortCol === c) th.className = spec[0] === "-" ? "sorted-desc" : "sorted-asc";
      th.addEventListener("click", function () {  // first click: best first (descending, ascending for ↓)
        const best = card && card.direction === "↓" ? c : "-" + c, worst = best === c ? "-" + c : c;
        state.sort.leaderboard = state.sort.leaderboard === best ? worst : best;
        update();
      });
      head.appendChild(th);
    });
    head.appendChild(document.createElement("th"));
    const body = table.createTBody();
    rows.forEach(function (r) {
      const tr = body.insertRow();
      const b = r[idx("backbone")], m = r[idx("method")];
      tr.dataset.backbone = b; tr.dataset.method = m;
      shownCols.forEach(function (c) {
        const td = tr.insertCell();
        const v = r[idx(c)];
        td.textContent = fmt(c, v);
        if (typeof v === "number") td.className = "num";
        if (pairs[c]) {
          const lo = r[idx(c + "_ci_low")], hi = r[idx(c + "_ci_high")];
          const span = document.createElement("span");
          span.className = "ci";
          span.textContent = " [" + fmt(c, lo) + ", " + fmt(c, hi) + "]";
          td.appendChild(span);
          td.className = "num";
        }
      });
      const td = tr.insertCell();
      if (D.backbones[b] && D.backbones[b].methods.indexOf(m) >= 0) {
        const a = document.createElement("a");
        a.href = "#view=compare&cols=method&backbone=" + encodeURIComponent(b) + "&method=" + encodeURIComponent(m);
        a.textContent = "maps →";
        td.appendChild(a);
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Comparison data (decoded lazily: the page opens on the leaderboard without touching it)

  const decoded = {};
  function bytes(s) {
    const bin = atob(s), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function data(b, m) {
    const key = b + "\u0000" + m;
    if (!decoded[key]) {
      const B = D.backbones[b];
      const pos = {};
      B.images.forEach(function (id, i) { pos[id] = i; });
      decoded[key] = {boxes: new Int16Array(bytes(B.boxes[m])), ious: new Float32Array(bytes(B.ious[m])),
                      map: new Uint8Array(bytes(B.maps[m].data)), shape: B.maps[m].shape, pos: pos};
    }
    return decoded[key];
  }
  function iou(col, id, t) { const d = data(col.b, col.m); return d.ious[d.pos[id] * T + t]; }
  function box(col, id, t) {
    const d = data(col.b, col.m), o = (d.pos[id] * T + t) * 4;
    return [d.boxes[o], d.boxes[o + 1], d.boxes[o + 2], d.boxes[o + 3]];
  }

  function colsMode() {
    if (state.cols) return state.cols;
    return state.method.length === 1 && state.backbone.length > 1 ? "backbone" : "method";
  }

  function methodsOf(b) { return D.backbones[b] ? D.backbones[b].methods : []; }
  function allMethods() {
    const out = [];
    BACKBONES.forEach(function (b) { methodsOf(b).forEach(function (m) { if (out.indexOf(m) < 0) out.push(m); }); });
    return out;
  }

  function columns() {
    if (!BACKBONES.length) return [];
    if (colsMode() === "method") {
      const b = state.backbone.filter(function (x) { return x in D.backbones; })[0] || BACKBONES[0];
      let ms = state.method.filter(function (m) { return methodsOf(b).indexOf(m) >= 0; });
      if (!ms.length) ms = methodsOf(b).slice(0, 3);
      return ms.map(function (m) { return {b: b, m: m, label: m}; });
    }
    const m = state.method.filter(function (x) { return allMethods().indexOf(x) >= 0; })[0] || allMethods()[0];
    let bs = state.backbone.filter(function (b) { return methodsOf(b).indexOf(m) >= 0; });
    if (!bs.length) bs = BACKBONES.filter(function (b) { return methodsOf(b).indexOf(m) >= 0; });
    return bs.map(function (b) { return {b: b, m: m, label: b}; });
  }

  function tauIndex() {
    if (!T) return 0;
    let want = state.tau;
    if (want === null) {
      const cols = columns();
      const bb = cols.length ? D.backbones[cols[0].b] : null;
      const ch = bb ? bb.chosen[cols[0].m] : null;
      const loc = ch && ch.oracle ? ch.oracle[bb.kind] : null;
      want = loc && loc.v1 !== undefined ? loc.v1 : D.fixed_tau;
    }
    let best = 0;
    TAUS.forEach(function (t, i) { if (Math.abs(t - want) < Math.abs(TAUS[best] - want)) best = i; });
    return best;
  }

  function imageRows(cols) {
    if (!cols.length) return [];
    let ids = D.backbones[cols[0].b].images.slice();
    cols.slice(1).forEach(function (c) { const p = data(c.b, c.m).pos; ids = ids.filter(function (i) { return i in p; }); });
    const cls = (state.filter["class"] || []);
    if (cls.length) ids = ids.filter(function (i) { return cls.indexOf(D.images[i]["class"]) >= 0; });
    return ids;
  }

  function sortRows(ids, cols, t) {
    const spec = state.sort.compare.split(":");
    const byLabel = function (l) { return cols.filter(function (c) { return c.label === l; })[0]; };
    let key = null;
    if (spec[0] === "iou" && byLabel(spec[1])) {
      const a = byLabel(spec[1]);
      key = function (id) { return iou(a, id, t); };
    } else if (spec[0] === "diff" && byLabel(spec[1]) && byLabel(spec[2])) {
      const a = byLabel(spec[1]), b = byLabel(spec[2]);
      key = function (id) { return iou(a, id, t) - iou(b, id, t); };
    } else if (spec[0] === "fail") {
      key = function (id) { return cols.filter(function (c) { return !(iou(c, id, t) >= 0.5); }).length; };
    }
    if (!key) return ids;
    const keyed = ids.map(function (id) { const k = key(id); return [isNaN(k) ? -Infinity : k, id]; });
    keyed.sort(function (x, y) { return y[0] - x[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0); });
    return keyed.map(function (p) { return p[1]; });
  }

  // ---------------------------------------------------------------------------------------------
  // Comparison view

  function choice(fs, type, name, values, selected, onChange) {
    fs.querySelectorAll("label").forEach(function (l) { l.remove(); });
    values.forEach(function (v) {
      const lab = document.createElement("label");
      const input = document.createElement("input");
      input.type = type; input.name = name; input.value = v; input.checked = selected.indexOf(v) >= 0;
      input.addEventListener("change", function () {
        onChange(Array.from(fs.querySelectorAll("input:checked")).map(function (x) { return x.value; }));
      });
      lab.appendChild(input);
      lab.appendChild(document.createTextNode(" " + v));
      fs.appendChild(lab);
    });
  }

  function renderControls(cols) {
    const mode = colsMode();
    document.querySelectorAll("#cmp-cols input").forEach(function (r) { r.checked = r.value === mode; });
    const bsel = Array.from(new Set(cols.map(function (c) { return c.b; })));
    const msel = Array.from(new Set(cols.map(function (c) { return c.m; })));
    choice($("cmp-backbones"), mode === "method" ? "radio" : "checkbox", "backbone", BACKBONES, bsel,
           function (v) { state.backbone = v; update(); });
    const ms = mode === "method" ? methodsOf(bsel[0]) : allMethods();
    choice($("cmp-methods"), mode === "method" ? "checkbox" : "radio", "method", ms, msel,
           function (v) { state.method = v; update(); });
    const spec = state.sort.compare.split(":");
    $("sort-kind").value = spec[0] || "";
    ["sort-a", "sort-b"].forEach(function (id, k) {
      const sel = $(id);
      sel.textContent = "";
      cols.forEach(function (c) { const o = document.createElement("option"); o.value = o.textContent = c.label; sel.appendChild(o); });
      const want = spec[0] === "iou" ? spec[1] : spec[0] === "diff" ? spec[1 + k] : null;
      sel.value = want && cols.some(function (c) { return c.label === want; }) ? want : (cols[Math.min(k, cols.length - 1)] || {}).label;
    });
    const cls = $("cmp-class");
    if (cls.options.length === 1) {
      Array.from(new Set(Object.keys(D.images).map(function (i) { return D.images[i]["class"]; }))).sort()
        .forEach(function (c) { const o = document.createElement("option"); o.value = o.textContent = c; cls.appendChild(o); });
    }
    cls.value = (state.filter["class"] || [""])[0];
  }

  function rect(kind, b, x, attrs) {
    const r = document.createElementNS(SVGNS, "rect");
    r.setAttribute("class", kind);
    r.setAttribute("x", x[0]); r.setAttribute("y", x[1]);
    r.setAttribute("width", x[2] - x[0] + 1); r.setAttribute("height", x[3] - x[1] + 1);
    r.setAttribute("vector-effect", "non-scaling-stroke");
    r.dataset.kind = kind; r.dataset.x0 = x[0]; r.dataset.y0 = x[1]; r.dataset.x1 = x[2]; r.dataset.y1 = x[3];
    Object.keys(attrs).forEach(function (k) { r.dataset[k] = attrs[k]; });
    return r;
  }

  function paintMap(canvas, col, id) {
    const d = data(col.b, col.m), h = d.shape[0], w = d.shape[1], o = d.pos[id] * h * w;
    canvas.width = w; canvas.height = h;
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      const v = d.map[o + i] / 255;
      const c = function (x) { return Math.round(255 * Math.max(0, Math.min(1, 1.5 - Math.abs(4 * v - x)))); };
      img.data[4 * i] = c(3); img.data[4 * i + 1] = c(2); img.data[4 * i + 2] = c(1); img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function cell(col, id, t) {
    const B = D.backbones[col.b], S = B.size, pos = data(col.b, col.m).pos[id];
    const div = document.createElement("div");
    div.className = "cell";
    const pic = document.createElement("div");
    pic.className = "pic";
    const im = document.createElement("img");
    im.src = D.images[id].thumb; im.alt = id;
    const cv = document.createElement("canvas");
    paintMap(cv, col, id);
    const svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("viewBox", "0 0 " + S + " " + S);
    svg.setAttribute("preserveAspectRatio", "none");
    const attrs = {imageId: id, method: col.m, backbone: col.b};
    B.gt[pos].forEach(function (g) { svg.appendChild(rect("gt", col.b, g, attrs)); });
    svg.appendChild(rect("pred", col.b, box(col, id, t), attrs));
    pic.appendChild(im); pic.appendChild(cv); pic.appendChild(svg);
    const cap = document.createElement("div");
    cap.className = "cap";
    const v = iou(col, id, t);
    const s = document.createElement("span");
    s.className = v >= 0.5 ? "ok" : "fail";
    s.dataset.iou = isNaN(v) ? "" : v;
    s.textContent = "IoU " + (isNaN(v) ? "–" : v.toFixed(2));
    cap.appendChild(s);
    const p = B.pred[pos];
    cap.appendChild(document.createTextNode(" · pred " + p[0] + " " + p[1].toFixed(2)));
    div.appendChild(pic); div.appendChild(cap);
    return div;
  }

  function boxAcc(col) {
    const d = data(col.b, col.m), n = D.backbones[col.b].images.length, out = [];
    for (let t = 0; t < T; t++) {
      let hit = 0, seen = 0;
      for (let i = 0; i < n; i++) { const v = d.ious[i * T + t]; if (!isNaN(v)) { seen++; if (v >= 0.5) hit++; } }
      out.push(seen ? 100 * hit / seen : 0);
    }
    return out;
  }

  function renderCurve(cols, t) {
    const svg = $("boxacc"), W = 260, H = 130, L = 30, R = 8, TOP = 8, BOT = 20;
    svg.textContent = "";
    const x = function (tau) { return L + (W - L - R) * tau; }, y = function (v) { return TOP + (H - TOP - BOT) * (1 - v / 100); };
    const line = function (x1, y1, x2, y2, stroke) {
      const l = document.createElementNS(SVGNS, "line");
      [["x1", x1], ["y1", y1], ["x2", x2], ["y2", y2], ["stroke", stroke]].forEach(function (a) { l.setAttribute(a[0], a[1]); });
      svg.appendChild(l); return l;
    };
    const text = function (tx, ty, s, anchor) {
      const e = document.createElementNS(SVGNS, "text");
      e.setAttribute("x", tx); e.setAttribute("y", ty); e.setAttribute("font-size", "9");
      e.setAttribute("text-anchor", anchor || "middle"); e.textContent = s; svg.appendChild(e);
    };
    line(L, y(0), W - R, y(0), "#999"); line(L, y(0), L, y(100), "#999");
    [0, 50, 100].forEach(function (v) { text(L - 3, y(v) + 3, String(v), "end"); });
    [0, 0.5, 1].forEach(function (v) { text(x(v), H - 6, String(v)); });
    const legend = [];
    cols.forEach(function (c, k) {
      const acc = boxAcc(c);
      const pl = document.createElementNS(SVGNS, "polyline");
      pl.setAttribute("points", acc.map(function (v, i) { return x(TAUS[i]).toFixed(1) + "," + y(v).toFixed(1); }).join(" "));
      pl.setAttribute("fill", "none"); pl.setAttribute("stroke", COLORS[k % COLORS.length]); pl.setAttribute("stroke-width", "1.5");
      svg.appendChild(pl);
      const dot = document.createElementNS(SVGNS, "circle");
      dot.setAttribute("cx", x(TAUS[t])); dot.setAttribute("cy", y(acc[t])); dot.setAttribute("r", 3);
      dot.setAttribute("fill", COLORS[k % COLORS.length]);
      svg.appendChild(dot);
      legend.push([c.label + " " + acc[t].toFixed(1) + "%", COLORS[k % COLORS.length]]);
    });
    line(x(TAUS[t]), y(0), x(TAUS[t]), y(100), "#333").setAttribute("stroke-dasharray", "3,2");
    svg.dataset.tau = TAUS[t];
    return legend;
  }

  function renderMarks(cols) {
    // One button per distinct τ (chosen τs often coincide across columns and metrics); its tooltip lists them.
    const box = $("tau-marks");
    box.textContent = "";
    const span = TAUS[T - 1] - TAUS[0] || 1;
    const marks = [{tau: D.fixed_tau, kind: "fixed", title: "fixed τ of GT-known / Top-1 Loc"}];
    cols.forEach(function (c) {
      const ch = D.backbones[c.b].chosen[c.m] || {};
      const kind = D.backbones[c.b].kind;  // the dataset's loc kind: head (Pets) or object
      const head = function (w) { return ((ch[w] || {})[kind] || {}); };
      [[head("oracle").v1, "v1", "τ of MaxBoxAcc (test)"], [head("val").v1, "val", "τ chosen on val"],
       [head("oracle")["50"], "v2", "τ of MaxBoxAccV2 at δ = 0.5"]].forEach(function (m) {
        if (m[0] !== undefined) marks.push({tau: m[0], kind: m[1], title: c.label + ": " + m[2]});
      });
    });
    const groups = {};
    marks.forEach(function (m) {
      const key = Number(m.tau).toFixed(2);
      (groups[key] = groups[key] || []).push(m);
    });
    const list = $("tau-chosen");
    list.textContent = "Marked τ: ";
    Object.keys(groups).sort(function (a, b) { return a - b; }).forEach(function (key) {
      const g = groups[key], tau = Number(key);
      const title = "τ = " + key + "\n" + g.map(function (m) { return m.title; }).join("\n");
      const go = function () { state.tau = tau; update(); };
      const tick = document.createElement("button");
      tick.type = "button"; tick.className = "mark"; tick.title = title; tick.dataset.tau = tau;
      tick.style.left = (100 * (tau - TAUS[0]) / span) + "%";
      tick.addEventListener("click", go);
      box.appendChild(tick);
      const item = document.createElement("button");
      item.type = "button"; item.className = "chosen"; item.title = title;
      item.textContent = Array.from(new Set(g.map(function (m) { return m.kind; }))).join("/") + " " + key;
      item.addEventListener("click", go);
      list.appendChild(item);
    });
  }

  function renderCompare() {
    const cols = columns();
    renderControls(cols);
    const grid = $("cmp-grid");
    grid.textContent = "";
    if (!cols.length || !T) { $("cmp-summary").textContent = "No evaluated maps to compare."; return; }
    const t = tauIndex();
    const slider = $("tau");
    slider.max = T - 1; slider.value = t;
    $("tau-value").textContent = TAUS[t].toFixed(2);
    renderMarks(cols);
    const legend = $("tau-legend");
    legend.textContent = "BoxAcc (δ = 0.5) at this τ: ";
    renderCurve(cols, t).forEach(function (item, k) {
      const span = document.createElement("span");
      span.style.color = item[1]; span.style.fontWeight = "bold";
      span.textContent = (k ? " · " : "") + item[0];
      legend.appendChild(span);
    });
    const ids = sortRows(imageRows(cols), cols, t);
    const head = grid.createTHead().insertRow();
    const th0 = document.createElement("th"); th0.textContent = "image"; head.appendChild(th0);
    cols.forEach(function (c) {
      const th = document.createElement("th");
      th.textContent = colsMode() === "method" ? c.m + " (" + c.b + ")" : c.b + " (" + c.m + ")";
      head.appendChild(th);
    });
    const body = grid.createTBody();
    ids.slice(0, state.shown).forEach(function (id) {
      const tr = body.insertRow();
      tr.dataset.imageId = id;
      const info = tr.insertCell();
      info.className = "imginfo";
      const fails = cols.filter(function (c) { return !(iou(c, id, t) >= 0.5); }).length;
      info.textContent = id + " · " + D.images[id]["class"] + " · " + fails + "/" + cols.length + " fail";
      cols.forEach(function (c) { tr.insertCell().appendChild(cell(c, id, t)); });
    });
    $("cmp-more").hidden = ids.length <= state.shown;
    $("cmp-summary").textContent = ids.length + " test images" + (ids.length > state.shown ? ", first " + state.shown + " shown" : "") +
      "; boxes and IoUs at τ = " + TAUS[t].toFixed(2) + " for every column.";
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring

  function update() {
    $("view-leaderboard").hidden = state.view !== "leaderboard";
    $("view-compare").hidden = state.view !== "compare";
    $("tab-leaderboard").className = state.view === "leaderboard" ? "active" : "";
    $("tab-compare").className = state.view === "compare" ? "active" : "";
    if (state.view === "leaderboard") renderLeaderboard(); else renderCompare();
    writeHash();
    document.body.dataset.ready = "1";
  }

  function setSort() {
    const kind = $("sort-kind").value, a = $("sort-a").value, b = $("sort-b").value;
    state.sort.compare = kind === "iou" ? "iou:" + a : kind === "diff" ? "diff:" + a + ":" + b : kind;
    update();
  }

  document.querySelectorAll("nav button").forEach(function (btn) {
    btn.addEventListener("click", function () { state.view = btn.dataset.view; state.shown = PAGE; update(); });
  });
  document.querySelectorAll("#cmp-cols input").forEach(function (r) {
    r.addEventListener("change", function () { state.cols = r.value; update(); });
  });
  ["sort-kind", "sort-a", "sort-b"].forEach(function (id) { $(id).addEventListener("change", setSort); });
  $("cmp-class").addEventListener("change", function () {
    state.filter["class"] = this.value ? [this.value] : [];
    update();
  });
  $("tau").addEventListener("input", function () { state.tau = TAUS[Number(this.value)]; update(); });
  $("cmp-more").addEventListener("click", function () { state.shown += PAGE; update(); });
  window.addEventListener("hashchange", function () { parseHash(); update(); });
  parseHash();
  update();
})();
