"""Anytime-valid comparisons of a canary with the live model: confidence sequences and go / no-go.

Each check keeps a confidence sequence for its quantity, valid however often it is
read, and says ``no_go``, ``go`` or ``undecided`` by comparing it with a practical
margin. One module per check:

- :mod:`.paired_difference`: the class distribution on paired requests (:class:`PairedDifference`);
- :mod:`.rate_below`: the rate of an event, such as disagreement, against a maximum (:class:`RateBelow`);
- :mod:`.paired_accuracy`: accuracy on labelled requests, canary minus live (:class:`PairedAccuracy`);
- :mod:`.base`: what they share (checkpoint form, merging, wording, :class:`DecisionPaths`).

The guarantee, the assumptions, the method and what decides how fast: docs/sequential.md.
Everything here is pure: numbers in, numbers out, numpy only, no I/O.
"""

from monitor.core.stats.sequential.base import DecisionPaths, SequentialCheck
from monitor.core.stats.sequential.paired_accuracy import PairedAccuracy
from monitor.core.stats.sequential.paired_difference import PairedDifference
from monitor.core.stats.sequential.rate_below import RateBelow

__all__ = [
    "DecisionPaths",
    "PairedAccuracy",
    "PairedDifference",
    "RateBelow",
    "SequentialCheck",
]
