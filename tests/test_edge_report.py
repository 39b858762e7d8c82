"""`cnscreen FILE --report`: the ECG printout (the model's window, saliency aligned, gain, calibration pulse), the HTML
report in a real headless Chromium for every corpus file, the one-page PDF, the header without identifiers."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cardiacnets.ecgpaper.layout import MM_PER_S, PULSE_MM, layout_page
from cardiacnets.edge.report import flagged_saliency, render_report, report_page, write_report
from cardiacnets.edge.screen import Screener
from cardiacnets.synth.writers import write_wfdb
from tests.edge_fixtures import make_tiny_bundle
from tests.synthetic_ecg import synthetic_ecg
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
    page = render_report(result, prepared, {"short axis": _tiny_gif()}, include_phi=True)  # the full path is shown
    assert "<script>" not in page  # the file name is escaped
    assert "dir&lt;script&gt;" in page
    assert "SYNTHETIC" in page and "AI-GENERATED" in page
    assert page.count("<svg") == 1 and page.count("data:image/gif;base64,") == 1
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


def _tiny_page(duration_s: float = 14.0, fs: float = 500.0, spike_at: float = 2.3, amplitude: float = 1.0):
    n = int(duration_s * fs)
    signal = np.zeros((12, n), dtype=np.float32)
    signal[0, int(spike_at * fs)] = amplitude  # lead I
    return signal


def test_layout_draws_the_models_window_with_saliency_on_the_same_time_axis() -> None:
    signal = _tiny_page()
    saliency = np.zeros((12, 50))
    saliency[0, 1] = 1.0  # lead I, 0.2-0.4 s into the model's window
    page = layout_page(signal, 500.0, start_s=2.0, saliency=saliency)
    lead_i = next(t for t in page.traces if t.lead == "I")
    peak_x = lead_i.x[np.argmin(lead_i.y)]  # y points down: the spike is the smallest y
    assert abs(peak_x - (PULSE_MM + 0.3 * MM_PER_S)) < 0.1  # 2.3 s in the record = 0.3 s into the window
    strips = [e for e in page.evidence if e.lead == "I"]
    assert len(strips) == 1 and strips[0].x0 == pytest.approx(PULSE_MM + 0.2 * MM_PER_S)
    assert page.gain == 10.0 and "10 mm/mV" in page.gain_note
    for trace in page.traces:  # every trace stays in its box
        x, y, w, h = trace.box
        assert x - 1e-6 <= trace.x.min() and trace.x.max() <= x + w + 1e-6
        assert y <= trace.y.min() and trace.y.max() <= y + h


def test_tall_traces_lower_the_gain_and_say_so() -> None:
    signal = np.zeros((12, 5000), dtype=np.float32)
    complex_ = 2.5 * (1 - np.abs(np.arange(-10, 11)) / 10)  # 40-ms, 2.5-mV complexes in V1: 25 mm at 10 mm/mV
    for start in range(100, 5000 - 21, 500):  # would leave a 30-mm row
        signal[6, start : start + 21] = complex_
    page = layout_page(signal, 500.0)
    assert page.gain == 5.0 and "5 mm/mV" in page.gain_note
    pulse = page.pulses[0]
    assert pulse[1].max() - pulse[1].min() == pytest.approx(5.0)  # the 1-mV pulse is drawn at the page's gain


@pytest.mark.parametrize(("seconds", "window"), [(14.0, [2.0, 12.0]), (8.0, [0.0, 8.0])])
def test_result_says_which_window_the_model_saw(tiny_bundle: Path, tmp_path: Path, seconds, window) -> None:
    signal = synthetic_ecg(fs=500.0, duration_s=seconds, rng=np.random.default_rng(1))
    path = write_wfdb(tmp_path / "rec", signal)
    result, prepared = Screener(tiny_bundle, device="cpu").screen_file(path, keep_signal=True)
    assert result["record"]["model_window_s"] == window
    assert prepared.window_start_s == pytest.approx((seconds - 10.0) / 2)


def test_header_names_the_file_only_unless_phi_is_asked_for(tiny_bundle: Path, tmp_path: Path) -> None:
    path = write_wfdb_ecg(tmp_path / "ward-7 smith", "rec")
    screener = Screener(tiny_bundle, device="cpu")
    result, prepared = screener.screen_file(path, keep_signal=True)
    page = render_report(result, prepared)
    assert "rec.hea" in page and "ward-7 smith" not in page and "DOE" not in page
    result, prepared = screener.screen_file(path, keep_signal=True, include_phi=True)
    page = render_report(result, prepared, include_phi=True)
    assert "ward-7 smith" in page and "DOE^JANE" in page


def test_pdf_report_is_one_page(tiny_bundle: Path, tmp_path: Path) -> None:
    path = write_wfdb_ecg(tmp_path, "rec")
    out = tmp_path / "printout.pdf"
    code = _cnscreen(str(path), "--bundle", str(tiny_bundle), "--report", str(out)).returncode
    data = out.read_bytes()
    assert code == 0 and data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", data)) == 1


def test_cleaned_report_draws_the_models_filtering(tiny_bundle: Path, tmp_path: Path) -> None:
    signal = synthetic_ecg(fs=500.0, duration_s=10.0, rng=np.random.default_rng(2))
    t = np.arange(signal.shape[1]) / 500.0
    signal = signal + (0.8 * np.sin(2 * np.pi * 0.3 * t)).astype(np.float32)  # baseline wander
    path = write_wfdb(tmp_path / "wander", signal)
    result, prepared = Screener(tiny_bundle, device="cpu").screen_file(path, keep_signal=True)
    raw, _ = report_page(result, prepared, "raw")
    cleaned, _ = report_page(result, prepared, "cleaned")
    assert _wander_mv(raw) > 1.0  # 0.8 mV amplitude of drift ...
    assert _wander_mv(cleaned) < 0.2  # ... gone from the cleaned printout


def _wander_mv(page) -> float:
    """Peak-to-peak (mV) of the rhythm strip's 1-s medians: the baseline's travel across the strip."""
    strip = next(trace for trace in page.traces if trace.row == 3)
    seconds = ((strip.x - PULSE_MM) // MM_PER_S).astype(int)
    return float(np.ptp([np.median(strip.y[seconds == k]) for k in range(10)])) / page.gain


def _cnscreen(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from cardiacnets.edge.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_report_name_must_be_html_or_pdf(tiny_bundle: Path, tmp_path: Path) -> None:
    proc = _cnscreen(str(write_wfdb_ecg(tmp_path, "rec")), "--bundle", str(tiny_bundle), "--report", "r.docx")
    assert proc.returncode == 2 and ".html or .pdf" in proc.stderr and "Traceback" not in proc.stderr


def _chromium_driver(tmp_path: Path):
    selenium = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

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
        "--window-size=1400,1200",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return selenium.Chrome(service=Service(CHROMEDRIVER), options=options)


# For each lead: its label, and whether its drawn trace (bounding box in the SVG's mm) lies inside its row's box.
_TRACES_IN_BOXES = """
return Array.from(document.querySelectorAll('svg.ecg-paper g.lead')).map(g => {
  const box = g.querySelector('rect.box').getBBox(), path = g.querySelector('path.trace');
  const t = path.getAttribute('d') ? path.getBBox() : box;
  return [g.dataset.lead, g.querySelector('text').textContent,
          t.x >= box.x - 0.01 && t.x + t.width <= box.x + box.width + 0.01 &&
          t.y >= box.y - 0.01 && t.y + t.height <= box.y + box.height + 0.01,
          path.getAttribute('d').length > 0];
});
"""


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium/chromedriver not installed (scripts/install.sh installs them under CI)",
)
def test_every_corpus_report_renders_in_headless_chromium(conformance_dir: Path, tmp_path: Path) -> None:
    """Every conformance-corpus file's report (default bundle): renders, no console errors, 13 traces in their boxes
    with their labels, and the SVG is drawn at a readable size."""
    from cardiacnets.edge.batch import enumerate_inputs
    from cardiacnets.errors import CardiacNetsError

    screener = Screener(device="cpu")
    reports = []
    for item in enumerate_inputs(conformance_dir):
        try:
            result, prepared = screener.screen_file(item.path, keep_signal=True)
        except CardiacNetsError:
            continue  # files the readers refuse are covered by the conformance tests
        out = tmp_path / f"report{len(reports)}.html"
        write_report(result, prepared, out)
        reports.append((item.path, out))
    assert len(reports) >= 20
    driver = _chromium_driver(tmp_path)
    try:
        for source, report in reports:
            driver.get(report.as_uri())
            assert driver.title == "CardiacNets screening report", source
            leads = driver.execute_script(_TRACES_IN_BOXES)
            assert len(leads) == 13, source
            for lead, label, inside, drawn in leads:
                assert label == lead and inside and drawn, (source, lead)
            width = driver.execute_script(
                "return document.querySelector('svg.ecg-paper').getBoundingClientRect().width"
            )
            assert width > 800, source
            errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
            assert errors == [], (source, errors)
            assert "coronary artery disease" in driver.find_element("tag name", "body").text
    finally:
        driver.quit()
