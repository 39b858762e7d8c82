"""Rhythm and interval measurements of a 12-lead ECG, as an electrocardiograph prints them (method and agreement
with the carts: ``docs/intervals.md``).

``measure_ecg(signal, fs) -> Measurements``: heart rate, PR, QRS, QT, QTc (Bazett and Fridericia), P/QRS/T frontal
axes, a rhythm statement and whether pacemaker spikes were seen. Modules, in pipeline order:
:mod:`~cardiacnets.measure.beats` (QRS detection, median beat), :mod:`~cardiacnets.measure.delineate` (global
fiducials, axes), :mod:`~cardiacnets.measure.rhythm` (pacemaker spikes, rhythm), :mod:`~cardiacnets.measure.ecg`
(``measure_ecg``); :mod:`~cardiacnets.measure.schema` holds the keys and the :class:`Measurements` record.

Importing this package imports only the schema: ``measure_ecg`` (scipy.signal, about 0.5 s to import) is loaded on
first use, so the readers, which fill ``meta["cart_measurements"]`` with the same keys, stay quick to import.
"""

from __future__ import annotations

from typing import Any

from cardiacnets.measure.schema import MEASUREMENT_KEYS, RHYTHMS, Measurements

__all__ = ["MEASUREMENT_KEYS", "RHYTHMS", "Measurements", "measure_ecg"]


def __getattr__(name: str) -> Any:
    if name == "measure_ecg":
        from cardiacnets.measure.ecg import measure_ecg

        return measure_ecg
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
