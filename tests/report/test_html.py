"""report.html in a real headless Chromium (the distribution's package, driven over CDP).

One real run gives the report and the store: built-in models on the summarization and QA tasks (no
model-written code to sandbox) under a gate with relative rules the baseline loses. The page is rendered
from them with a hostile item output and report name and loaded from file://. It must load without
console errors or network requests, show report.json's numbers, narrow its item rows by search and
filters exactly as the data says, render hostile text as text, and look like a report (a screenshot is
saved in the test's tmp dir).
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from benchgate.report.html import collect, render_html, write_report_html
from benchgate.store import Store
from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.support.browser import Browser, BrowserMissing, find_chromium

pytestmark = pytest.mark.slow

DATA = REPO_ROOT / "benchgate" / "data"
REQUEST = f"""
name: HTML report
models:
  - {{id: reference, provider: builtin, model: reference}}
  - {{id: baseline, provider: builtin, model: baseline}}
tasks:
  - {{task: text-summarization, dataset: cnn-dailymail, path: {DATA / "cnn_dailymail_sample.jsonl"}}}
  - {{task: question-answering, dataset: squad-v2, path: {DATA / "squad_v2_sample.json"}}}
gate:
  rules:
    - {{model: reference, task: question-answering, metric: f1-score, at_least: 99.9}}
    - {{model: baseline, task: question-answering, metric: f1-score, no_worse_than: reference}}
    - {{model: baseline, task: text-summarization, metric: rouge-l, no_worse_than: reference}}
"""
HOSTILE = "</script><img src=x onerror=alert(1)><!--<script>alert(2)</script>"
HOSTILE_NAME = "HTML report </title></script><script>alert(3)</script>"
WIDTH, HEIGHT = 1280, 900
PAGE_SIZE = 50


@dataclass
class Run:
    out: Path
    store: Store
    report: dict[str, Any]
    page_items: list[dict[str, Any]]  # as the run's own report.html holds them


def page_blob(text: str) -> str:
    """The JSON the page carries, as written."""
    return text.split('<script type="application/json" id="benchgate-data">')[1].split("</script>")[0]


@dataclass
class Page:
    path: Path
    report: dict[str, Any]
    items: list[dict[str, Any]]
    history: list[dict[str, Any]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, prefect_server) -> Run:
    """The pipeline once, as `benchgate run` runs it; the gate fails (the baseline loses), on purpose."""
    root = tmp_path_factory.mktemp("html-run")
    (root / "request.yaml").write_text(REQUEST)
    result = run_cli(
        ["run", str(root / "request.yaml"), "--out", str(root / "out")],
        cli_env(prefect_server, root / "store"),
    )
    report_path = root / "out" / "report.json"
    assert report_path.exists(), result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["status"] == "completed", report
    items = json.loads(page_blob((root / "out" / "report.html").read_text(encoding="utf-8")))["items"]
    return Run(root / "out", Store(str(root / "store")), report, items)


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return find_chromium(os.environ.get("BENCHGATE_CHROMIUM"))
    except BrowserMissing as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def page(run: Run, tmp_path_factory: pytest.TempPathFactory) -> Page:
    """The run's page with a hostile model output and name, and four earlier runs in the history."""
    items, history = collect(run.store, run.report)
    items[0] = {**items[0], "output": HOSTILE, "prompt": HOSTILE}
    report = {**run.report, "name": HOSTILE_NAME}
    history = earlier_runs(history) + history
    path = tmp_path_factory.mktemp("html-page") / "report.html"
    path.write_bytes(render_html(report, items, history))
    return Page(path, report, items, history)


@pytest.fixture(scope="module")
def browser(page: Page, chromium: str) -> Iterator[Browser]:
    with Browser(chromium, WIDTH, HEIGHT) as opened:
        opened.open(page.path.as_uri())
        yield opened


