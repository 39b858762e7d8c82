"""ICD -> CardiacNets labels and cardiomyopathy subtype."""

from __future__ import annotations

import numpy as np
import pytest

from cardiacnets.errors import InputError
from cardiacnets.labels import DCM, HCM, LABEL_NAMES, RCM, labels_from_icd, normalise_icd


def _label(*codes: str, version: int = 10) -> tuple[list[int], int]:
    labels, subtype = labels_from_icd(codes, version)
    return labels.tolist(), subtype


@pytest.mark.parametrize(
    ("code", "index"),
    [
        ("I20.0", 0),
        ("I2510", 0),
        ("i21", 0),
        ("I25.2", 0),
        ("I270", 1),
        ("I27.20", 1),
        ("I30.9", 2),
        ("I311", 2),
        ("I32", 2),
        ("I420", 3),
        ("I43", 3),
        ("I50.9", 4),
        ("I5022", 4),
    ],
)
def test_each_family_maps_to_its_label(code: str, index: int) -> None:
    labels, _ = _label(code)
    expected = [0] * 5
    expected[index] = 1
    assert labels == expected, LABEL_NAMES[index]


@pytest.mark.parametrize("code", ["I19", "I26.9", "I28", "I33", "I41", "I44", "I49", "I51", "E78.5", "R00"])
def test_neighbouring_codes_are_not_labels(code: str) -> None:
    assert _label(code) == ([0, 0, 0, 0, 0], -1)


def test_cardiomyopathy_subtypes() -> None:
    assert _label("I42.0")[1] == DCM
    assert _label("I421")[1] == HCM and _label("I42.2")[1] == HCM
    assert _label("I42.5")[1] == RCM and _label("I423")[1] == RCM
    assert _label("E85.4", "I43")[1] == RCM  # amyloidosis + cardiomyopathy in diseases classified elsewhere
    assert _label("I43")[1] == -1  # I43 alone: CM, subtype unknown
    assert _label("I42.9") == ([0, 0, 0, 1, 0], -1)
    assert _label("E85.4") == ([0, 0, 0, 0, 0], -1)  # amyloid without a cardiomyopathy code is not CM
    assert _label("I420", "I421", "E854", "I43")[1] == RCM  # most specific wins: RCM, HCM, DCM
    assert _label("I420", "I422")[1] == HCM


def test_icd9_codes() -> None:
    assert _label("41401", "4280", version=9)[0] == [1, 0, 0, 0, 1]
    assert _label("4160", "4239", version=9)[0] == [0, 1, 1, 0, 0]
    assert _label("42511", version=9) == ([0, 0, 0, 1, 0], HCM)
    assert _label("4254", "2773", version=9) == ([0, 0, 0, 1, 0], RCM)
    assert _label("I21", version=9)[0] == [0] * 5  # an ICD-10 code is not read as ICD-9


def test_normalise_and_bad_input() -> None:
    assert normalise_icd(" i42.0 ") == "I420"
    assert labels_from_icd(["", "  "], 10)[0].dtype == np.int8
    with pytest.raises(InputError):
        labels_from_icd(["I21"], 11)
    with pytest.raises(InputError):
        normalise_icd(42)  # type: ignore[arg-type]
