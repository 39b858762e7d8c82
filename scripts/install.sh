#!/usr/bin/env bash
# One-command set-up: a virtual environment in .venv with torch 2.13.0 (CPU build) installed first, then this package
# with every extra (train, export, cine, parquet, dev, cluster: Ray for `--engine ray`). For the screening-only install
# without torch, see the README ("Install for screening only").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch first and pinned: an open range in a fresh environment can pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[all]"
# The HTML-report test drives Debian's headless Chromium. CI (and anyone who sets CNS_INSTALL_BROWSER=1) installs it;
# elsewhere that one test skips and says why.
if { [ "${CI:-}" = "true" ] || [ "${CNS_INSTALL_BROWSER:-}" = "1" ]; } && ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
      echo "warning: apt-get could not install chromium; the browser test will skip" >&2
    fi
  else
    echo "warning: cannot install chromium (needs root and apt-get); the browser test will skip" >&2
  fi
fi
# The hospital-output tier (CNS_HOSPITAL=1: tests/test_hospital_validation.py) runs the standards' validators:
# Debian's dicom3tools (dciodvfy) and dcmtk (dsrdump), and HL7's FHIR R4 JSON schema (scripts/fhir_validator.sh
# schema). CI (and anyone who sets CNS_INSTALL_HOSPITAL=1) installs them; elsewhere those tests skip and say why.
if [ "${CI:-}" = "true" ] || [ "${CNS_INSTALL_HOSPITAL:-}" = "1" ]; then
  if ! { command -v dciodvfy && command -v dsrdump; } >/dev/null; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
      if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools dcmtk >/dev/null; }; then
        echo "warning: apt-get could not install dicom3tools and dcmtk; the DICOM SR validator tests will skip" >&2
      fi
    else
      echo "warning: cannot install dicom3tools and dcmtk (needs root and apt-get); the DICOM SR tests will skip" >&2
    fi
  fi
  bash scripts/fhir_validator.sh schema >/dev/null || echo "warning: HL7's FHIR R4 JSON schema not fetched" >&2
fi
echo "cardiacnets installed in .venv ($(.venv/bin/python -c 'import cardiacnets; print(cardiacnets.__version__)'))" >&2
