"""Screening one ECG with a bundle on onnxruntime: read -> QC -> preprocess -> infer -> a result dict.

No torch on this path: numpy, scipy, pywavelets, onnxruntime and the readers only. The result is the documented JSON
schema ``cardiacnets.screening/2`` (:mod:`cardiacnets.edge.result`, ``docs/screening-output.md``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiacnets.bundle import (
    LEAD_SET_MODEL,
    SCREENING_INPUTS,
    SCREENING_OPTIONAL_OUTPUTS,
    SCREENING_OUTPUTS,
    Bundle,
    default_bundle_path,
    load_bundle,
)
from cardiacnets.edge.leadset import select_lead_set
from cardiacnets.edge.result import RESULT_SCHEMA, build_result
from cardiacnets.errors import BundleError, CardiacNetsError, InputError
from cardiacnets.execution import (
    CPU,
    TRT,
    batch_profile,
    create_session,
    provider_chain,
    trt_cache_dir,
    trt_provider_options,
)
from cardiacnets.io import read_ecg
from cardiacnets.leadsets import DEFAULT_LEAD_SET
from cardiacnets.preprocess import PreprocessConfig, preprocess_record
from cardiacnets.qc import run_qc
from cardiacnets.record import EcgRecord
from cardiacnets.trust import OPERATING_POINTS, TrustModel
from cardiacnets.trust.ood import signal_views

logger = logging.getLogger(__name__)

#: Largest batch of the TensorRT shape profile of the screening graph (the GPU batch default of ``cnscreen batch``).
GPU_MAX_BATCH = 32


def select_providers(device: str = "auto") -> list[str]:
    """Execution providers to register for ``device`` (``auto``, ``cpu``, ``cuda``, ``trt``), best first.

    ``trt`` registers TensorRT, CUDA and the CPU, ``cuda`` CUDA and the CPU (:func:`cardiacnets.execution.
    provider_chain`). onnxruntime silently falls back to the CPU when a requested provider is missing; asking for
    ``cuda`` or ``trt`` explicitly on a machine without them is an error here instead, and what a session actually
    runs on is checked after it is created (:class:`Screener`).
    """
    import onnxruntime as ort

    return provider_chain(device, ort.get_available_providers())


def choose_variant(spec: dict[str, Any], first_provider: str, requested: str | None = None) -> str:
    """The screening graph variant for a session whose first provider is ``first_provider``.

    ``requested`` wins when the bundle has it. On the CPU the bundle's default (FP32, or a variant it chose); on a
    GPU the FP16 graph when the bundle has one, else FP32, never the CPU-only INT8 graph (DynamicQuantizeLinear /
    MatMulInteger run on the CPU whatever the provider).
    """
    variants = spec.get("variants") or {}
    if requested is not None:
        if requested != "fp32" and requested not in variants:
            raise BundleError(f"bundle has no {requested!r} screening variant (has: fp32, {', '.join(variants)})")
        return requested
    if first_provider == CPU:
        return str(spec.get("default_variant") or "fp32")
    return "fp16" if "fp16" in variants else "fp32"


def _screening_trt_options(bundle: Bundle, spec: dict[str, Any], graph: str, max_batch: int) -> dict[str, Any]:
    """TensorRT provider options for the screening graph: a batch profile 1..``max_batch`` and an engine cache keyed
    by the graph's sha256 (from the manifest), this GPU and TensorRT version."""
    inputs = spec.get("inputs") or [{"name": n, "shape": ["batch", *shape]} for n, shape in
                                     zip(SCREENING_INPUTS, ((12, 5000), (3,), (3,)), strict=True)]  # fmt: skip
    profile = batch_profile(inputs, 1, min(8, max_batch), max_batch)
    digest = str(bundle.manifest["files"][graph]["sha256"])
    return trt_provider_options(trt_cache_dir(digest, profile=profile), profile=profile)


