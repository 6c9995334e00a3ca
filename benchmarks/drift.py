"""Feature drift: driftgate's binned computation against Evidently's DataDriftPreset on the same data.

Draws a reference and a current table of ``--rows`` rows by ``--features`` numeric
columns (a quarter of them shifted, a quarter widened, the rest unchanged), then in this
process:

1. Evidently 0.7: ``Report([DataDriftPreset()])`` of current against reference (for
   references over 1,000 rows it judges numeric columns by the Wasserstein distance
   normed by the reference's standard deviation);
2. driftgate: the reference profile's columns (edges at ``--bins`` quantiles, counts and
   exact summaries), the current table folded into the streaming state, and every
   column's PSI, KS and normed Wasserstein distance with its error bound.

It compares each column's Wasserstein value with Evidently's and checks the difference
is within the bound driftgate states for it; then times the streaming state's update
from event-shaped rows (dicts of features, in chunks as the sidecar bins them).
The last line is one JSON object (docs/contract.md §7).

    python benchmarks/drift.py [--rows 100000] [--features 20] [--bins 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import orjson

from monitor.core.feature_checks import column_tests
from monitor.core.state.features import FeatureLayout, FeatureStats


def tables(rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    names = [f"f{j:02d}" for j in range(features)]
    reference = np.empty((rows, features))
    current = np.empty((rows, features))
    for j in range(features):
        kind = j % 4
        if kind == 3:  # skewed
            reference[:, j], current[:, j] = rng.lognormal(0, 0.6, rows), rng.lognormal(0.05, 0.6, rows)
        else:
            reference[:, j] = rng.normal(10 * j, 1 + j, rows)
            shift, widen = (0.3 * (1 + j), 1.0) if kind == 1 else ((0.0, 1.5) if kind == 2 else (0.0, 1.0))
            current[:, j] = rng.normal(10 * j + shift, (1 + j) * widen, rows)
    return reference, current, names


def evidently_scores(reference: np.ndarray, current: np.ndarray, names: list[str]) -> tuple[dict[str, float], float]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    definition = DataDefinition(numerical_columns=names)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(pd.DataFrame(current, columns=names), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame(reference, columns=names), data_definition=definition),
    )
    elapsed = time.perf_counter() - started
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            assert config["method"] == "Wasserstein distance (normed)", config["method"]
            scores[config["column"]] = float(metric["value"])
    return scores, elapsed


def driftgate_scores(
    reference: np.ndarray, current: np.ndarray, names: list[str], bins: int
) -> tuple[dict[str, dict[str, Any]], float]:
    started = time.perf_counter()
    reference_columns = {name: reference[:, j] for j, name in enumerate(names)}
    layout = FeatureLayout.learn_columns(reference_columns, bins)
    profile = FeatureStats(layout)
    profile.update_columns(reference.shape[0], reference_columns)  # type: ignore[arg-type]
    window = FeatureStats(layout)
    window.update_columns(current.shape[0], {name: current[:, j] for j, name in enumerate(names)})  # type: ignore[arg-type]
    figures = {}
    for name in names:
        tests = column_tests(profile.columns[name], window.columns[name])
        wd = tests["wasserstein"]
        figures[name] = {"wasserstein": wd.value, "bound": wd.error_bound, "psi": tests["psi"].value,
                         "ks": tests["ks"].value}
    return figures, time.perf_counter() - started


def streaming_rate(current: np.ndarray, names: list[str], layout: FeatureLayout, chunk: int = 4096) -> float:
    """Rows per second folded into the streaming state from event-shaped rows (dicts), as the sidecar does."""
    rows = [dict(zip(names, values, strict=True)) for values in current.tolist()]
    scores: list[dict[str, Any] | None] = [None] * chunk
    state = FeatureStats(layout)
    started = time.perf_counter()
    for start in range(0, len(rows), chunk):
        batch = rows[start:start + chunk]
        state.update(batch, scores[:len(batch)])
    return len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--bins", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    reference, current, names = tables(args.rows, args.features, args.seed)
    print(f"{args.rows:,} rows x {args.features} numeric columns, {args.bins} bins", file=sys.stderr)
    print("Evidently DataDriftPreset ...", file=sys.stderr)
    expected, evidently_s = evidently_scores(reference, current, names)
    print("driftgate ...", file=sys.stderr)
    figures, driftgate_s = driftgate_scores(reference, current, names, args.bins)
    differences = {name: abs(figures[name]["wasserstein"] - expected[name]) for name in names}
    within = all(differences[name] <= figures[name]["bound"] + 1e-12 for name in names)
    for name in names:
        print(f"  {name}: evidently {expected[name]:.4f}  driftgate {figures[name]['wasserstein']:.4f} "
              f"(bound {figures[name]['bound']:.4f}, off by {differences[name]:.4f})", file=sys.stderr)
    layout = FeatureLayout.learn_columns({name: reference[:, j] for j, name in enumerate(names)}, args.bins)
    rate = streaming_rate(current, names, layout)
    worst = max(names, key=differences.__getitem__)
    result = {
        "rows": args.rows, "features": args.features, "bins": args.bins,
        "evidently_s": round(evidently_s, 3), "driftgate_s": round(driftgate_s, 4),
        "speedup": round(evidently_s / driftgate_s, 1),
        "max_abs_difference": round(differences[worst], 5), "max_difference_feature": worst,
        "bound_at_max_difference": round(figures[worst]["bound"], 5),
        "max_bound": round(max(f["bound"] for f in figures.values()), 5),
        "within_bound": within,
        "same_drift_decisions": sum((figures[n]["wasserstein"] >= 0.1) == (expected[n] >= 0.1) for n in names),
        "streaming_rows_per_s": round(rate),
    }
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
