"""Sample values stored as text (CardioSoft CSV, HL7 aECG digits, Philips plain data): parsed fast and strictly.

A 10-s 12-lead ECG stored as text holds 60,000 numbers. Converting them token by token (``np.array(text.split(),
dtype=float)``) costs about 1 ms per lead, more than the rest of reading, QC and preprocessing together. Vendors
write plain decimal integers (ADC counts), so :func:`parse_numbers` first parses those in C (about 9 times faster),
and falls back to the token-by-token conversion (same results, same errors) for anything else: decimals, exponents,
non-ASCII text, and malformed tokens (which that conversion rejects with a ``ValueError``).
"""

from __future__ import annotations

import re
import warnings

import numpy as np

__all__ = ["parse_integers", "parse_numbers"]

_LIMIT = 10**17  # beyond this, parse token by token (int64 overflows silently in C parsers)
# Byte classes: 0 anything else, 1 digit, 2 separator (ASCII whitespace as C's isspace() has it; str.split() also
# splits on \x1c-\x1f, which therefore take the token-by-token path), 3 sign; comma separates only in the second table.
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
    """int64 values when ``text`` is only optionally signed decimal integers (under 1e17 in magnitude) between
    separators; None otherwise (the caller then converts token by token).

    numpy's C text parser (``np.fromstring(..., sep=" ")``) does the conversion; it is lenient in two ways that are
    checked here: it stops quietly at the first token it cannot parse (made an error), a lone sign reads as 0 (every
    sign must precede a digit), and a space separator also matches nothing, so ``1-2`` would read as two numbers (the
    value count must equal the token count, counted from the separators)."""
    if not text.isascii():
        return None
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    kind = (_CLASSES_COMMAS if commas else _CLASSES)[raw]
    if np.any(kind == _OTHER):
        return None
    sign = kind == _SIGN
    if sign.any() and (sign[-1] or np.any(sign[:-1] & (kind[1:] != _DIGIT))):  # a sign not followed by a digit
        return None
    separator = kind == _SEPARATOR
    n_tokens = int(np.count_nonzero(~separator[1:] & separator[:-1])) + int(raw.size > 0 and not separator[0])
    if n_tokens == 0:
        return np.empty(0, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "could not be read to its end" is a DeprecationWarning in numpy 2
        try:
            values = np.fromstring(text.replace(",", " ") if commas else text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning, AttributeError):  # AttributeError: a numpy without fromstring
            return None
    if values.size != n_tokens or np.abs(values).max() >= _LIMIT:
        return None
    return values
