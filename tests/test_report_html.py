"""The HTML report: one self-contained page; in a real browser (slow): no errors, plots load, no sideways scroll."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import datakit
from tests.report_data import full_manifest

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push(e.message || ('failed to load ' + ((e.target && (e.target.src || e.target.href)) || '?')));
}, true);
var __consoleError = console.error;
console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, ' ')); __consoleError.apply(console, arguments); };
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var result = {
    errors: window.__errors,
    images: imgs.length,
    broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.alt; }),
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
    sections: document.querySelectorAll('section').length
  };
  window.__result = result;
});
</script>"""

# headless Chromium windows are at least 500 px wide: the page is measured in a 390-px iframe
FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="probe.html" style="width:390px;height:%dpx;border:0"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {
  var w = this.contentWindow, r = w.__result || {errors: ['probe did not run']};
  r.scrollWidth = w.document.documentElement.scrollWidth;
  r.clientWidth = w.document.documentElement.clientWidth;
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script></body></html>"""


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("html")
    manifest = full_manifest(root)
    report = datakit.balance_report(manifest, html=root / "report.html", workers=1, show_progress=False,
                                    fail_on=["leakage>0"])
    assert report.failed and report.html == root / "report.html"
    return root / "report.html"


def test_page_is_self_contained_with_every_section(full_report):
    text = full_report.read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    # nothing is fetched: no external URL in any src/href, no script, no stylesheet link
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    assert "<script" not in text and "<link" not in text
    for title in ("Overview", "Class balance", "Variance and image issues", "Shortcuts", "Duplicates and leakage",
                  "Boxes and masks"):
        assert f"<h2>{title}</h2>" in text
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(uris) >= 4
    for uri in uris:
        assert base64.b64decode(uri)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Failed checks:" in text and "leakage = 1" in text
    assert "datakit augment" in text


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
                       shell=True, check=False, capture_output=True, timeout=900)
    return shutil.which("chromium")


@pytest.mark.slow
def test_page_in_headless_chromium_at_phone_width(full_report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed and could not be installed")
    (tmp_path / "probe.html").write_text(full_report.read_text().replace("<head>", "<head>" + PROBE, 1))
    (tmp_path / "frame.html").write_text(FRAME % 844)
    (tmp_path / "tall.html").write_text((FRAME % 2400).replace("probe.html", full_report.name))
    shutil.copyfile(full_report, tmp_path / full_report.name)
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--allow-file-access-from-files", "--window-size=500,844", "--virtual-time-budget=10000",
             f"--user-data-dir={tmp_path / 'profile'}"]
    run = subprocess.run([*flags, "--enable-logging=stderr", "--v=0", "--dump-dom", (tmp_path / "frame.html").as_uri()],
                         capture_output=True, text=True, timeout=180)
    match = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert match, run.stderr[-2000:]
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert result["images"] >= 4 and result["broken"] == []
    assert result["sections"] == 6
    assert result["scrollWidth"] <= result["clientWidth"] <= 390
    console_errors = [line for line in run.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert console_errors == []
    shot = Path(os.environ.get("DATAKIT_SCREENSHOT_DIR", tmp_path)) / "balance_report_390px.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*flags[:-3], "--window-size=390,2400", f"--user-data-dir={tmp_path / 'profile2'}",
                    f"--screenshot={shot}", (tmp_path / "tall.html").as_uri()], capture_output=True, timeout=180, check=True)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
