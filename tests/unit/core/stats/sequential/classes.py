"""Simulated class answers of canary and live for the class-distribution tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CLASSES = ("invoice", "contract", "other")
LIVE_MIX = np.array([0.5, 0.3, 0.2])

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


def paired_streams(
    canary_mix: FloatArray, live_mix: FloatArray, streams: int, steps: int, seed: int
) -> tuple[IntArray, IntArray]:
    """Class indices of canary and live answering independently, shape streams x steps."""
    rng = np.random.default_rng(seed)
    canary = rng.choice(len(canary_mix), size=(streams, steps), p=canary_mix)
    live = rng.choice(len(live_mix), size=(streams, steps), p=live_mix)
    return canary, live
