"""Counter-based randomness: every random number of subject ``i`` is a pure function of ``(seed, i, name, k)``.

A subject therefore comes out identical whether it is generated alone, in a batch, or at a different position of a
batch, and adding a new random quantity (a new ``name``) never shifts the others. Numbers come from a splitmix64 hash,
vectorised over subjects. Long noise signals (ECG electrode noise, image noise) are windows of a fixed Gaussian bank at
subject-specific offsets, which costs a memory copy instead of millions of hashes per subject.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_BANK_SIZE = 1 << 22


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


@lru_cache(maxsize=1)
def noise_bank() -> np.ndarray:
    """A fixed float32 standard-normal bank ``(2**22,)``; identical on every machine (PCG64 with a fixed seed)."""
    return np.random.Generator(np.random.PCG64(0x5EED_CA4D)).standard_normal(_BANK_SIZE, dtype=np.float32)


class SubjectRandom:
    """Random draws for a set of subjects, keyed by name.

    Args:
        seed: cohort seed.
        indices: ``(n,)`` subject indices; subject ``i`` gets the same numbers in any batch.
    """

    def __init__(self, seed: int, indices: np.ndarray) -> None:
        self.indices = np.asarray(indices, dtype=np.uint64)
        seed_key = _splitmix64(np.array([np.uint64(seed & 0xFFFFFFFFFFFFFFFF)]))[0]
        self._base = _splitmix64(self.indices ^ seed_key)

    @property
    def n(self) -> int:
        return int(self.indices.shape[0])

    def _bits(self, name: str, k: int) -> np.ndarray:
        key = np.uint64(zlib.crc32(name.encode()))
        cols = _splitmix64(key * np.uint64(1 << 20) + np.arange(k, dtype=np.uint64))  # (k,)
        return _splitmix64(self._base[:, None] ^ cols[None, :])  # (n, k)

    def uniform(self, name: str, k: int | None = None) -> np.ndarray:
        """Uniform in (0, 1): ``(n,)`` or ``(n, k)`` float64."""
        bits = self._bits(name, 1 if k is None else k)
        u = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
        return u[:, 0] if k is None else u

    def normal(self, name: str, k: int | None = None) -> np.ndarray:
        """Standard normal (Box-Muller): ``(n,)`` or ``(n, k)`` float64."""
        kk = 1 if k is None else k
        u = self.uniform(name, 2 * kk)
        z = np.sqrt(-2.0 * np.log(u[:, :kk])) * np.cos(2.0 * np.pi * u[:, kk:])
        return z[:, 0] if k is None else z

    def bernoulli(self, name: str, p: np.ndarray | float) -> np.ndarray:
        """Boolean ``(n,)`` with success probability ``p`` (scalar or ``(n,)``)."""
        return self.uniform(name) < p

    def choice(self, name: str, probs: np.ndarray) -> np.ndarray:
        """Category index ``(n,)`` int64 from probabilities ``(k,)`` or ``(n, k)`` (rows need not be normalised)."""
        probs = np.broadcast_to(np.asarray(probs, dtype=np.float64), (self.n, np.shape(probs)[-1]))
        cdf = np.cumsum(probs, axis=1)
        cdf = cdf / cdf[:, -1:]
        u = self.uniform(name)[:, None]
        return np.minimum((u > cdf).sum(axis=1), probs.shape[1] - 1)

    def bank_windows(self, name: str, length: int, count: int = 1) -> np.ndarray:
        """``count`` windows of the Gaussian bank per subject: float32 ``(n, count, length)`` (a copy)."""
        bank = noise_bank()
        if length >= bank.shape[0]:
            raise ValueError(f"noise window of {length} samples exceeds the bank")
        offsets = (self.uniform(name, count) * (bank.shape[0] - length)).astype(np.int64)  # (n, count)
        view = np.lib.stride_tricks.sliding_window_view(bank, length)
        return view[offsets]
