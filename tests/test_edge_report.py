"""`cnscreen FILE --report`: the HTML report renders in a real headless Chromium, images load, no console errors."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.edge.report import flagged_saliency, render_report
from cardiacnets.edge.screen import Screener
from tests.edge_fixtures import make_tiny_bundle
from tests.test_edge_screen import write_wfdb_ecg

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def _tiny_gif() -> bytes:
    import imageio.v3 as iio

    frames = (np.random.default_rng(0).random((4, 16, 16)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    iio.imwrite(buffer, frames, extension=".gif", loop=0, duration=80)
    return buffer.getvalue()


def test_report_content_and_escaping(tiny_bundle: Path, tmp_path: Path) -> None:
    path = write_wfdb_ecg(tmp_path / "dir<script>", "rec")
    result, prepared = Screener(tiny_bundle, device="cpu").screen_file(path, keep_signal=True)
    page = render_report(result, prepared, {"short axis": _tiny_gif()})
    assert "<script>" not in page  # the file name is escaped
    assert "dir&lt;script&gt;" in page
    assert "SYNTHETIC" in page and "AI-GENERATED" in page
    assert page.count("data:image/png;base64,") == 1 and page.count("data:image/gif;base64,") == 1
    for code in ("CAD", "PH", "PC", "CM", "HF"):
        assert f"({code})" in page


def test_saliency_sums_flagged_diseases() -> None:
    saliency = np.zeros((5, 12, 50))
    saliency[0, 1, 3] = 2.0  # CAD evidence
    saliency[4, 7, 9] = -1.0  # negative HF evidence is not shown
    result = {
        "diseases": {d: {"flagged": d in ("CAD", "HF"), "probability": 0.9} for d in ("CAD", "PH", "PC", "CM", "HF")}
    }
    combined, note = flagged_saliency(result, saliency)
    assert combined[1, 3] == 2.0 and combined[7, 9] == 0.0 and "CAD" in note and "HF" in note


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium/chromedriver not installed (scripts/install.sh installs them under CI)",
)
def test_report_renders_in_headless_chromium(tiny_bundle: Path, tmp_path: Path) -> None:
    selenium = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    ecg = write_wfdb_ecg(tmp_path, "rec")
    report = tmp_path / "report.html"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cardiacnets.edge.cli import main; main(sys.argv[1:])",
            str(ecg),
            "--bundle",
            str(tiny_bundle),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = selenium.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(report.as_uri())
        assert driver.title == "CardiacNets screening report"
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        assert images and all(done and w > 0 and h > 0 for done, w, h in images), images
        width = driver.execute_script("return document.querySelector('img.ecg').naturalWidth;")
        assert width > 800  # the ECG paper is drawn at a readable resolution
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        assert "coronary artery disease" in driver.find_element("tag name", "body").text
    finally:
        driver.quit()
