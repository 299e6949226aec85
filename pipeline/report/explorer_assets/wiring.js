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
