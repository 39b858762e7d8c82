"""Sample values stored as text (CardioSoft CSV, HL7 aECG digits, Philips plain data): parsed fast and strictly.

A 10-s 12-lead ECG stored as text holds 60,000 numbers. Converting them token by token (``np.array(text.split(),
dtype=float)``) costs about 1 ms per lead, more than the rest of reading, QC and preprocessing together. Vendors
write plain decimal integers (ADC counts), so :func:`parse_numbers` first parses those with a handful of numpy passes
over the bytes, and falls back to the token-by-token conversion (same results, same errors) for anything else:
decimals, exponents, non-ASCII text, and malformed tokens (which that conversion rejects with a ``ValueError``).
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["parse_integers", "parse_numbers"]

_POW10 = 10 ** np.arange(19, dtype=np.int64)
_MAX_DIGITS = 18  # int64 holds every 18-digit decimal
# Byte classes: 0 anything else, 1 digit, 2 separator (what str.split() splits on, within ASCII), 3 sign; comma is a
# separator only in the second table.
_OTHER, _DIGIT, _SEPARATOR, _SIGN = 0, 1, 2, 3
_CLASSES = np.zeros(256, dtype=np.uint8)
_CLASSES[np.frombuffer(b"0123456789", dtype=np.uint8)] = _DIGIT
_CLASSES[np.frombuffer(b" \t\n\r\x0b\x0c", dtype=np.uint8)] = _SEPARATOR
_CLASSES[np.frombuffer(b"+-", dtype=np.uint8)] = _SIGN
_CLASSES_COMMAS = _CLASSES.copy()
_CLASSES_COMMAS[ord(",")] = _SEPARATOR


def parse_numbers(text: str, *, commas: bool = False) -> np.ndarray:
    """Numbers separated by whitespace (and commas when ``commas``) -> float64 ``(n,)``, exactly as
    ``np.array(tokens, dtype=np.float64)`` gives them. Raises ``ValueError`` on a token that is not a number."""
    values = _decimal_integers(text, commas)
    if values is not None:
        return values.astype(np.float64)
    tokens = re.split(r"[,\s]+", text) if commas else text.split()
    return np.array([t for t in tokens if t], dtype=np.float64)


def parse_integers(text: str) -> np.ndarray:
    """Whitespace-separated decimal integers -> int64 ``(n,)``, exactly as ``np.array(text.split(), dtype=np.int64)``
    gives them. Raises ``ValueError`` on a token that is not an integer (``1.5`` included)."""
    values = _decimal_integers(text, False)
    return values if values is not None else np.array(text.split(), dtype=np.int64)


def _decimal_integers(text: str, commas: bool) -> np.ndarray | None:
    """int64 values when ``text`` is only optionally signed decimal integers of at most 18 digits between separators;
    None otherwise (the caller then converts token by token)."""
    try:
        raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        return None
    kind = (_CLASSES_COMMAS if commas else _CLASSES)[raw]
    if np.any(kind == _OTHER):
        return None
    digit, separator, sign = kind == _DIGIT, kind == _SEPARATOR, kind == _SIGN
    after_separator = np.ones_like(separator)
    after_separator[1:] = separator[:-1]
    starts = ~separator & after_separator  # first character of each token
    digit_next = np.zeros_like(digit)
    digit_next[:-1] = digit[1:]
    if np.any(sign & ~(starts & digit_next)):  # a sign anywhere but before a token's first digit
        return None
    # Every token is now a sign (optional) and one or more digits.
    n_tokens = int(np.count_nonzero(starts))
    if n_tokens == 0:
        return np.empty(0, dtype=np.int64)
    token = np.cumsum(starts) - 1  # token index of every character
    where = np.flatnonzero(digit)
    owner = token[where]
    counts = np.bincount(owner, minlength=n_tokens)  # digits per token, all >= 1
    if counts.max() > _MAX_DIGITS:
        return None
    first = np.cumsum(counts) - counts  # index into `where` of each token's first digit
    last_position = where[first + counts - 1]  # byte offset of each token's last digit
    contribution = (raw[where] - np.uint8(48)).astype(np.int64) * _POW10[last_position[owner] - where]
    values = np.add.reduceat(contribution, first)
    values[raw[np.flatnonzero(starts)] == 45] *= -1
    return values
