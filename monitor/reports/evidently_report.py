"""An Evidently report of the reference against a sample of recent traffic: data drift and classification quality.

The reference is the profile's sample of the reference data set (or, without a
profile, live's recent rows when the canary is reported on). The current data is the
sidecar's sample of a role's most recent predictions (``drift.sample_rows``), with
the true class where feedback has told it. Evidently is imported here only, when a
report is asked for, so the sidecar does not pay for it at start.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.core.state.feature_intake import SampleRow
from monitor.core.state.features import SCORES_PREFIX
from monitor.errors import ReportError

# Labelled rows needed on each side before classification quality is reported.
MIN_LABELLED = 30


def _frame(rows: Sequence[SampleRow], numeric: list[str], categorical: list[str]) -> Any:
    import pandas as pd

    records = []
    for row in rows:
        record: dict[str, Any] = {"prediction": row.prediction, "target": row.target}
        features, scores = row.features or {}, row.scores or {}
        for name in numeric + categorical:
            source, key = (scores, name[len(SCORES_PREFIX):]) if name.startswith(SCORES_PREFIX) else (features, name)
            value = source.get(key)
            if (name in numeric and not isinstance(value, (int, float))) or isinstance(value, bool):
                value = None
            record[name] = value if name in numeric or value is None else str(value)
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=["prediction", "target", *numeric, *categorical])
    for name in numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def report_html(
    title: str, reference: Sequence[SampleRow], current: Sequence[SampleRow], kinds: Mapping[str, str]
) -> str:
    """One HTML page: Evidently's data drift of every column (and the predicted class), and, when both sides
    have enough labelled rows, its classification quality on them."""
    if not reference or not current:
        side = "reference" if not reference else "recent traffic"
        raise ReportError(f"no {side} rows sampled yet: a report needs rows on both sides")
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset, DataDriftPreset

    numeric = sorted(name for name, kind in kinds.items() if kind == "numeric")
    categorical = sorted(name for name, kind in kinds.items() if kind != "numeric")
    reference_frame, current_frame = _frame(reference, numeric, categorical), _frame(current, numeric, categorical)
    drift_definition = DataDefinition(numerical_columns=numeric, categorical_columns=[*categorical, "prediction"])
    sections = [("Data drift: features, scores and the predicted class", Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current_frame.drop(columns=["target"]), data_definition=drift_definition),
        Dataset.from_pandas(reference_frame.drop(columns=["target"]), data_definition=drift_definition),
    ))]
    labelled_reference = reference_frame[reference_frame["target"].notna()]
    labelled_current = current_frame[current_frame["target"].notna()]
    if min(len(labelled_reference), len(labelled_current)) >= MIN_LABELLED:
        quality_definition = DataDefinition(
            categorical_columns=["target", "prediction"],
            classification=[MulticlassClassification(target="target", prediction_labels="prediction")],
        )
        columns = ["target", "prediction"]
        sections.append(("Classification quality on labelled rows", Report([ClassificationPreset()]).run(
            Dataset.from_pandas(labelled_current[columns], data_definition=quality_definition),
            Dataset.from_pandas(labelled_reference[columns], data_definition=quality_definition),
        )))
        quality_note = f"{len(labelled_current)} recent and {len(labelled_reference)} reference rows have a true class."
    else:
        quality_note = (f"Classification quality needs {MIN_LABELLED} rows with a true class on each side; "
                        f"there are {len(labelled_current)} recent and {len(labelled_reference)} reference ones.")
    return _page(title, len(reference), len(current), quality_note,
                 [(heading, snapshot.get_html_str(as_iframe=False)) for heading, snapshot in sections])


def _page(title: str, n_reference: int, n_current: int, note: str, sections: list[tuple[str, str]]) -> str:
    frames = "\n".join(
        f"<h2>{html.escape(heading)}</h2>\n"
        f'<iframe title="{html.escape(heading)}" srcdoc="{html.escape(body, quote=True)}"></iframe>'
        for heading, body in sections
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1rem 2rem}}iframe{{width:100%;height:90vh;border:1px solid #ccc}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Reference: {n_reference} rows. Recent traffic: {n_current} rows. {html.escape(note)}</p>
{frames}
</body></html>
"""
