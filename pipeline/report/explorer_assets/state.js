// camloc explorer: leaderboard + comparison views over the data block written by pipeline/report/explorer.py.
// Every box drawn here is read from the evaluator's precomputed boxes (tau_boxes.parquet): this script
// never thresholds a map. State lives in the URL hash (view, cols, backbone, method, tau, sort, filter).
// The page's data, constants and URL state. The parts (state, leaderboard, compare, wiring) share one
// scope: pipeline/report/explorer.py inlines them in this order inside one strict-mode function.
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

