"""``report --html``: one self-contained page, opened in a real headless Chromium.

The browser is Debian's ``chromium`` driven through its ``chromedriver`` by selenium (dev
extra); ``.ci/run`` installs both. Locally the browser test is skipped when they are missing;
in CI it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report_data import generate, write_jsonl
from otel_runctx.cli.command import main
from otel_runctx.cli.report import Report, build_report
from otel_runctx.cli.report_html import render_html

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,2400",
)
_MISSING = "chromium and chromium-driver not installed: apt-get install chromium chromium-driver"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    records, _ = generate(3000, seed=5, customers=6, spans_per_run=8)
    # A customer name that must be escaped, not interpreted.
    for record in records:
        attributes = record["attributes"]
        if attributes.get("runctx.customer_id") == "cust-005":
            attributes["runctx.customer_id"] = "<b>acme & co</b>"
    path = tmp_path_factory.mktemp("html") / "t.jsonl"
    write_jsonl(path, records)
    return build_report([str(path)])


def test_the_page_is_self_contained_and_escapes_what_it_shows(report: Report) -> None:
    page = render_html(report)
    # Nothing the browser would fetch: no external script, style, image, font or frame.
    assert not re.search(r"""(src|href)\s*=|url\(|@import|fetch\(|XMLHttpRequest""", page)
    assert "<b>acme" not in page and "&lt;b&gt;acme &amp; co&lt;/b&gt;" in page
    assert page.count('data-chart="cost"') == len(report.customers)


def test_cli_writes_the_page(tmp_path: Path, report: Report, capsys: Any) -> None:
    records, _ = generate(200, seed=2, customers=2, spans_per_run=4)
    source = tmp_path / "t.jsonl"
    write_jsonl(source, records)
    target = tmp_path / "out" / "report.html"
    assert main(["report", str(source), "--html", str(target)]) == 0
    assert f"HTML report written to {target}" in capsys.readouterr().out
    assert target.read_text().startswith("<!DOCTYPE html>")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        if _in_ci():
            pytest.fail(f"{_MISSING} (.ci/run installs them; CI must run this test)")
        pytest.skip(_MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_chromium_renders_one_bar_per_customer_and_sorts_tables(
    browser: Any, report: Report, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    page = tmp_path / "report.html"
    page.write_text(render_html(report))
    browser.get(page.as_uri())

    def bars(chart: str) -> list[Any]:
        return list(browser.find_elements(By.CSS_SELECTOR, f'.bar[data-chart="{chart}"]'))

    cost = bars("cost")
    assert [b.get_attribute("data-customer-id") for b in cost] == [
        c["customer_id"] for c in report.customers
    ]
    # Drawn, and to scale: the dearest customer's bar is the widest, and none is empty.
    widths = [b.size["width"] for b in cost]
    top = max(range(len(report.customers)), key=lambda i: report.customers[i]["cost"])
    assert min(widths) > 0 and widths[top] == max(widths)
    assert len(bars("tokens")) == 2 * len(report.customers)
    statuses = sum(len(w["outcomes"]) for w in report.workflows)
    assert len(bars("outcomes")) == statuses
    assert len(bars("durations")) == 2 * len(report.workflows)
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert len(rows) == min(25, len(report.events))

    # Sorting: clicking "customer" orders the customers table by name, descending first.
    header = browser.find_element(By.CSS_SELECTOR, "#customers th")
    header.click()
    names = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#customers td:first-child")]
    assert names == sorted((c["customer_id"] for c in report.customers), reverse=True)

    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("RUNCTX_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["RUNCTX_KEEP_SCREENSHOT"])
    # The page fetched nothing and logged no error.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
