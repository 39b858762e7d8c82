"""Self-contained HTML report of one screening: the ECG printout with saliency, rhythm and intervals, risks,
phenotypes, QC, optional cines.

The ECG is the 10-s window the model saw, drawn as vector graphics (:mod:`cardiacnets.ecgpaper`) with the evidence
aligned to it. The header names the file only; patient identifiers and the full path appear only with ``include_phi``.
Everything is inlined (CSS, SVG, GIF as data URIs), so the file can be mailed or archived alone. Text from the ECG
file is escaped. Generated cines are labelled as AI-generated imagery.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.ecgpaper import EcgPage, layout_page, page_svg
from cardiacnets.errors import InputError
from cardiacnets.targets import DISEASES

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1f2937;max-width:1200px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;font-size:13px}td,th{padding:4px 10px;border-bottom:1px solid #f0f0f0;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}.flag{color:#b91c1c;font-weight:600}.ok{color:#15803d}
.warn{color:#b45309;font-weight:600}
.note{background:#fef3c7;border:1px solid #f59e0b;padding:8px 12px;border-radius:6px;margin:10px 0}
.fail{background:#fee2e2;border:1px solid #ef4444;padding:8px 12px;border-radius:6px;margin:10px 0}
div.paper svg{width:100%;height:auto;border:1px solid #e5e7eb}
table.facts th{color:#6b7280;font-weight:400;padding:1px 10px 1px 0}table.facts td{padding:1px 10px}
.cines{display:flex;gap:24px}
.cines figure{margin:0}.cines img{width:240px;image-rendering:pixelated;border:1px solid #e5e7eb}
.ai{font-size:12px;color:#92400e;font-weight:600}.meta{color:#6b7280;font-size:13px}
"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def flagged_saliency(result: dict[str, Any], saliency: np.ndarray | None) -> tuple[np.ndarray | None, str]:
    """Positive evidence ``(12, 50)`` summed over the flagged diseases (or the highest-risk one when none is)."""
    if saliency is None:
        return None, "the model bundle provides no saliency output"
    flagged = [i for i, d in enumerate(DISEASES) if result["diseases"][d]["flagged"]]
    if not flagged:
        top = max(range(len(DISEASES)), key=lambda i: result["diseases"][DISEASES[i]]["probability"])
        flagged, why = [top], f"no condition flagged; shown for the highest-risk one ({DISEASES[top]})"
    else:
        why = "shown for " + ", ".join(DISEASES[i] for i in flagged)
    return np.clip(saliency[flagged], 0, None).sum(axis=0), why


MEASUREMENT_ROWS = (  # key, label, unit
    ("heart_rate_bpm", "heart rate", "bpm"),
    ("pr_ms", "PR", "ms"),
    ("qrs_ms", "QRS", "ms"),
    ("qt_ms", "QT", "ms"),
    ("qtc_bazett_ms", "QTc (Bazett)", "ms"),
    ("qtc_fridericia_ms", "QTc (Fridericia)", "ms"),
    ("p_axis_deg", "P axis", "\u00b0"),
    ("qrs_axis_deg", "QRS axis", "\u00b0"),
    ("t_axis_deg", "T axis", "\u00b0"),
)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.0f}"
    return f"{value} {unit}".strip() if unit not in ("\u00b0",) else f"{value}{unit}"


def header_facts(result: dict[str, Any], *, include_phi: bool = False) -> list[tuple[str, str]]:
    """What the printout's header says, as (label, text) pairs: the file name only (full path, patient name and ID
    only with ``include_phi``), acquisition, patient age/sex when known, and the ECG measurements with the rhythm."""
    record = result.get("record") or {}
    path = str(result.get("path") or "")
    facts = [("file", path if include_phi else Path(path).name)]
    patient = result.get("patient") or {}
    if include_phi:
        for key, value in patient.items():  # the identifiers the reader found (name, ID, ... or header comments)
            if value not in (None, "", []):
                text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
                facts.append((key.replace("_", " "), text))
    for key, label in (("acquired", "acquired"), ("sex", "sex"), ("age", "age")):
        if record.get(key) not in (None, ""):
            facts.append((label, str(record[key])))
    recording = f"{record.get('format')}, {record.get('sampling_rate_hz')} Hz, {record.get('duration_s')} s"
    facts.append(("recording", recording))
    facts.append(
        ("leads screened", {"12": "12-lead"}.get(str(result.get("lead_set") or "12"), str(result.get("lead_set"))))
    )
    measured = result.get("measurements") or {}
    if measured:
        paced = " (pacemaker spikes)" if measured.get("paced") else ""
        facts.append(("rhythm", str(measured.get("rhythm") or "-") + paced))
        facts += [(label, _fmt(measured.get(key), unit)) for key, label, unit in MEASUREMENT_ROWS]
    return facts


def window_note(result: dict[str, Any], page: EcgPage, signal: str) -> str:
    record = result.get("record") or {}
    window = record.get("model_window_s") or [0.0, 10.0]
    shown = "cleaned (the model's filtering, in mV)" if signal == "cleaned" else "raw"
    return (
        f"The 10-s window the model saw: {window[0]:.2f}-{window[1]:.2f} s of a {record.get('duration_s')}-s record;"
        f" {shown} signal; {page.gain_note}." + (" Some peaks are cut at the row's edge." if page.any_clipped else "")
    )


def report_page(result: dict[str, Any], prepared: Any, signal: str = "raw") -> tuple[EcgPage, str]:
    """The laid-out ECG page of a screened record (the model's window, saliency aligned to it) and its evidence note."""
    if prepared.signal_mv is None or prepared.fs is None:
        raise InputError("the report needs the ECG signal (screen with keep_signal=True)")
    if signal not in ("raw", "cleaned"):
        raise InputError(f"report signal must be raw or cleaned, not {signal!r}")
    samples, fs = prepared.signal_mv, prepared.fs
    if signal == "cleaned":
        samples, fs = cleaned_signal(prepared)
    saliency, saliency_note = flagged_saliency(result, getattr(prepared, "saliency", None))
    page = layout_page(samples, fs, start_s=prepared.window_start_s, saliency=saliency)
    return page, saliency_note


def cleaned_signal(prepared: Any) -> tuple[np.ndarray, float]:
    """The record cleaned as the model's preprocessing cleans it (mV, at the record's rate, with the heart rate the
    model was given)."""
    from cardiacnets.preprocess import PreprocessConfig, clean_ecg

    config = prepared.preprocess_config or PreprocessConfig()
    cleaned = clean_ecg(prepared.signal_mv, prepared.fs, config, heart_rate=prepared.heart_rate)
    return cleaned, float(prepared.fs)


def render_report(
    result: dict[str, Any], prepared: Any, cine_gifs: dict[str, bytes] | None = None, *, signal: str = "raw",
    include_phi: bool = False,
) -> str:  # fmt: skip
    """The report as one HTML string: header, the ECG printout as inline SVG, risks, phenotypes, QC, cines."""
    esc = html.escape
    page, saliency_note = report_page(result, prepared, signal)
    model = result["model"]
    facts = header_facts(result, include_phi=include_phi)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>CardiacNets screening report</title><style>{_CSS}</style></head><body>",
        "<h1>CardiacNets ECG screening report</h1>",
        "<table class='facts'>"
        + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
        + "</table>",
        f"<div class='meta'>model {esc(str(model.get('name')))} {esc(str(model.get('version')))} &middot; digest "
        f"<code>{esc(str(model.get('digest'))[:16])}</code>"
        + (" &middot; trained on synthetic data" if model.get("trained_on_synthetic") else "")
        + "</div>",
    ]
    parts += _notes(result)
    parts.append("<h2>12-lead ECG</h2><div class='paper'>")
    parts.append(page_svg(page, title="12-lead ECG on standard paper"))
    parts.append(f"</div><div class='meta'>{esc(window_note(result, page, signal))}</div>")
    parts.append(
        f"<div class='meta'>Blue strips under the traces: where the model found evidence ({esc(saliency_note)}).</div>"
    )
    parts += _measurement_section(result)
    parts += _screening_section(result) + _phenotype_section(result) + _qc_section(result)
    parts += _cine_section(cine_gifs) if cine_gifs else []
    parts.append(
        "<p class='meta'>Screening aid only. Probabilities and phenotype estimates come from a model; they are"
        " not a diagnosis.</p></body></html>"
    )
    return "\n".join(parts)


