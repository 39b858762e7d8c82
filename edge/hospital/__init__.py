"""Results for hospital systems: FHIR R4 Bundles and DICOM Comprehensive SR documents, each a view of one screening
result (``cardiacnets.screening/2``, ``docs/screening-output.md``).

Modules: :mod:`.codes` (the terminology: LOINC, UCUM, DICOM codes, and the project's own CodeSystem and extension
definitions, declared once), :mod:`.fhir` (:func:`~.fhir.fhir_bundle`), :mod:`.fhir_store` (``cnscreen batch --format
fhir``: one Bundle per input, NDJSON, resumable) and :mod:`.dicom_sr` (:func:`~.dicom_sr.dicom_sr`).
How they are validated: ``docs/hospital-systems.md``.

The FHIR models come from ``fhir.resources`` (its R4B line, whose resources used here are element for element those of
R4 4.0.1) and the SR from ``highdicom``: both are the ``[hospital]`` extra, imported only when a hospital output is
asked for.
"""

from __future__ import annotations

import importlib.util

from cardiacnets.errors import InputError

__all__ = ["require_hospital_extra"]


def require_hospital_extra() -> None:
    """Refuse at once, with the fix, when the ``[hospital]`` extra (fhir.resources, highdicom) is not installed."""
    missing = [name for name in ("fhir", "highdicom") if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"FHIR and DICOM SR outputs need the [hospital] extra (missing: {', '.join(missing)}):"
            " pip install 'cardiacnets[hospital]'"
        )
