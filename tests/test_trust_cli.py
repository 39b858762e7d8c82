"""`cnexport trust`, `cnexport keygen/sign/verify` and `cnscreen --operating-point/--trusted-key` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cardiacnets.bundle import load_bundle, verify_bundle
from tests.edge_fixtures import make_tiny_bundle
from tests.test_edge_screen import write_wfdb_ecg

CNEXPORT = [sys.executable, "-c", "import sys; from cardiacnets.export.cli import main; main(sys.argv[1:])"]
CNSCREEN = [sys.executable, "-c", "import sys; from cardiacnets.edge.cli import main; main(sys.argv[1:])"]


@pytest.fixture(scope="module")
def trusted_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test graph with trust artefacts fitted on a 600-subject synthetic cohort by the real command."""
    root = tmp_path_factory.mktemp("trust")
    source = make_tiny_bundle(root / "tiny")
    out = root / "trusted"
    proc = subprocess.run(
        [
            *CNEXPORT,
            "trust",
            str(source),
            "--out",
            str(out),
            "--subjects",
            "600",
            "--report",
            str(root / "report"),
            "--version",
            "0.0.1",
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert (root / "report" / "report.md").is_file() and (root / "report" / "reliability.png").is_file()
    return out


def test_trust_adds_calibration_bands_intervals_and_ood_to_a_bundle(trusted_bundle: Path, tmp_path: Path) -> None:
    bundle = load_bundle(trusted_bundle)
    assert verify_bundle(trusted_bundle) == [] and bundle.manifest["version"] == "0.0.1"
    for entry in bundle.thresholds.values():
        assert entry["scale"] == "calibrated"
        for point in ("youden", "high_specificity"):
            low, high = entry["band"][point]
            assert low <= entry[point] <= high
    assert (trusted_bundle / "trust.json").is_file() and "trust.json" in bundle.manifest["files"]
    proc = subprocess.run([*CNSCREEN, str(write_wfdb_ecg(tmp_path)), "--bundle", str(trusted_bundle), "--json"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["model"]["calibrated"] is True and "note_trust" not in result
    assert set(result["distribution"]) >= {"in_distribution", "score", "threshold", "views", "reasons"}
    assert all(d["decision"] in ("flagged", "clear", "indeterminate") for d in result["diseases"].values())
    assert all(p["interval"][0] <= p["value"] <= p["interval"][1] for p in result["phenotypes"].values())


def test_operating_point_picks_the_stored_thresholds(trusted_bundle: Path, tmp_path: Path) -> None:
    path = write_wfdb_ecg(tmp_path)
    results = {}
    for point in ("youden", "high-specificity"):
        proc = subprocess.run([*CNSCREEN, str(path), "--bundle", str(trusted_bundle), "--json", "--operating-point",
                               point], capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        results[point] = json.loads(proc.stdout)
    thresholds = load_bundle(trusted_bundle).thresholds
    for disease, entry in thresholds.items():
        assert results["youden"]["diseases"][disease]["threshold"] == round(entry["youden"], 4)
        assert results["high-specificity"]["diseases"][disease]["threshold"] == round(entry["high_specificity"], 4)
        assert results["high-specificity"]["diseases"][disease]["operating_point"] == "high_specificity"
    bad = subprocess.run([*CNSCREEN, str(path), "--bundle", str(trusted_bundle), "--operating-point", "best"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "--operating-point" in bad.stderr and "'best'" in bad.stderr


def test_signed_bundles_and_trusted_keys_through_the_clis(trusted_bundle: Path, tmp_path: Path) -> None:
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(trusted_bundle, bundle)
    ecg = write_wfdb_ecg(tmp_path / "ecg")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True)

    assert (
        run(*CNEXPORT, "keygen", "--private", str(tmp_path / "k.key"), "--public", str(tmp_path / "k.pub")).returncode
        == 0
    )
    refused = run(*CNSCREEN, str(ecg), "--bundle", str(bundle), "--trusted-key", str(tmp_path / "k.pub"))
    assert refused.returncode == 5 and "is not signed" in refused.stderr and len(refused.stderr.splitlines()) == 1
    signed = run(*CNEXPORT, "sign", str(bundle), "--key", str(tmp_path / "k.key"))
    assert signed.returncode == 0, signed.stderr
    ok = run(*CNSCREEN, str(ecg), "--bundle", str(bundle), "--trusted-key", str(tmp_path / "k.pub"), "--json")
    assert ok.returncode == 0, ok.stderr
    verified = run(*CNEXPORT, "verify", str(bundle), "--trusted-key", str(tmp_path / "k.pub"))
    assert verified.returncode == 0 and "signed by trusted key" in verified.stdout
    # Any later edit of the manifest fails verification, signed or not.
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["thresholds"]["CAD"]["youden"] = 0.99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    edited = run(*CNSCREEN, str(ecg), "--bundle", str(bundle), "--trusted-key", str(tmp_path / "k.pub"))
    assert edited.returncode == 5 and "edited" in edited.stderr


def test_each_declared_lead_set_gets_its_own_trust_artefacts(trusted_bundle: Path, tmp_path: Path) -> None:
    """A bundle screening from reduced lead sets is calibrated, thresholded and OOD-checked per set: the single-lead
    artefacts are fitted on the cohort with only lead I, and a single-lead file is decided with them."""
    from cardiacnets.bundle import write_manifest
    from tests.test_edge_leadsets import write_single_lead_csv

    source = make_tiny_bundle(tmp_path / "tiny", lead_sets=["12", "I"])
    out = tmp_path / "trusted"
    proc = subprocess.run([*CNEXPORT, "trust", str(source), "--out", str(out), "--subjects", "600", "--report",
                           str(tmp_path / "report")], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    spec = json.loads((out / "trust.json").read_text())
    single = spec["lead_sets"]["I"]
    assert set(spec["lead_sets"]) == {"I"} and "lead set I" in single["fitted_on"]["calibration"]
    assert single["calibration"] != spec["calibration"] and single["ood"]["threshold"] > 0
    manifest = load_bundle(out).manifest
    assert set(manifest["trust"]["lead_sets"]) == {"I"}
    assert "single lead I" in (tmp_path / "report" / "report.md").read_text()

    done = subprocess.run([*CNSCREEN, str(write_single_lead_csv(tmp_path)), "--bundle", str(out), "--json"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["lead_set"] == "I" and result["model"]["calibrated"] is True
    for disease, entry in result["diseases"].items():  # the single-lead thresholds, not the manifest's 12-lead ones
        assert entry["threshold"] == round(single["thresholds"][disease][entry["operating_point"]], 4)
    assert result["distribution"]["threshold"] == round(single["ood"]["threshold"], 4)

    # A bundle that declares a lead set its trust data lacks is refused with one line, not screened uncalibrated.
    lacking = tmp_path / "lacking"
    import shutil

    shutil.copytree(trusted_bundle, lacking)
    edited = json.loads((lacking / "manifest.json").read_text())
    edited["lead_sets"] = ["12", "limb6"]
    write_manifest(lacking, {k: v for k, v in edited.items() if k not in ("files", "digest", "bundle_format_version")})
    refused = subprocess.run([*CNSCREEN, str(write_single_lead_csv(tmp_path)), "--bundle", str(lacking)],
                             capture_output=True, text=True)  # fmt: skip
    assert refused.returncode != 0 and "limb6" in refused.stderr and "cnexport trust" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