def _notes(result: dict[str, Any]) -> list[str]:
    esc = html.escape
    parts = []
    if result.get("note"):
        parts.append(f"<div class='note'>{esc(result['note'])}</div>")
    if result.get("note_ood"):
        parts.append(f"<div class='fail'><strong>Out of distribution.</strong> {esc(result['note_ood'])}</div>")
    if result.get("note_trust"):
        parts.append(f"<div class='note'>{esc(result['note_trust'])}</div>")
    if result.get("note_paced"):
        parts.append(f"<div class='fail'>{esc(result['note_paced'])}</div>")
    if not result["qc"].get("reliable", True):
        parts.append("<div class='fail'>Signal quality control failed: the results are not reliable.</div>")
    return parts


def _measurement_section(result: dict[str, Any]) -> list[str]:
    """Our measurements beside the cart's own, where the file carries them."""
    measured = result.get("measurements")
    if not measured:
        return []
    cart = result.get("cart_measurements") or {}
    esc = html.escape
    parts = ["<h2>Rhythm and intervals</h2><table><tr><th></th><th class='num'>measured</th>"
             + ("<th class='num'>cart</th>" if cart else "") + "</tr>"]  # fmt: skip
    rows = [("rhythm", "rhythm", "")] + list(MEASUREMENT_ROWS)
    for key, label, unit in rows:
        cart_cell = f"<td class='num'>{esc(_fmt(cart.get(key), unit))}</td>" if cart else ""
        parts.append(
            f"<tr><td>{esc(label)}</td><td class='num'>{esc(_fmt(measured.get(key), unit))}</td>{cart_cell}</tr>"
        )
    parts.append("</table>")
    return parts


