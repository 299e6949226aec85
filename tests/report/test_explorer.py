"""The explorer page (reports/explorer/index.html) on the seeded synthetic report inputs: its data block,
and a real browser (Selenium driving Debian's chromium + chromium-driver) that sorts, filters, switches
views, moves the τ slider and reloads from the URL hash. The boxes in the DOM are checked against the
metric core run here on the dumped maps, never against the page's own data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_inputs import BACKBONES, EVAL_SIZE, METHODS, make_report_inputs, report_params, report_paths

from pipeline import contracts as C
from pipeline.metrics import boxes_at_taus, iou_matrix, normalize_map, rescale_boxes, taus
from pipeline.report import explorer
from pipeline.stages import report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver") or next((p for p in ("/usr/bin/chromedriver",) if Path(p).is_file()), None)
try:
    import selenium  # noqa: F401

    SELENIUM = True
except ImportError:
    SELENIUM = False
NO_BROWSER = ("a real-browser test: needs Debian's chromium and chromium-driver (apt-get install -y chromium "
              "chromium-driver) and selenium (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    root = make_report_inputs(tmp_path_factory.mktemp("explorer"))
    report.run(report_params(bootstrap=50), report_paths(root))
    return root


def _data(page: Path) -> dict:
    text = page.read_text()
    block = re.search(r'<script type="application/json" id="camloc-data">(.*?)</script>', text, re.S)
    return json.loads(block.group(1))


class Truth:
    """The metric core's answer for the synthetic run: boxes and IoUs straight from the dumped maps."""

    def __init__(self, root: Path):
        paths = report_paths(root)
        self.samples = C.read_samples(paths.prepared, ("image_id", "width", "height")).set_index("image_id")
        self.heads = C.boxes_by_kind(C.read_boxes(paths.prepared))["head"]
        self.maps, self.rows = {}, {}
        for b in BACKBONES:
            index = C.read_cams_index(paths.cams_dir(b), "test")
            self.rows[b] = {str(i): k for k, i in enumerate(index["image_id"])}
            for m in METHODS:
                self.maps[(b, m)] = C.open_maps(paths.cams_dir(b), "test", m, "gt")

    def gt(self, image_id: str) -> np.ndarray:
        s = self.samples.loc[image_id]
        return rescale_boxes(self.heads[image_id], (int(s["width"]), int(s["height"])), (EVAL_SIZE, EVAL_SIZE))

    def pred(self, backbone: str, method: str, image_id: str, tau: float) -> list[int]:
        raw = self.maps[(backbone, method)][self.rows[backbone][image_id]]
        smap = normalize_map(np.asarray(raw, np.float64), (EVAL_SIZE, EVAL_SIZE))
        return [int(v) for v in boxes_at_taus(smap, np.array([tau]), "largest")[0][0]]

    def iou(self, backbone: str, method: str, image_id: str, tau: float) -> float:
        return float(iou_matrix(np.array(self.pred(backbone, method, image_id, tau)), self.gt(image_id)).max())


# --------------------------------------------------------------------------------------------------
# The page and its data, without a browser


def test_page_is_self_contained_and_holds_every_leaderboard_row(reported):
    page = reported / "reports" / "explorer" / "index.html"
    text = page.read_text()
    assert "Content-Security-Policy" in text and "default-src 'none'" in text  # the browser refuses any request
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert not re.search(r"url\(|@import|<link", text)
    data = _data(page)
    board = pd.read_csv(reported / "reports" / "leaderboard.csv")
    assert data["leaderboard"]["columns"] == list(board.columns)
    assert len(data["leaderboard"]["rows"]) == len(board)
    assert {"backbone", "method"} <= set(data["leaderboard"]["categorical"])
    assert data["taus"] == pytest.approx(taus(0.05).tolist())  # interval 0.05: the slider has the whole grid
    assert set(data["backbones"]) == set(BACKBONES)
    assert len(data["images"]) == len(Truth(reported).rows[BACKBONES[0]])
    assert all(v["thumb"].startswith("data:image/jpeg;base64,") for v in data["images"].values())


def test_any_categorical_leaderboard_column_becomes_a_filter():
    board = pd.DataFrame({"backbone": ["a", "b"], "train_method": ["cam", "has"], "method": ["cam", "cam"],
                          "maxboxacc_v2_head": [50.0, float("nan")]})
    data = explorer.leaderboard_data(board)
    assert data["categorical"] == ["backbone", "train_method", "method"]
    assert data["rows"][1] == ["b", "has", "cam", None]


