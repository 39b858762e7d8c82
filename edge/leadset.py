"""Which lead set an ECG is screened with (issue 22): the richest set the bundle declares that the file holds.

A bundle whose model was fine-tuned with lead masking declares its sets (``manifest["lead_sets"]``,
:mod:`cardiacnets.leadsets`). For such a bundle a file that lacks leads (the reader zero-fills them and lists them in
``meta["missing_leads"]``) is screened with the richest declared set whose leads are all present (stored, or derived
exactly from I and II by the reader): the leads outside the set are zeroed in the model input, and QC failures about
those leads become warnings, since the model does not use them. A bundle that declares no sets, or a file that fits
none of them, is screened as before: 12-lead input, zero-filled leads failing QC. The set used is
``PreparedEcg.lead_set`` and the result's ``lead_set``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cardiacnets.leadsets import DEFAULT_LEAD_SET, LEAD_SET_WORDS, LEAD_SETS, apply_lead_set, choose_lead_set
from cardiacnets.record import LEADS

__all__ = ["select_lead_set"]


def select_lead_set(prepared: Any, declared: Sequence[str] | None) -> str:
    """Choose and apply the lead set of ``prepared`` (a :class:`~cardiacnets.edge.screen.PreparedEcg`) for a bundle
    declaring ``declared`` (None: none); sets ``prepared.lead_set`` and returns it. Applying twice changes nothing."""
    if prepared.lead_set is not None:
        return prepared.lead_set
    missing = set(prepared.record_info.get("missing_leads") or [])
    chosen = choose_lead_set([lead for lead in LEADS if lead not in missing], declared) if declared else None
    if chosen is None:
        if declared and missing:
            prepared.record_info.setdefault("warnings", []).append(
                f"no lead set of this model ({', '.join(declared)}) fits the leads in the file; screened as 12-lead"
                " with the missing leads zero-filled"
            )
        prepared.lead_set = DEFAULT_LEAD_SET
        return prepared.lead_set
    prepared.lead_set = chosen
    if chosen != DEFAULT_LEAD_SET:
        prepared.ecg = apply_lead_set(prepared.ecg, chosen)
        _relax_qc(prepared.qc, set(LEAD_SETS[chosen]), chosen)
        prepared.record_info.setdefault("warnings", []).append(f"screened with the {LEAD_SET_WORDS[chosen]}")
    return chosen


def _relax_qc(qc: dict[str, Any], used: set[str], name: str) -> None:
    """Turn QC failures about leads the model does not use into warnings and recompute ``reliable``."""
    for finding in qc.get("findings", []):
        if finding.get("severity") == "fail" and finding.get("lead") and finding["lead"] not in used:
            finding["severity"] = "warn"
            finding["message"] = f"{finding['message']}; not used (screened with the {LEAD_SET_WORDS[name]})"
    qc["reliable"] = not any(f.get("severity") == "fail" for f in qc.get("findings", []))