@dataclass
class PreparedEcg:
    """What a worker hands to inference: the model input plus everything the result needs. Picklable."""

    path: str
    ecg: np.ndarray  # (12, 5000) float32 in [-1, 1]
    covariates: np.ndarray  # (3,) float32: sex (0 F / 1 M), age (years), heart rate (bpm)
    covariate_mask: np.ndarray  # (3,) float32
    qc: dict[str, Any]
    preprocess: dict[str, Any]
    record_info: dict[str, Any]
    signal_views: dict[str, np.ndarray] = field(default_factory=dict)  # out-of-distribution views of the raw window
    phi: dict[str, Any] = field(default_factory=dict)
    signal_mv: np.ndarray | None = None  # (12, n) for reports; dropped in batch mode
    fs: float | None = None
    saliency: np.ndarray | None = None  # (5, 12, 50) when the graph provides it
    preprocess_config: PreprocessConfig | None = None  # kept with the signal, for the report's cleaned view
    window_start_s: float = 0.0  # where the model's 10-s input starts in the record (s; < 0 when zero-padded)
    measurements: dict[str, Any] = field(default_factory=dict)  # heart rate, intervals, axes, rhythm (measure_ecg)
    cart_measurements: dict[str, Any] | None = None  # the same keys as the file's cart reported them, when it did
    lead_set: str | None = None  # the lead set screened with (cardiacnets.leadsets), chosen before inference

    @property
    def heart_rate(self) -> float:
        """The heart rate given to the model (beats/min): the file's, else the estimate."""
        return float(self.covariates[2])


