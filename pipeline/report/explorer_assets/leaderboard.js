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

