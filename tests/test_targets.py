"""Targets: the packaged phenotype list matches the shared reference and the reference ranges are sane."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cardiacnets.targets import KEY_PHENOTYPES, phenotype_index, phenotypes, reference_range

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "phenotypes_82.csv"


def test_82_phenotypes_in_ukb_field_order() -> None:
    items = phenotypes()
    assert [p.ukb_field for p in items] == list(range(24100, 24182))
    assert items[0].short == "LVEDV" and items[5].short == "LVM" and items[81].short == "Ell_Global"


@pytest.mark.skipif(not SHARED_CSV.is_file(), reason="shared reference not beside the repository")
def test_packaged_list_equals_shared_reference() -> None:
    rows = list(csv.DictReader(SHARED_CSV.read_text().splitlines()))
    assert [(int(r["ukb_field_id"]), r["unit"]) for r in rows] == [(p.ukb_field, p.unit) for p in phenotypes()]


def test_reference_ranges_contain_healthy_means() -> None:
    # Petersen 2017 healthy means must sit inside their own ranges; unknown sex widens to the union.
    assert reference_range("LVEDV", "M")[0] < 166 < reference_range("LVEDV", "M")[1]
    assert reference_range("LVEF", "F")[0] < 61 < reference_range("LVEF", "F")[1]
    low, high = reference_range("LVM", None)
    assert low <= reference_range("LVM", "F")[0] and high >= reference_range("LVM", "M")[1]
    for short in KEY_PHENOTYPES:
        phenotype_index(short)
        assert reference_range(short, "M") is not None