def covariates_from_record(record: EcgRecord, heart_rate: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(values, mask)`` of the external covariate set (sex, age, heart rate); unknown values masked, not zeroed."""
    meta = record.meta
    sex = {"M": 1.0, "F": 0.0}.get(str(meta.get("sex") or "").upper()[:1])
    age = meta.get("age")
    age = float(age) if isinstance(age, (int, float)) and 0 < age < 130 else None
    hr = meta.get("heart_rate")
    hr = float(hr) if isinstance(hr, (int, float)) and 20 < hr < 300 else heart_rate
    values = [v if v is not None else 0.0 for v in (sex, age, hr)]
    mask = [0.0 if v is None else 1.0 for v in (sex, age, hr)]
    return np.asarray(values, dtype=np.float32), np.asarray(mask, dtype=np.float32)


def prepare_record(record: EcgRecord, config: PreprocessConfig, *, keep_signal: bool = False) -> PreparedEcg:
    """QC and preprocess a record for the screening graph."""
    qc = run_qc(record.signal, record.fs, record.meta)
    ecg, info = preprocess_record(record, config, keep_window=True)
    window = info.pop("window")
    covariates, mask = covariates_from_record(record, info.get("heart_rate"))
    meta = record.without_phi()
    start_s = model_window_start(info, config)
    measurements = measure_record(record)
    record_info = {
        "format": meta.get("format"),
        "device": meta.get("device"),
        "acquired": meta.get("acquired"),
        "sampling_rate_hz": record.fs,
        "duration_s": round(record.duration_s, 3),
        "stored_leads": meta.get("stored_leads"),
        "derived_leads": meta.get("derived_leads"),
        "missing_leads": meta.get("missing_leads"),
        "warnings": list(meta.get("warnings") or []),
        "sex": meta.get("sex"),
        "age": meta.get("age"),
        "dicom": meta.get("dicom"),  # DICOM input: SOP class/instance, study and series UIDs (the SR joins the study)
        "model_window_s": [round(max(start_s, 0.0), 3), round(min(start_s + config.target_samples / config.target_fs,
                                                                  record.duration_s), 3)],
    }  # fmt: skip
    return PreparedEcg(
        path=str(meta.get("path") or ""),
        ecg=ecg,
        covariates=covariates,
        covariate_mask=mask,
        qc=qc.to_dict(),
        preprocess=info,
        record_info=record_info,
        signal_views=signal_views(window, float(covariates[2])),
        phi=dict(record.meta.get("phi") or {}),
        signal_mv=record.signal if keep_signal else None,
        fs=record.fs,
        preprocess_config=config if keep_signal else None,
        window_start_s=start_s,
        measurements=measurements,
        cart_measurements=meta.get("cart_measurements"),
    )


def measure_record(record: EcgRecord) -> dict[str, Any]:
    """Heart rate, intervals, axes, rhythm and pacing of the whole record (:func:`cardiacnets.measure.measure_ecg`);
    every value None when the record cannot be measured (too short, no beats)."""
    from cardiacnets.measure import MEASUREMENT_KEYS, measure_ecg

    try:
        return measure_ecg(record.signal, record.fs, median_beat=record.median_beat,
                           median_fs=record.median_fs).as_dict()  # fmt: skip
    except InputError as exc:
        logger.debug("not measured: %s", exc)
        return dict.fromkeys(MEASUREMENT_KEYS)


def model_window_start(info: dict[str, Any], config: PreprocessConfig) -> float:
    """Seconds from the record's first sample to the first sample of the model's input (negative when the record was
    shorter than the input and zero-padded on both sides), from :func:`~cardiacnets.preprocess.preprocess_record`'s
    info: the centre crop of :func:`~cardiacnets.preprocess.center_crop_or_pad` at the model's rate."""
    length, n = int(info["n_samples_resampled"]), config.target_samples
    offset = (length - n) // 2 if length >= n else -((n - length) // 2)
    return offset / config.target_fs


def prepare_file(path: str | os.PathLike[str], config: PreprocessConfig, *, keep_signal: bool = False) -> PreparedEcg:
    record = read_ecg(path)
    prepared = prepare_record(record, config, keep_signal=keep_signal)
    prepared.path = str(path)
    return prepared


class Screener:
    """A loaded bundle, its trust artefacts and its onnxruntime sessions (the screening graph, and the bundle's
    reduced-lead-set graph where it ships one)."""

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        variant: str | None = None,
        threads: int | None = None,
        allow_spinning: bool = True,
        operating_point: str | None = None,
        trusted_keys: Sequence[str | os.PathLike[str]] = (),
        allow_fallback: bool = False,
        max_batch: int = GPU_MAX_BATCH,
    ) -> None:
        """``threads``: ORT intra-op threads (default: ORT's choice). ``allow_spinning=False`` stops ORT's threads from
        busy-waiting between runs, for when other processes (batch readers) need the same cores. ``operating_point``:
        ``youden`` or ``high_specificity`` (default: the bundle's). ``trusted_keys``: public keys (PEM) one of which
        must have signed the bundle. ``variant``: the screening graph (default: :func:`choose_variant`).

        The provider the session actually runs on is :attr:`execution_provider` and every result names it. When it is
        not the first one ``device`` registers (TensorRT or CUDA failed to load) that is a
        :class:`~cardiacnets.errors.ProviderError`, or a warning with ``allow_fallback`` (always for ``auto``).
        ``max_batch``: the largest batch of the TensorRT shape profile."""
        import onnxruntime as ort

        self.bundle = (
            bundle
            if isinstance(bundle, Bundle)
            else load_bundle(bundle or default_bundle_path(), check_hashes="on_use", trusted_keys=trusted_keys)
        )
        if operating_point is not None and operating_point not in OPERATING_POINTS:
            raise InputError(f"unknown operating point {operating_point!r}; choose {' or '.join(OPERATING_POINTS)}")
        self.operating_point = operating_point
        self.trust = load_trust(self.bundle)
        spec = self.bundle.model("screening")
        self.providers = select_providers(device)
        self.variant = choose_variant(spec, self.providers[0], variant)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        if not allow_spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")

        def open_graph(spec: dict[str, Any], variant: str) -> tuple[Any, str]:
            graph = spec["file"] if variant == "fp32" else spec["variants"][variant]["file"]
            trt = _screening_trt_options(self.bundle, spec, graph, max_batch) if self.providers[0] == TRT else None
            fallback = allow_fallback or device == "auto"
            session, provider = create_session(
                self.bundle.path(graph), self.providers, session_options=options, trt_options=trt,
                allow_fallback=fallback,
            )  # fmt: skip
            names_in = [i.name for i in session.get_inputs()]
            names_out = [o.name for o in session.get_outputs()]
            if tuple(names_in) != SCREENING_INPUTS or not set(SCREENING_OUTPUTS) <= set(names_out):
                raise BundleError(
                    f"screening graph {graph} has inputs {names_in} and outputs {names_out}; expected"
                    f" {list(SCREENING_INPUTS)} -> {list(SCREENING_OUTPUTS)}"
                )
            return session, provider

        self.session, self.execution_provider = open_graph(spec, self.variant)
        # A bundle may screen its reduced lead sets with a model of their own (``screening_lead_sets``, fine-tuned
        # with lead masking) and keep the 12-lead model for 12-lead ECGs.
        reduced = self.bundle.manifest["models"].get(LEAD_SET_MODEL)
        self.reduced_session = open_graph(reduced, "fp32")[0] if reduced else None
        # On the CPU each ECG is run alone: its result is then bit-identical whatever else an archive holds (batched
        # GEMMs take other kernel paths and differ in the last bits; benchmarks/results/precision-cpu.md).
        self.per_record = self.execution_provider == CPU
        self.output_names = {o.name for o in self.session.get_outputs()}
        if self.reduced_session is not None:
            self.output_names &= {o.name for o in self.reduced_session.get_outputs()}
        self.preprocess_config = (
            PreprocessConfig.from_dict(self.bundle.preprocess) if self.bundle.preprocess else (PreprocessConfig())
        )
        self.lead_sets = self.bundle.lead_sets  # None: 12-lead only (edge.leadset)

    def infer(
        self, ecg: np.ndarray, covariates: np.ndarray, mask: np.ndarray, *, reduced: bool = False
    ) -> dict[str, np.ndarray]:
        """Run the graph on a batch: ``ecg`` (B, 12, 5000), ``covariates`` and ``mask`` (B, 3); ``reduced``: the
        bundle's reduced-lead-set model where it has one. On the CPU each row is run alone (see the constructor)."""
        session = self.reduced_session if reduced and self.reduced_session is not None else self.session
        feeds = {
            "ecg": np.ascontiguousarray(ecg, np.float32),
            "covariates": np.ascontiguousarray(covariates, np.float32),
            "covariate_mask": np.ascontiguousarray(mask, np.float32),
        }
        names = list(SCREENING_OUTPUTS) + [n for n in SCREENING_OPTIONAL_OUTPUTS if n in self.output_names]
        if not self.per_record or feeds["ecg"].shape[0] == 1:
            return dict(zip(names, session.run(names, feeds), strict=True))
        rows = [session.run(names, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(len(ecg))]
        return {name: np.concatenate([row[j] for row in rows]) for j, name in enumerate(names)}

    def infer_prepared(self, items: list[PreparedEcg]) -> list[dict[str, np.ndarray]]:
        for item in items:  # the lead set is chosen from the file's leads and applied to the input (edge.leadset)
            select_lead_set(item, self.lead_sets)
        results: list[dict[str, np.ndarray]] = [{} for _ in items]
        for reduced in (False, True):
            rows = [i for i, p in enumerate(items) if (p.lead_set != DEFAULT_LEAD_SET) == reduced]
            if not rows:
                continue
            out = self.infer(
                np.stack([items[i].ecg for i in rows]),
                np.stack([items[i].covariates for i in rows]),
                np.stack([items[i].covariate_mask for i in rows]),
                reduced=reduced,
            )
            for j, i in enumerate(rows):
                results[i] = {k: v[j] for k, v in out.items()}
        return results

    def result(
        self, prepared: PreparedEcg, outputs: dict[str, np.ndarray], *, include_phi: bool = False
    ) -> dict[str, Any]:
        """The screening result of one ECG from its graph outputs (see :func:`cardiacnets.edge.result.build_result`)."""
        return build_result(self.bundle, self.trust, prepared, outputs, operating_point=self.operating_point,
                            include_phi=include_phi, execution_provider=self.execution_provider)  # fmt: skip

    def screen_file(
        self, path: str | os.PathLike[str], *, include_phi: bool = False, keep_signal: bool = False
    ) -> tuple[dict[str, Any], PreparedEcg]:
        prepared = prepare_file(path, self.preprocess_config, keep_signal=keep_signal)
        outputs = self.infer_prepared([prepared])[0]
        result = self.result(prepared, outputs, include_phi=include_phi)
        if keep_signal and "saliency" in outputs:
            prepared.saliency = outputs["saliency"]  # (5, 12, 50) disease token contributions
        return result, prepared


def load_trust(bundle: Bundle) -> TrustModel | None:
    """The bundle's trust artefacts (``trust.json``), or None for a bundle built without them."""
    entry = bundle.manifest.get("trust")
    if not entry:
        logger.debug("bundle %s has no trust data", bundle.root)
        return None
    trust = TrustModel.from_file(bundle.path(entry["file"]))
    lacking = [ls for ls in bundle.lead_sets or [] if trust.for_lead_set(ls) is None]
    if lacking:
        raise BundleError(
            f"bundle {bundle.root} declares lead set(s) {', '.join(lacking)} but its trust data has none for them;"
            " re-fit it with `cnexport trust`"
        )
    return trust


def screen_error_result(path: str, exc: CardiacNetsError) -> dict[str, Any]:
    return {"schema": RESULT_SCHEMA, "path": str(path), "status": "error", "reason": str(exc)}


def default_bundle_available() -> bool:
    return (Path(default_bundle_path()) / "manifest.json").is_file()
