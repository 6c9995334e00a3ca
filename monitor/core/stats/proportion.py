"""Proportions from labelled outcomes: Wilson intervals and McNemar's exact paired test."""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.core.stats.distributions import binom_cdf, norm_ppf


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion; (0, 1) when there is no data.

    >>> lo, hi = wilson_interval(45, 50)
    >>> round(lo, 3), round(hi, 3)
    (0.786, 0.957)
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} must be within 0..{n}")
    z = norm_ppf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n successes the bound is exactly 0 or 1; rounding would otherwise leave a speck.
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return lower, upper


@dataclass(frozen=True)
class McNemarResult:
    """Discordant pairs and exact p-values: ``b`` canary right and live wrong, ``c`` the reverse."""

    b: int
    c: int
    p_two_sided: float
    p_canary_worse: float


def mcnemar_exact(b: int, c: int) -> McNemarResult:
    """McNemar's exact test: under no difference, b ~ Binomial(b + c, 1/2).

    ``p_canary_worse`` is the one-sided p-value for the alternative that the canary is
    right less often than live (few b, many c).

    >>> result = mcnemar_exact(2, 12)
    >>> round(result.p_two_sided, 4), round(result.p_canary_worse, 4)
    (0.0129, 0.0065)
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return McNemarResult(b, c, 1.0, 1.0)
    worse = binom_cdf(b, n, 0.5)
    # Binomial(n, 1/2) is symmetric: the outcomes at most as likely as b are the two tails
    # beyond min(b, c) and max(b, c); when b == c that is every outcome.
    two_sided = 1.0 if b == c else min(1.0, 2.0 * binom_cdf(min(b, c), n, 0.5))
    return McNemarResult(b, c, two_sided, worse)