@pytest.fixture
def fresh(browser: Browser) -> Browser:
    """The page with its filters back to showing everything."""
    browser.evaluate(
        """(() => {
          for (const id of ["search", "filter-model", "filter-task", "filter-metric"]) {
            const control = document.getElementById(id);
            control.value = "";
            control.dispatchEvent(new Event(control.tagName === "INPUT" ? "input" : "change"));
          }
          const regressed = document.getElementById("filter-regressed");
          if (regressed.checked) regressed.click();
        })()"""
    )
    return browser


def earlier_runs(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Four made-up earlier runs drifting towards this one's values, so the history charts have lines."""
    rows = []
    for back in range(4, 0, -1):
        for row in history:
            span = 100.0 if row["scale"] == "percent" else 1.0
            shift = span * 0.03 * back * (1 if back % 2 else -1)
            value = min(span, max(0.0, row["value"] + shift))
            rows.append(
                {
                    **row,
                    "benchmark_id": f"bmk-earlier{back}",
                    "completed_at": f"2026-01-0{5 - back}T00:00:00Z",
                    "value": value,
                    "ci_low": max(0.0, value - span * 0.05),
                    "ci_high": min(span, value + span * 0.05),
                }
            )
    return rows


def page_number(value: float | None, scale: str) -> str:
    """As the page writes numbers: JavaScript's toFixed (half away from zero on the exact binary value)."""
    if value is None:
        return "—"
    places = Decimal(1).scaleb(-(1 if scale == "percent" else 3))
    return str(Decimal(value).quantize(places, rounding=ROUND_HALF_UP))


def shown_rows(browser: Browser) -> list[list[str]]:
    """(model, task, item id) of the item rows on the current page."""
    return browser.evaluate(
        "[...document.querySelectorAll('#items tbody tr.item')]"
        ".map(row => [...row.cells].slice(0, 3).map(cell => cell.textContent))"
    )


def shown_count(browser: Browser) -> int:
    return int(browser.evaluate("document.getElementById('item-count').dataset.count"))


def choose(browser: Browser, select_id: str, value: str) -> None:
    browser.evaluate(
        f"""(() => {{
          const select = document.getElementById({json.dumps(select_id)});
          select.value = {json.dumps(value)};
          select.dispatchEvent(new Event("change"));
        }})()"""
    )


def keys(items: list[dict[str, Any]]) -> list[list[str]]:
    return [[i["model"], i["task"], i["id"]] for i in items]


def test_collect_reads_every_scored_item_its_texts_and_the_regressions(run: Run) -> None:
    items, history = collect(run.store, run.report)
    for task, per_model in run.report["details"].items():
        for model, detail in per_model.items():
            mine = [i for i in items if (i["model"], i["task"]) == (model, task)]
            assert len(mine) == detail["n"] + detail["n_errors"]
            scores = run.store.read_scores(run.report["benchmarkId"], model, task)
            by_id = {str(r["example_id"]): r for r in scores.to_dict("records")}
            for item in mine:
                assert item["output"] is not None and len(item["output"]) <= 300
                assert item["prompt"]
                for metric, value in item["scores"].items():
                    assert value == pytest.approx(by_id[item["id"]][metric])
            assert any(item["reference"] for item in mine)  # SQuAD's unanswerable questions have none

    def score(model: str, task: str, metric: str) -> dict[str, float]:
        frame = run.store.read_scores(run.report["benchmarkId"], model, task)
        return dict(zip(frame["example_id"], frame[metric], strict=True))

    expected = set()
    for task, metric in (("question-answering", "f1-score"), ("text-summarization", "rouge-l")):
        baseline, reference = score("baseline", task, metric), score("reference", task, metric)
        expected |= {("baseline", task, i) for i, v in baseline.items() if v < reference[i]}
    assert expected, "the baseline should lose some items to the reference"
    assert {(i["model"], i["task"], i["id"]) for i in items if i["regressed"]} == expected
    assert {r["benchmark_id"] for r in history} == {run.report["benchmarkId"]}
    assert {(r["task"], r["model"], r["metric"]) for r in history} == {
        (task, model, metric)
        for task, per_model in run.report["details"].items()
        for model, detail in per_model.items()
        for metric in detail["metrics"]
    }


def test_the_runs_own_page_has_the_items_collect_reads_after_the_run(run: Run) -> None:
    """The run collected its last unit's rows while computing its intervals (ItemsAhead): the same rows."""
    items, _ = collect(run.store, run.report)
    assert run.page_items == json.loads(json.dumps(items)) and len(items) > 20


def test_write_report_html_writes_one_page_with_the_data_inside(run: Run) -> None:
    path = write_report_html(run.out, run.report, run.store)
    text = path.read_text(encoding="utf-8")
    assert path == run.out / "report.html"
    blob = page_blob(text)
    assert "<" not in blob
    assert json.loads(blob)["report"] == run.report
    outside = text.replace(blob, "")
    assert outside.count("<script") == 2
    assert "default-src 'none'" in outside
    assert set(re.findall(r"https?://[^\s\"'<>]+", outside)) == {"http://www.w3.org/2000/svg"}  # a namespace


@pytest.mark.parametrize("big", [1, 2**70])  # orjson writes the page's data; beyond 64 bits it cannot
def test_the_pages_data_is_strict_json_with_null_for_non_finite_numbers(big: int) -> None:
    report = {"name": "</script><script>alert(1)</script>", "benchmarkId": "b", "count": big}
    scores = {"f1": float("nan"), "em": float("inf"), "rouge": 0.5}
    item = {"id": "x", "scores": scores, "output": "a & <b> ‹é› 😀"}
    text = render_html(report, [item], [{"value": float("-inf")}]).decode()
    blob = page_blob(text)
    assert not set("<>&") & set(blob)
    data = json.loads(blob, parse_constant=lambda name: pytest.fail(f"{name} in the page's JSON"))
    assert data["report"] == report
    assert data["items"] == [{**item, "scores": {"f1": None, "em": None, "rouge": 0.5}}]
    assert data["history"] == [{"value": None}]


def test_the_page_loads_with_no_errors_and_no_network(browser: Browser, page: Page) -> None:
    assert browser.evaluate("document.querySelectorAll('#results table.results').length") == len(
        page.report["report"]
    )
    assert browser.problems() == []
    foreign = [u for u in browser.requests() if u != page.path.as_uri() and not u.startswith("data:")]
    assert foreign == []


def test_the_results_tables_hold_the_reports_numbers(browser: Browser, page: Page) -> None:
    cells = browser.evaluate(
        """[...document.querySelectorAll('table.results')].flatMap(table =>
             [...table.tBodies[0].rows].flatMap(row =>
               [...row.querySelectorAll('td[data-metric], td[data-field]')].map(cell =>
                 [table.dataset.task, row.dataset.model, cell.dataset.metric || cell.dataset.field,
                  cell.textContent])))"""
    )
    expected = []
    for task, per_model in page.report["details"].items():
        for model, detail in per_model.items():
            for metric, stats in detail["metrics"].items():
                scale = detail["scales"][metric]
                low, high = page_number(stats["ci_low"], scale), page_number(stats["ci_high"], scale)
                expected.append(
                    [task, model, metric, f"{page_number(stats['value'], scale)} [{low}, {high}]"]
                )
            expected += [
                [task, model, "n", str(detail["n"])],
                [task, model, "errors", str(detail["n_errors"])],
            ]
    assert sorted(cells) == sorted(expected)
    # report.json's results rows are the same values as its details
    for task, section in page.report["report"].items():
        for row in section["results"]:
            for metric, value in row.items():
                if metric != "model":
                    assert value == page.report["details"][task][row["model"]]["metrics"][metric]["value"]


def test_the_gate_verdicts_are_shown(browser: Browser, page: Page) -> None:
    gate = page.report["gate"]
    assert browser.evaluate("document.getElementById('gate-decision').textContent") == gate["decision"]
    rows = browser.evaluate(
        "[...document.querySelectorAll('#verdicts tr.verdict')].map(r => [r.cells[0].textContent, "
        "r.cells[1].textContent, r.cells[6].textContent])"
    )
    assert rows == [[v["verdict"], v["rule"], v["reason"]] for v in gate["rules"]]


def test_search_narrows_the_item_rows(fresh: Browser, page: Page) -> None:
    assert shown_count(fresh) == len(page.items)
    assert len(shown_rows(fresh)) == min(PAGE_SIZE, len(page.items))
    query = "Harrowgate"
    expected = [i for i in page.items if query.lower() in f"{i['id']}\n{i['prompt']}\n{i['output']}".lower()]
    assert 0 < len(expected) < len(page.items)
    fresh.type_text("#search", query)
    assert shown_count(fresh) == len(expected)
    assert shown_rows(fresh) == keys(expected)[:PAGE_SIZE]


def test_the_model_and_metric_filters_narrow_the_item_rows(fresh: Browser, page: Page) -> None:
    choose(fresh, "filter-model", "baseline")
    baseline = [i for i in page.items if i["model"] == "baseline"]
    assert shown_count(fresh) == len(baseline) < len(page.items)
    assert shown_rows(fresh) == keys(baseline)[:PAGE_SIZE]
    choose(fresh, "filter-metric", "f1-score")
    f1 = [i for i in baseline if "f1-score" in i["scores"]]
    assert 0 < shown_count(fresh) == len(f1) < len(baseline)
    assert shown_rows(fresh) == keys(f1)[:PAGE_SIZE]


def test_regressed_only_shows_exactly_the_regressed_items(fresh: Browser, page: Page) -> None:
    regressed = [i for i in page.items if i["regressed"]]
    fresh.evaluate("document.getElementById('filter-regressed').click()")
    assert 0 < shown_count(fresh) == len(regressed)
    shown = shown_rows(fresh)
    fresh.evaluate("document.getElementById('page-next').click()")
    shown += [] if len(regressed) <= PAGE_SIZE else shown_rows(fresh)
    assert shown == keys(regressed)[: 2 * PAGE_SIZE]
    choose(fresh, "filter-metric", "rouge-l")
    assert shown_count(fresh) == sum(any(d["metric"] == "rouge-l" for d in i["drops"]) for i in regressed)


def test_paging_walks_through_every_item(fresh: Browser, page: Page) -> None:
    pages = -(-len(page.items) // PAGE_SIZE)
    assert pages > 1
    seen = []
    for number in range(1, pages + 1):
        assert (
            fresh.evaluate("document.getElementById('page-position').textContent")
            == f"page {number} of {pages}"
        )
        seen += shown_rows(fresh)
        fresh.evaluate("document.getElementById('page-next').click()")
    assert seen == keys(page.items)


def test_hostile_text_is_shown_as_text_and_runs_nothing(fresh: Browser, page: Page) -> None:
    assert fresh.evaluate("document.title") == f"{HOSTILE_NAME} · {page.report['benchmarkId']} · benchgate"
    assert fresh.evaluate("document.querySelector('h1').textContent") == HOSTILE_NAME
    fresh.type_text("#search", "onerror=alert")
    assert shown_count(fresh) == 1
    fresh.evaluate("document.querySelector('#items tbody tr.item').click()")
    shown = fresh.evaluate("[...document.querySelectorAll('#items tr.detail dd')].map(d => d.textContent)")
    assert shown[:2] == [HOSTILE, HOSTILE]  # prompt and output
    assert fresh.evaluate("document.querySelectorAll('img').length") == 0
    assert fresh.evaluate("document.querySelectorAll('script').length") == 2
    assert fresh.problems() == []


def test_the_charts_draw_every_run_and_model(fresh: Browser, page: Page) -> None:
    points = sum(1 for r in page.history if r["value"] is not None)
    assert fresh.evaluate("document.querySelectorAll('#charts circle[r=\"3.2\"]').length") == points
    titles = fresh.evaluate("[...document.querySelectorAll('#charts .chart h4')].map(h => h.textContent)")
    metrics = [(t, m) for t, d in page.report["details"].items() for m in next(iter(d.values()))["metrics"]]
    for task, metric in metrics:
        assert f"{task} · {metric} over recent runs" in titles
        assert f"{task} · {metric} per item" in titles
    assert sum("latency" in t for t in titles) == len(page.report["details"])


def test_screenshot_is_a_real_picture_of_the_report(page: Page, chromium: str, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    with Browser(chromium, WIDTH, HEIGHT) as browser:
        browser.open(page.path.as_uri())
        png = browser.screenshot(shot)
        assert browser.problems() == []
        browser.open("about:blank")
        colours = browser.evaluate(
            f"""new Promise((resolve, reject) => {{
              const image = new Image();
              image.onload = () => {{
                const canvas = document.createElement("canvas");
                canvas.width = image.width;
                canvas.height = image.height;
                const context = canvas.getContext("2d");
                context.drawImage(image, 0, 0);
                const data = context.getImageData(0, 0, image.width, image.height).data;
                const pixels = new Uint32Array(data.buffer);
                resolve(new Set(pixels).size);
              }};
              image.onerror = () => reject(new Error("not an image"));
              image.src = "data:image/png;base64,{base64.b64encode(png).decode()}";
            }})"""
        )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour_type = struct.unpack(">IIBB", png[16:26])
    assert (width, height) == (WIDTH, HEIGHT)
    channels = {2: 3, 6: 4}[colour_type]
    assert len(zlib.decompress(idat(png))) == height * (1 + width * channels * depth // 8)
    assert colours > 200, f"the screenshot has {colours} colours: is the page blank? {shot}"


def idat(png: bytes) -> bytes:
    """The image data of a PNG: its IDAT chunks joined."""
    data, offset = b"", 8
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset : offset + 8])
        if kind == b"IDAT":
            data += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return data


def test_twelve_thousand_items_stay_responsive(page: Page, chromium: str, tmp_path: Path) -> None:
    """Only a page of rows is in the DOM, so filtering many items takes milliseconds, not seconds."""
    items = [{**item, "id": f"{item['id']}-{copy}"} for copy in range(125) for item in page.items]
    assert len(items) >= 12_000
    path = tmp_path / "report.html"
    path.write_bytes(render_html(page.report, items, page.history))
    with Browser(chromium, WIDTH, HEIGHT) as browser:
        browser.open(path.as_uri())
        assert shown_count(browser) == len(items)
        elapsed = browser.evaluate(
            """(() => {
              const search = document.getElementById("search");
              const started = performance.now();
              search.value = "harrowgate";
              search.dispatchEvent(new Event("input"));
              return performance.now() - started;
            })()"""
        )
        expected = sum("harrowgate" in f"{i['id']}\n{i['prompt']}\n{i['output']}".lower() for i in items)
        assert shown_count(browser) == expected
        assert browser.evaluate("document.querySelectorAll('#items tbody tr').length") <= PAGE_SIZE
        assert elapsed < 500, f"filtering {len(items)} items took {elapsed:.0f} ms"
        assert browser.problems() == []


def test_a_report_without_results_still_renders(chromium: str, tmp_path: Path) -> None:
    """A run that failed before scoring anything has a page too: its error, empty sections, no crash."""
    report = {"benchmarkId": "bmk-000000000000", "name": "Broken", "status": "failed", "report": {}}
    path = tmp_path / "report.html"
    path.write_bytes(render_html({**report, "error": HOSTILE}, [], []))
    with Browser(chromium, WIDTH, HEIGHT) as browser:
        browser.open(path.as_uri())
        assert (
            browser.evaluate("document.querySelector('header p.failed').textContent") == f"Error: {HOSTILE}"
        )
        assert browser.evaluate("document.getElementById('item-count').textContent") == "0 of 0 items"
        assert browser.problems() == []
