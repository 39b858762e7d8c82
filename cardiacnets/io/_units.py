"""Voltage units of ECG channels: how many millivolts one stored unit is, the same way in every reader.

Formats name units in free text (``mV``, ``uV``, ``µV`` with the micro sign or the Greek mu, ``nV``, ``V``, any case).
:func:`millivolts_per_unit` normalises the spelling once; :func:`channel_factor` adds the readers' shared rule for a
channel: a unit that is not a voltage drops the channel with a warning, a missing unit is taken as microvolts (what
every vendor in the conformance corpus stores) with a warning.
"""

from __future__ import annotations

__all__ = ["channel_factor", "millivolts_per_unit"]

_MV_PER_UNIT = {"nv": 1e-6, "uv": 1e-3, "mv": 1.0, "v": 1e3}


def millivolts_per_unit(unit: object) -> float | None:
    """mV per ``unit`` (``"uV"`` -> 0.001), or None when the text names no voltage unit."""
    text = str(unit).strip().lower().replace("\u00b5", "u").replace("\u03bc", "u")
    return _MV_PER_UNIT.get(text)


def channel_factor(unit: str, channel: str, no_unit: str, warnings: list[str]) -> float | None:
    """mV per stored unit of one channel, or None when the channel is not an ECG voltage and must be skipped.

    ``channel`` names it in warnings (``"EDF signal 'II'"``); ``no_unit`` says how the format lacks a unit
    (``"has no physical dimension"``). A missing unit is assumed to be uV, with a warning.
    """
    factor = millivolts_per_unit(unit)
    if factor is not None:
        return factor
    if unit:
        warnings.append(f"{channel} in unit {unit!r} is not an ECG voltage; ignored")
        return None
    warnings.append(f"{channel} {no_unit}; assumed uV")
    return 1e-3
