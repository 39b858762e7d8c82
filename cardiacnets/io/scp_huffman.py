"""SCP-ECG Huffman decoding (EN 1064 section 2 tables; section 6 lead data): all leads of a section at once with
numpy (:func:`decode_leads`), and code by code as the standard describes it (:func:`decode_loop`, the reference and
the path for prefixes over 16 bits). Values are the first or second differences the reader then undoes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LUT_MAX_BITS", "VECTOR_MAX_STATES", "HuffmanCode", "decode_leads", "decode_loop", "lookup_tables"]


@dataclass
class HuffmanCode:
    """One entry of a Huffman table, keyed by its prefix bits."""

    extra_bits: int  # bits of original value following the prefix (0: the value is ``value``)
    value: int
    switch_to: int | None = None  # table mode switch: decode the following codes with this table (0-based)


# The vectorised decoder looks codes up in tables of 2**K entries (K: the longest prefix, 10 bits in the default
# table) and holds a few arrays per state (table, bit position) of the leads it decodes at once (int32 indices, so
# the state count is bounded well below 2**31); longer prefixes, lookup tables over the state budget, and a lead
# with more states than the budget (an hour of signal) take the code-by-code loop.
LUT_MAX_BITS = 16
VECTOR_MAX_STATES = 1 << 22


def decode_leads(chunks: list[bytes], tables: list[dict[str, HuffmanCode]], n_max: int) -> list[np.ndarray | int]:
    """Decode each lead's Huffman bit stream (most significant bit of each byte first) into at most ``n_max`` values.

    Per lead: the int64 values, or the bit position (within the lead) of an invalid code. Trailing bits that do not
    complete a code (byte padding, under 8 bits) are ignored. Same results as :func:`decode_loop`, which
    follows the standard code by code; this one decodes every lead of a section at once with numpy (a whole read of
    the corpus's 10-s Huffman-coded record takes 13.9 instead of 43.9 ms: benchmarks/results/scp-huffman.md)."""
    longest = max(len(code) for table in tables for code in table)
    budget = VECTOR_MAX_STATES // len(tables)  # bit positions (plus one per lead) decoded at once
    out: list[np.ndarray | int | None] = [None] * len(chunks)
    groups: list[list[int]] = [[]]
    bits_in_group = 0
    for k, chunk in enumerate(chunks):
        bits = 8 * len(chunk) + 1
        if longest > LUT_MAX_BITS or len(tables) << longest > VECTOR_MAX_STATES or bits > budget:
            out[k] = decode_loop(chunk, tables, n_max)
            continue
        if bits_in_group + bits > budget:
            groups.append([])
            bits_in_group = 0
        groups[-1].append(k)
        bits_in_group += bits
    for group in filter(None, groups):
        decoded = _decode_vectorised([chunks[k] for k in group], tables, n_max, longest)
        for k, values in zip(group, decoded, strict=True):
            out[k] = values
    return out  # type: ignore[return-value]  # every slot is filled above


def _decode_vectorised(
    chunks: list[bytes], tables: list[dict[str, HuffmanCode]], n_max: int, width: int
) -> list[np.ndarray | int]:
    """:func:`decode_leads` for leads small enough to decode at once, ``width`` the longest prefix (bits).

    Decoding is a walk through states (table in use, bit position): each state's code, and so its successor, is
    known in advance from the ``width`` bits at that position. The successors of every state are computed at once;
    the walk from each lead's first bit is then followed ``stride`` codes at a time (successor tables composed by
    repeated squaring) and filled in between. Terminal states (end of the lead, an invalid code, a code cut by the
    end) lead to an absorbing sink."""
    n_bits = np.array([8 * len(chunk) for chunk in chunks], dtype=np.int32)
    states = _States(chunks, n_bits, width)
    prefix, extra, value, switch = lookup_tables(tables, width)
    successor, emits, invalid = states.transitions(prefix, extra, switch)
    walks = _walks(successor, states.first_slot, states.sink, int(n_bits.max()))
    octets = np.frombuffer(b"".join(chunks) + bytes(5), dtype=np.uint8).astype(np.int64)
    big = (octets[:-4] << 32) | (octets[1:-3] << 24) | (octets[2:-2] << 16) | (octets[3:-1] << 8) | octets[4:]
    results: list[np.ndarray | int] = []
    for k in range(len(chunks)):
        walk = walks[k]
        walk = walk[: int(np.argmax(walk == states.sink))]  # the walk always ends in the sink (its last checkpoint)
        coded = walk[emits[walk]]
        if coded.size < n_max and invalid[walk[-1]]:
            last = int(walk[-1]) % states.n_slots
            results.append(last - int(states.first_slot[states.lead_of_slot[last]]))
            continue
        coded = coded[:n_max]
        t, at = coded // states.n_slots, coded % states.n_slots
        code = states.window[at]
        bits = extra[t, code]
        values = value[t, code]
        wide = np.flatnonzero(bits)
        if wide.size:
            # The value's bits follow the prefix: up to 32 of them from any bit offset lie in one 40-bit word.
            start = (states.where[at[wide]] + prefix[t[wide], code[wide]]).astype(np.int64)
            raw = (big[start >> 3] >> (40 - bits[wide] - (start & 7))) & ((1 << bits[wide]) - 1)
            half = 1 << (bits[wide] - 1)
            values[wide] = np.where(raw >= half, raw - 2 * half, raw)  # two's complement of `bits` bits
        results.append(values)
    return results


class _States:
    """The decoder's states for a group of leads: one slot per bit position of each lead plus one for "end of lead",
    per table. Lead k's slots start at ``first_slot[k]``, so slot s of lead k is bit s - k of the concatenated stream.
    int32 throughout: the caller bounds the number of states."""

    def __init__(self, chunks: list[bytes], n_bits: np.ndarray, width: int) -> None:
        n_leads = len(chunks)
        slots = n_bits + 1
        self.n_slots = int(slots.sum())
        self.first_slot = np.concatenate(([0], np.cumsum(slots)[:-1])).astype(np.int32)
        self.lead_of_slot = np.repeat(np.arange(n_leads, dtype=np.int32), slots)
        self.slot = np.arange(self.n_slots, dtype=np.int32)
        self.where = self.slot - self.lead_of_slot  # position in the concatenated bit stream
        # Bits left from this position (0 in the end slot).
        self.remaining = (n_bits + self.first_slot)[self.lead_of_slot] - self.slot
        # Big-endian 24-bit words at every byte: the next `width` (<= 16) bits from any bit offset lie in one.
        data = np.frombuffer(b"".join(chunks) + bytes(3), dtype=np.uint8).astype(np.int32)
        words = (data[:-2] << 16) | (data[1:-1] << 8) | data[2:]
        self.window = (words[self.where >> 3] >> (24 - width - (self.where & 7))) & ((1 << width) - 1)
        self.sink = 0  # set by transitions()

    def transitions(
        self, prefix: np.ndarray, extra: np.ndarray, switch: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(successor, emits, invalid)`` over all states and the sink: the next state, whether the state's code
        emits a value, and whether it is an invalid code (not mere byte padding)."""
        n_tables, n_slots, window, remaining, slot = len(prefix), self.n_slots, self.window, self.remaining, self.slot
        switches = bool(np.any(switch >= 0))
        self.sink = sink = n_tables * n_slots
        successor = np.full(sink + 1, sink, dtype=np.int32)
        emits = np.zeros(sink + 1, dtype=bool)
        invalid = np.zeros(sink + 1, dtype=bool)
        for t in range(n_tables):
            length = prefix[t][window]
            fits = (length > 0) & (length <= remaining)  # a code, and all of its prefix before the end
            step = length + extra[t][window]
            emitting = fits & (step <= remaining)  # else the value's bits are cut by the end: stop
            states = successor[t * n_slots : (t + 1) * n_slots]
            np.copyto(states, slot + (t * n_slots) + step, where=emitting)
            if switches:
                to_table = switch[t][window]
                switching = fits & (to_table >= 0)
                emitting &= ~switching
                np.copyto(states, to_table * n_slots + slot + length, where=switching)
            emits[t * n_slots : (t + 1) * n_slots] = emitting
            invalid[t * n_slots : (t + 1) * n_slots] = ~fits & (remaining >= 8)  # under 8 bits left: the padding
        return successor, emits, invalid


def _walks(successor: np.ndarray, first_slot: np.ndarray, sink: int, longest_bits: int) -> np.ndarray:
    """Every lead's walk from its first bit (table 0), ``(leads, states in walk order)``, followed ``stride`` codes
    at a time, then filled in between the checkpoints. Each squaring gathers every state; each checkpoint and each
    fill step only a few per lead. Strides of about the cube root of the longest lead's bits (5 squarings, 32 codes,
    on the corpus's 10-s record) read it in 11.5 ms against 12.1 ms with square-root strides (ad-hoc timing)."""
    squarings = int(np.clip(np.ceil(np.log2(longest_bits + 1) / 3), 3, 10))
    stride = 1 << squarings
    jump = successor
    for _ in range(squarings):
        jump = jump[jump]
    checkpoints = [first_slot.copy()]
    while not np.all(checkpoints[-1] == sink):
        checkpoints.append(jump[checkpoints[-1]])
    current = np.stack(checkpoints)  # (checkpoints, leads)
    rows = [current]
    for _ in range(stride - 1):
        current = successor[current]
        rows.append(current)
    return np.stack(rows, axis=1).transpose(2, 0, 1).reshape(len(first_slot), -1)


def lookup_tables(
    tables: list[dict[str, HuffmanCode]], width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per table, indexed by the next ``width`` bits: prefix length (0: no code), extra bits, value, table to switch
    to (-1: none). Four ``(tables, 2**width)`` arrays. Where codes are not prefix-free, the shortest match wins, as
    in the code-by-code decoder."""
    shape = (len(tables), 1 << width)
    prefix = np.zeros(shape, dtype=np.int32)
    extra = np.zeros(shape, dtype=np.int64)  # int64: shifts by up to 40 bits use it
    value = np.zeros(shape, dtype=np.int64)
    switch = np.full(shape, -1, dtype=np.int32)
    for t, table in enumerate(tables):
        for code, entry in sorted(table.items(), key=lambda item: -len(item[0])):  # shorter codes written last
            span = 1 << (width - len(code))
            lo = int(code, 2) * span
            prefix[t, lo : lo + span] = len(code)
            extra[t, lo : lo + span] = entry.extra_bits
            value[t, lo : lo + span] = entry.value
            switch[t, lo : lo + span] = -1 if entry.switch_to is None else entry.switch_to
    return prefix, extra, value, switch


def decode_loop(chunk: bytes, tables: list[dict[str, HuffmanCode]], n_max: int) -> np.ndarray | int:
    """Decode one lead's Huffman bit stream code by code, as the standard describes it: at most ``n_max`` int64
    values, or the bit position of an invalid code. Trailing bits that do not complete a code (byte padding) are
    ignored. The reference for :func:`decode_leads`, and its path for prefixes over 16 bits."""
    bits = "".join(f"{b:08b}" for b in chunk)
    n_bits = len(bits)
    max_prefix = [max(len(code) for code in t) for t in tables]
    out: list[int] = []
    table = 0
    pos = 0
    while pos < n_bits and len(out) < n_max:
        entry = None
        for length in range(1, max_prefix[table] + 1):
            if pos + length > n_bits:
                break
            entry = tables[table].get(bits[pos : pos + length])
            if entry is not None:
                pos += length
                break
        if entry is None:
            if n_bits - pos < 8:
                break  # padding of the last byte
            return pos
        if entry.switch_to is not None:
            table = entry.switch_to
            continue
        if entry.extra_bits:
            if pos + entry.extra_bits > n_bits:
                break
            raw = int(bits[pos : pos + entry.extra_bits], 2)
            pos += entry.extra_bits
            if raw >= 1 << (entry.extra_bits - 1):
                raw -= 1 << entry.extra_bits
            out.append(raw)
        else:
            out.append(entry.value)
    return np.asarray(out, dtype=np.int64)
