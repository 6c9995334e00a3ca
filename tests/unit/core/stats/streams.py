"""Simulated streams for the anytime-validity tests, and the error rate a valid check may show.

Simulation tests read every check after *every* step of every stream, as a gate
polling continuously would, and compare the share of streams that ever decide
wrongly with alpha. The allowance for the simulation's own noise is 3 standard
errors of a binomial proportion at alpha: alpha + 3 sqrt(alpha (1 - alpha) / streams)
(0.083 for 400 streams at alpha = 0.05). All simulations are seeded.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

ALPHA = 0.05
FloatArray = npt.NDArray[np.float64]


def allowance(streams: int, alpha: float = ALPHA) -> float:
    """alpha plus 3 binomial standard errors: the most a valid check may show in ``streams`` simulations."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / streams)


def three_point(p_minus: float, p_plus: float, size: tuple[int, ...], seed: int) -> FloatArray:
    """Values -1, 0, 1 with the given probabilities of -1 and 1."""
    rng = np.random.default_rng(seed)
    draws = rng.random(size)
    return np.where(draws < p_minus, -1.0, np.where(draws < p_minus + p_plus, 1.0, 0.0))


def ever(mask: npt.NDArray[np.bool_]) -> float:
    """Share of streams (rows) where the mask is ever true."""
    return float(mask.any(axis=-1).mean())
