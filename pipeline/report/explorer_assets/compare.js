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