def _screening_section(result: dict[str, Any]) -> list[str]:
    """Disease table (probability, threshold, band, decision) and the subtype when shown."""
    parts: list[str] = []
    esc = html.escape
    model = result["model"]
    scale = "calibrated probability" if model.get("calibrated") else "probability (uncalibrated)"
    parts.append(
        f"<h2>Screening</h2><table><tr><th>condition</th><th class='num'>{scale}</th>"
        "<th class='num'>threshold</th><th>uncertain between</th><th>result</th></tr>"
    )
    verdicts = {"flagged": "<span class='flag'>flagged</span>", "clear": "<span class='ok'>clear</span>",
                "indeterminate": "<span class='warn'>indeterminate</span>"}  # fmt: skip
    for code, d in result["diseases"].items():
        band = d.get("band")
        parts.append(
            f"<tr><td>{esc(d['name'])} ({code})</td><td class='num'>{d['probability']:.3f}</td>"
            f"<td class='num'>{d['threshold']:.3f} ({esc(d['operating_point'])})</td>"
            f"<td>{f'{band[0]:.3f}&ndash;{band[1]:.3f}' if band else '-'}</td><td>{verdicts[d['decision']]}</td></tr>"
        )
    parts.append("</table>")
    if result["subtype"]["shown"]:
        parts.append("<h2>Cardiomyopathy subtype</h2><table>")
        for name, p in sorted(result["subtype"]["probabilities"].items(), key=lambda kv: -kv[1]):
            parts.append(f"<tr><td>{esc(name)}</td><td class='num'>{p:.3f}</td></tr>")
        parts.append("</table>")
    return parts


def _phenotype_section(result: dict[str, Any]) -> list[str]:
    """Key phenotypes with intervals and reference ranges."""
    parts: list[str] = []
    esc = html.escape
    model = result["model"]
    coverage = model.get("interval_coverage")
    interval_title = f"{coverage:.0%} interval" if coverage else "interval"
    parts.append(
        "<h2>CMR phenotypes estimated from the ECG</h2><table><tr><th>phenotype</th><th class='num'>value</th>"
        f"<th>{interval_title}</th><th>unit</th><th>reference</th><th></th></tr>"
    )
    for name, p in result["key_phenotypes"].items():
        ref = p.get("reference_range")
        interval = p.get("interval")
        mark = "<span class='flag'>out of range</span>" if p.get("out_of_range") else ""
        parts.append(
            f"<tr><td>{esc(name)}</td><td class='num'>{p['value']:.1f}</td>"
            f"<td>{f'{interval[0]:.1f}&ndash;{interval[1]:.1f}' if interval else '-'}</td><td>{esc(p['unit'])}</td>"
            f"<td>{f'{ref[0]:g}&ndash;{ref[1]:g}' if ref else '-'}</td><td>{mark}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _qc_section(result: dict[str, Any]) -> list[str]:
    """Signal-quality findings and the reader's warnings."""
    parts: list[str] = []
    esc = html.escape
    record = result["record"]
    parts.append("<h2>Signal quality</h2>")
    findings = result["qc"].get("findings") or []
    if findings:
        parts.append("<table><tr><th>severity</th><th>lead</th><th>finding</th></tr>")
        for f in findings:
            cls = "flag" if f.get("severity") == "fail" else ""
            parts.append(
                f"<tr><td class='{cls}'>{esc(str(f.get('severity')))}</td><td>{esc(str(f.get('lead') or '-'))}"
                f"</td><td>{esc(str(f.get('message')))}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p class='ok'>No findings.</p>")
    warnings = record.get("warnings") or []
    if warnings:
        parts.append("<ul class='meta'>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")
    return parts


def _cine_section(cine_gifs: dict[str, bytes]) -> list[str]:
    """Generated cines, labelled as AI-generated imagery."""
    parts: list[str] = []
    esc = html.escape
    parts.append("<h2>Cine MRI generated from this ECG</h2>")
    parts.append(
        "<p class='ai'>AI-GENERATED IMAGERY: synthesised from the ECG by a diffusion model. It is not a"
        " scan of this patient and must not be used for diagnosis.</p><div class='cines'>"
    )
    for view, gif in cine_gifs.items():
        parts.append(
            f"<figure><img alt='AI-generated {esc(view)} cine' src='{_data_uri(gif, 'image/gif')}'>"
            f"<figcaption class='ai'>{esc(view)} (AI-generated)</figcaption></figure>"
        )
    parts.append("</div>")
    return parts


def write_report(
    result: dict[str, Any], prepared: Any, path: str | Path, cine_gifs: dict[str, bytes] | None = None, *,
    signal: str = "raw", include_phi: bool = False,
) -> Path:  # fmt: skip
    """Write the report as HTML (``.html``/``.htm``) or as a one-page printable PDF (``.pdf``), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from cardiacnets.edge.report_pdf import render_pdf

        data = render_pdf(result, prepared, signal=signal, include_phi=include_phi)
    elif suffix in (".html", ".htm"):
        data = render_report(result, prepared, cine_gifs, signal=signal, include_phi=include_phi).encode("utf-8")
    else:
        raise InputError(f"report {path.name}: use a .html or .pdf file name")
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
