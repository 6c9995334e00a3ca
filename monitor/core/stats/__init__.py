"""Statistics over class counts: pure functions of numbers, no I/O."""

from .divergence import (
    Chi2Result,
    CountVector,
    chi2_goodness_of_fit,
    chi2_homogeneity,
    entropy_bits,
    js_distance,
    largest_share,
    psi,
    shares,
)

__all__ = [
    "Chi2Result",
    "CountVector",
    "chi2_goodness_of_fit",
    "chi2_homogeneity",
    "entropy_bits",
    "js_distance",
    "largest_share",
    "psi",
    "shares",
]
