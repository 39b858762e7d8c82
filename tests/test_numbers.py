"""Text waveforms: the vectorised integer parser gives exactly what token-by-token conversion gives, and rejects
what it rejects."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cardiacnets.io._numbers import _decimal_integers, parse_integers, parse_numbers


def _reference(text: str, commas: bool) -> np.ndarray:
    tokens = re.split(r"[,\s]+", text) if commas else text.split()
    return np.array([t for t in tokens if t], dtype=np.float64)


@pytest.mark.parametrize("commas", [True, False])
def test_integers_parse_exactly_as_token_by_token(commas: bool) -> None:
    rng = np.random.default_rng(0)
    separators = [" ", "  ", "\n", "\t", "\r\n", " \n "] + ([",", ", ", ",\r\n", ",,"] if commas else [])
    for _ in range(300):
        digits = int(rng.integers(1, 17))
        values = rng.integers(-(10**digits) + 1, 10**digits, int(rng.integers(0, 60)))
        tokens = []
        for v in values:
            token = str(v)
            if v >= 0 and rng.random() < 0.1:
                token = "+" + token
            if rng.random() < 0.1:  # leading zeros, after the sign
                token = token[0] + "00" + token[1:] if token[0] in "+-" else "00" + token
            tokens.append(token)
        text = str(rng.choice(["", " ", "\n"])) + "".join(t + str(rng.choice(separators)) for t in tokens)
        assert _decimal_integers(text, commas) is not None  # the fast path took it
        got = parse_numbers(text, commas=commas)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, _reference(text, commas))
        np.testing.assert_array_equal(parse_integers(text.replace(",", " ")), values)


@pytest.mark.parametrize("text", ["1.5 -2.25 3e2", "7 nan 8", "1 inf", "12\u00a03"])
def test_other_numbers_take_the_token_by_token_path(text: str) -> None:
    assert _decimal_integers(text, False) is None
    np.testing.assert_array_equal(parse_numbers(text), _reference(text, False))


@pytest.mark.parametrize(
    "text", ["1 2 x", "1-2", "--3", "- 4", "+", "3 +", "3+", "1+2", "0x10", "1 2,3", "12abc", "1 -"]
)
def test_malformed_tokens_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_numbers(text)


def test_integer_parser_refuses_decimals_and_huge_values() -> None:
    with pytest.raises(ValueError):
        parse_integers("1 2.5 3")
    assert _decimal_integers("1" * 19, False) is None  # beyond the C parser's safe range: token by token
    assert parse_integers("1" * 19)[0] == int("1" * 19)
    assert parse_numbers("").shape == (0,) and parse_numbers(" \n\t").shape == (0,)


@pytest.mark.parametrize("commas", [True, False])
def test_random_text_parses_or_fails_exactly_as_token_by_token(commas: bool) -> None:
    """Random strings over digits, signs, separators and a few letters: the fast path never accepts what
    token-by-token conversion rejects, and never reads a different value."""
    rng = np.random.default_rng(7)
    alphabet = list("0123456789") * 3 + list("+-") * 2 + list(" ,\n\t") * 3 + list(".eEx")
    for _ in range(3000):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 25))))
        try:
            expected = _reference(text, commas)
        except ValueError:
            with pytest.raises(ValueError):
                parse_numbers(text, commas=commas)
            continue
        np.testing.assert_array_equal(parse_numbers(text, commas=commas), expected, err_msg=repr(text))
