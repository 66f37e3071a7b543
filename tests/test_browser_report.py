"""The HTML report in a real headless browser (Chromium): figures load, no errors, verdicts.

A copy of the rendered page gets a small script that records failed loads, script errors
and ``console.error`` calls, and writes what the browser sees (each image's natural size,
the verdict table) into the DOM, which ``chromium --dump-dom`` prints. ``.ci/run`` installs
Debian's ``chromium`` when it is missing; without any browser these tests skip.
"""

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from overparam.experiments.papers.demo import POWER_LAW
from overparam.experiments.report import write_report
from overparam.experiments.runner import run_experiments

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: The verdict table (paper's claim vs measured, one row per experiment) has this id.
VERDICTS_SELECTOR = "#verdicts"

PROBE = """<script>
window.__problems = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) {
    window.__problems.push("failed to load " + (t.src || t.href));
  } else {
    window.__problems.push("script error: " + e.message);
  }
}, true);
var __consoleError = console.error.bind(console);
console.error = function () {
  window.__problems.push("console.error: " + Array.prototype.join.call(arguments, " "));
  __consoleError.apply(null, arguments);
};
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {src: img.getAttribute("src"), complete: img.complete,
            width: img.naturalWidth, height: img.naturalHeight};
  });
  var out = document.createElement("pre");
  out.id = "__browser_check";
  out.textContent = JSON.stringify({images: images, problems: window.__problems,
                                    verdicts: !!document.querySelector("__SELECTOR__")});
  document.body.appendChild(out);
});
</script>""".replace("__SELECTOR__", VERDICTS_SELECTOR)


def _browser():
    for name in (os.environ.get("OVERPARAM_BROWSER"), *BROWSERS):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.skip("no headless browser found (chromium, google-chrome); .ci/run installs "
                "Debian's chromium with apt-get")


def _run_browser(browser, tmp_path, *args):
    profile = tmp_path / "chromium-profile"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
           "--virtual-time-budget=10000", "--window-size=1280,2400", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _check_in_browser(browser, page, tmp_path) -> dict:
    """Load ``page`` with the probe injected; the probe's findings."""
    text = page.read_text()
    probed = page.with_name(f".probe-{page.name}")
    head = re.search(r"<head[^>]*>", text)
    at = head.end() if head else 0
    probed.write_text(text[:at] + PROBE + text[at:])
    out = _run_browser(browser, tmp_path, "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="__browser_check">(.*?)</pre>', out.stdout, re.DOTALL)
    assert found, f"the page never fired its load event:\n{out.stdout[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    result["uncaught"] = [line for line in out.stderr.splitlines() if "Uncaught" in line]
    return result


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-report")
    run_experiments([POWER_LAW], quick=True, store=tmp / "results.sqlite", outdir=tmp / "run",
                    progress=False)
    return write_report(tmp / "results.sqlite", tmp / "report")


def test_report_figures_load_without_errors(report, tmp_path):
    browser = _browser()
    seen = _check_in_browser(browser, report.html, tmp_path)
    assert seen["images"], "the report shows no figure"
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
    assert seen["problems"] == [] and seen["uncaught"] == []


def test_report_screenshot_is_not_blank(report, tmp_path):
    from matplotlib.image import imread

    browser = _browser()
    shot = tmp_path / "report.png"
    _run_browser(browser, tmp_path, f"--screenshot={shot}", report.html.as_uri())
    pixels = imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    # Text, tables and the figure: many distinct grey levels, not a blank page.
    assert np.unique(np.round(pixels[..., :3].mean(axis=-1), 2)).size > 20


def test_probe_catches_a_missing_figure(tmp_path):
    """The check can fail: an image that does not exist is reported."""
    browser = _browser()
    page = tmp_path / "broken.html"
    page.write_text("<html><head><title>t</title></head><body>"
                    "<img src='missing.png' alt='x'><p>text</p></body></html>")
    seen = _check_in_browser(browser, page, tmp_path)
    assert seen["images"][0]["width"] == 0
    assert any("missing.png" in p for p in seen["problems"])


def test_report_has_the_verdict_table(report, tmp_path):
    browser = _browser()
    assert _check_in_browser(browser, report.html, tmp_path)["verdicts"]
