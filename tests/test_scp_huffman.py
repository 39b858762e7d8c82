"""The vectorised SCP-ECG Huffman decoder against the code-by-code decoder that follows the standard."""

from __future__ import annotations

import numpy as np
import pytest

from cardiacnets.io import scp, scp_huffman
from cardiacnets.io.scp import _default_table
from cardiacnets.io.scp_huffman import HuffmanCode, decode_leads, decode_loop


def _random_table(rng: np.random.Generator, n_tables: int, prefix_free: bool = True) -> dict[str, HuffmanCode]:
    """A random code table: codes up to 12 bits, values with and without extra bits, table switches."""
    table: dict[str, HuffmanCode] = {}
    # A complete prefix-free code from a random binary tree (or, when not prefix_free, random strings).
    if prefix_free:
        leaves = [""]
        while len(leaves) < int(rng.integers(2, 20)):
            leaf = leaves.pop(int(rng.integers(len(leaves))))
            if len(leaf) >= 12:
                leaves.append(leaf)
                break
            leaves += [leaf + "0", leaf + "1"]
        if rng.random() < 0.5 and len(leaves) > 2:  # an incomplete code: some bit patterns are invalid
            leaves.pop(int(rng.integers(len(leaves))))
    else:
        leaves = [
            "".join(rng.choice(["0", "1"], size=int(rng.integers(1, 8)))) for _ in range(int(rng.integers(2, 12)))
        ]
    for code in leaves:
        kind = rng.random()
        if kind < 0.15 and n_tables > 1:
            table[code] = HuffmanCode(0, 0, switch_to=int(rng.integers(n_tables)))
        elif kind < 0.35:
            table[code] = HuffmanCode(int(rng.choice([1, 3, 8, 16, 32])), 0)
        else:
            table[code] = HuffmanCode(0, int(rng.integers(-300, 300)))
    return table


def _same(a: np.ndarray | int, b: np.ndarray | int) -> bool:
    if isinstance(a, int) or isinstance(b, int):
        return a == b
    return a.dtype == b.dtype and np.array_equal(a, b)


def _case(seed: int) -> tuple[list[dict[str, HuffmanCode]], list[bytes], int]:
    """Random tables (one to three, some not prefix-free), twelve random leads and a sample limit."""
    rng = np.random.default_rng(seed)
    n_tables = int(rng.choice([1, 1, 2, 3]))
    tables = [_random_table(rng, n_tables, prefix_free=seed % 5 != 0) for _ in range(n_tables)]
    chunks = [rng.integers(0, 256, size=int(rng.integers(0, 300)), dtype=np.uint8).tobytes() for _ in range(12)]
    return tables, chunks, int(rng.choice([0, 5, 200, 10_000]))


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_decoder_equals_code_by_code(seed: int) -> None:
    tables, chunks, n_max = _case(seed)
    expected = [decode_loop(chunk, tables, n_max) for chunk in chunks]
    got = decode_leads(chunks, tables, n_max)
    assert len(got) == len(expected)
    for lead, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert _same(a, b), f"lead {lead}: {a!r} != {b!r}"


def test_random_cases_cover_every_outcome() -> None:
    """The cases above hit invalid codes, table switches, complete decodes and the sample limit (else they prove
    little)."""
    outcomes = set()
    for seed in range(40):
        tables, chunks, n_max = _case(seed)
        switching = any(code.switch_to is not None for table in tables for code in table.values())
        for chunk in chunks:
            result = decode_loop(chunk, tables, n_max)
            unlimited = decode_loop(chunk, tables, 10**9)
            if isinstance(result, int):
                outcomes.add("invalid code")
            elif not isinstance(unlimited, int) and unlimited.size > result.size:
                outcomes.add("sample limit")
            elif result.size:
                outcomes.add("complete" + (" with switches" if switching else ""))
    assert outcomes == {"invalid code", "sample limit", "complete", "complete with switches"}


def test_default_table_stream_with_escapes() -> None:
    """Values in the default table's 8- and 16-bit escapes (two's complement) and short codes, then byte padding."""
    rng = np.random.default_rng(7)
    table = _default_table()
    encode = {(e.extra_bits, e.value): code for code, e in table.items()}
    values = rng.integers(-20_000, 20_000, size=3000)
    values[::3] = rng.integers(-8, 9, size=1000)
    bits = []
    for v in values:
        if -8 <= v <= 8:
            bits.append(encode[(0, int(v))])
        elif -128 <= v < 128:
            bits.append(encode[(8, 0)] + format(int(v) & 0xFF, "08b"))
        else:
            bits.append(encode[(16, 0)] + format(int(v) & 0xFFFF, "016b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)  # padding: an incomplete code at the end
    chunk = int(stream, 2).to_bytes(len(stream) // 8, "big")
    (decoded,) = decode_leads([chunk], [table], 10_000)
    assert isinstance(decoded, np.ndarray)
    np.testing.assert_array_equal(decoded, values)


def test_long_leads_take_the_loop_and_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lead over the state budget is decoded code by code; leads are grouped under the budget."""
    rng = np.random.default_rng(3)
    table = _default_table()
    chunks = [rng.integers(0, 256, size=400, dtype=np.uint8).tobytes() for _ in range(5)]
    expected = [decode_loop(chunk, [table], 10_000) for chunk in chunks]
    monkeypatch.setattr(scp_huffman, "VECTOR_MAX_STATES", 2000)  # two leads per group, none over budget
    assert all(_same(a, b) for a, b in zip(decode_leads(chunks, [table], 10_000), expected, strict=True))
    monkeypatch.setattr(scp_huffman, "VECTOR_MAX_STATES", 1000)  # every lead over budget: the loop
    assert all(_same(a, b) for a, b in zip(decode_leads(chunks, [table], 10_000), expected, strict=True))


def test_lookup_tables_over_budget_take_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many tables with long prefixes would need lookup tables over the state budget: decoded code by code."""
    tables, chunks, n_max = next(case for case in map(_case, range(40)) if len(case[0]) > 1)
    width = max(len(code) for table in tables for code in table)
    expected = [decode_loop(chunk, tables, n_max) for chunk in chunks]

    def refuse(*args: object) -> None:
        raise AssertionError("vectorised decoder used over the budget")

    monkeypatch.setattr(scp_huffman, "VECTOR_MAX_STATES", (len(tables) << width) - 1)
    monkeypatch.setattr(scp_huffman, "_decode_vectorised", refuse)
    got = decode_leads(chunks, tables, n_max)
    assert all(_same(a, b) for a, b in zip(got, expected, strict=True))


def test_second_differences_undone_exactly_or_refused() -> None:
    """x[n] = d[n] + 2 x[n-1] - x[n-2] (x0 = d0, x1 = d1), exactly in integers; sums that would leave int64 (only a
    corrupt stream gets there) are refused rather than wrapped."""
    rng = np.random.default_rng(11)
    d = rng.integers(-3000, 3000, 2000)
    expected = [int(d[0]), int(d[1])]
    for n in range(2, d.size):
        expected.append(int(d[n]) + 2 * expected[-1] - expected[-2])
    np.testing.assert_array_equal(scp._undifference(d, 2), expected)
    assert scp._undifference(np.full(300_000, 2**31 - 1), 2) is None
