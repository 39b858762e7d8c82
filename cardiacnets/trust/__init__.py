"""Trust: results a clinician can rely on (calibrated, consistent, with uncertainty, honest about the unfamiliar).

* :mod:`~cardiacnets.trust.calibration`: disease probabilities calibrated on a validation split (Platt or isotonic).
* :mod:`~cardiacnets.trust.conformal`: split-conformal intervals for the 82 phenotypes.
* :mod:`~cardiacnets.trust.phenotypes`: the phenotype identities (SV = EDV - ESV, EF, cardiac output).
* :mod:`~cardiacnets.trust.ood`: the out-of-distribution check (encoder embedding and signal statistics).
* :mod:`~cardiacnets.trust.model`: the fitted artefacts a bundle ships (``trust.json``) and their application.

Fitted by ``cardiacnets.export`` when a bundle is built, stored in the bundle (covered by its digest), applied by the
edge to every result. Pure numpy: the torch-free screening install uses all of it.
"""

from __future__ import annotations

from cardiacnets.trust.model import (
    DECISIONS,
    OPERATING_POINTS,
    TRUST_FILE,
    TRUST_SCHEMA,
    DistributionCheck,
    TrustModel,
    decide,
)

__all__ = ["DECISIONS", "OPERATING_POINTS", "TRUST_FILE", "TRUST_SCHEMA", "DistributionCheck", "TrustModel", "decide"]