def test_a_box_table_that_misses_rows_is_a_clear_error(reported, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(reported, root, ignore=shutil.ignore_patterns("explorer", "gallery", "plots", "breakdowns"))
    path = root / "data" / "eval" / BACKBONES[0] / C.TAU_BOXES_FILE
    table = pd.read_parquet(path)
    table.iloc[1:].to_parquet(path, index=False)
    with pytest.raises(Exception, match=r"tau_boxes\.parquet \(.*\): its rows do not cover every test image"):
        report.run(report_params(bootstrap=20), report_paths(root))


# --------------------------------------------------------------------------------------------------
# The real browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and DRIVER and SELENIUM):
        pytest.skip(NO_BROWSER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--no-first-run", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def _open(driver, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))


def _column(driver, name: str) -> list[str]:
    heads = [th.get_attribute("data-col") for th in driver.find_elements("css selector", "#lb-table thead th")]
    k = heads.index(name)
    return [tr.find_elements("tag name", "td")[k].text for tr in driver.find_elements("css selector", "#lb-table tbody tr")]


def _boxes(driver, kind: str) -> list[tuple]:
    script = """return Array.from(document.querySelectorAll('rect[data-kind="' + arguments[0] + '"]')).map(function (r) {
      return [r.dataset.imageId, r.dataset.backbone, r.dataset.method,
              +r.dataset.x0, +r.dataset.y0, +r.dataset.x1, +r.dataset.y1]; });"""
    return [tuple(r) for r in driver.execute_script(script, kind)]


def _row_ids(driver) -> list[str]:
    return [tr.get_attribute("data-image-id") for tr in driver.find_elements("css selector", "#cmp-grid tbody tr")]


def _tau(driver) -> float:
    return float(driver.find_element("id", "tau-value").text)


def test_leaderboard_compare_slider_and_hash_in_a_real_browser(reported, browser):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    truth = Truth(reported)
    page = reported / "reports" / "explorer" / "index.html"
    board = pd.read_csv(reported / "reports" / "leaderboard.csv")
    _open(browser, page.as_uri())

    # leaderboard: every row, CIs shown, sortable both ways, filterable by a categorical column
    assert len(browser.find_elements("css selector", "#lb-table tbody tr")) == len(board)
    cells = _column(browser, "maxboxacc_v2_head")
    assert all(re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", c) for c in cells), cells
    header = browser.find_element("css selector", '#lb-table th[data-col="maxboxacc_v2_body"]')
    header.click()
    desc = [float(c.split()[0]) for c in _column(browser, "maxboxacc_v2_body")]
    assert desc == sorted(desc, reverse=True) and desc != sorted(desc)
    browser.find_element("css selector", '#lb-table th[data-col="maxboxacc_v2_body"]').click()
    asc = [float(c.split()[0]) for c in _column(browser, "maxboxacc_v2_body")]
    assert asc == sorted(asc) and "sort=maxboxacc_v2_body" in browser.current_url
    browser.find_element("css selector", f'fieldset[data-filter="backbone"] input[value="{BACKBONES[1]}"]').click()
    assert set(_column(browser, "backbone")) == {BACKBONES[1]}
    assert len(_column(browser, "backbone")) == len(METHODS)
    browser.find_element("css selector", f'fieldset[data-filter="backbone"] input[value="{BACKBONES[1]}"]').click()

    # comparison view: every drawn box is the metric core's, at the τ the slider shows
    browser.find_element("id", "tab-compare").click()
    slider = browser.find_element("id", "tau")
    slider.send_keys(Keys.HOME)
    for _ in range(7):
        slider.send_keys(Keys.ARROW_RIGHT)
    tau = _tau(browser)
    assert tau == pytest.approx(0.35) and "tau=0.35" in browser.current_url
    preds = _boxes(browser, "pred")
    assert len(preds) == len(truth.rows[BACKBONES[0]]) * 3  # default: the first three methods
    for image_id, b, m, *drawn in preds:
        assert drawn == truth.pred(b, m, image_id, tau), (image_id, b, m, tau)
    for image_id, _, _, *drawn in _boxes(browser, "gt"):
        assert drawn in truth.gt(image_id).tolist()
    images = browser.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert images and all(images)

    # sort "where A beats B" at this τ: IoU(A) − IoU(B) never increases down the rows
    Select(browser.find_element("id", "sort-kind")).select_by_value("diff")
    Select(browser.find_element("id", "sort-a")).select_by_value("gradcam")
    Select(browser.find_element("id", "sort-b")).select_by_value("cam")
    b0 = BACKBONES[0]
    gaps = [truth.iou(b0, "gradcam", i, tau) - truth.iou(b0, "cam", i, tau) for i in _row_ids(browser)]
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > gaps[-1]
    assert "sort=diff:gradcam:cam" in browser.current_url

    # reload from the URL hash: the same view, τ, order and boxes
    url, order, preds = browser.current_url, _row_ids(browser), _boxes(browser, "pred")
    _open(browser, url)
    assert browser.find_element("id", "view-leaderboard").get_attribute("hidden") is not None
    assert _tau(browser) == tau and _row_ids(browser) == order and _boxes(browser, "pred") == preds

    # a hand-written link: backbones as columns for one method, at τ = 0.5, failing columns first
    _open(browser, f"{page.as_uri()}#view=compare&cols=backbone&method=gradcam&tau=0.5&sort=fail")
    preds = _boxes(browser, "pred")
    assert {(b, m) for _, b, m, *_ in preds} == {(b, "gradcam") for b in BACKBONES}
    assert _tau(browser) == 0.5
    for image_id, b, m, *drawn in preds:
        assert drawn == truth.pred(b, m, image_id, 0.5)
    fails = [sum(truth.iou(b, "gradcam", i, 0.5) < 0.5 for b in BACKBONES) for i in _row_ids(browser)]
    assert fails == sorted(fails, reverse=True) and fails[0] > fails[-1]

    logs = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert logs == [], logs
