"""Reading a reference data set (CSV, Parquet or JSON lines) into labels and columns for a profile.

Each row is either a prediction event (``label``, ``scores`` object, ``features``
object, as on the input topics) or flat columns: ``label``, ``scores.<class>``
columns, and the features as ``features.<name>`` columns or, when there are none,
every other column but the event's bookkeeping (``request_id``, ``ts``,
``deployment``, ``model_version``). A file or a column that cannot be used is
refused with a :class:`ReferenceFileError` naming it and the first bad row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from monitor.config import class_name
from monitor.core.state.feature_intake import SampleRow
from monitor.core.state.features import SCORES_PREFIX
from monitor.errors import ReferenceFileError

CHUNK_ROWS = 50_000
BOOKKEEPING = frozenset({"request_id", "ts", "deployment", "model_version", "source", "correct", "target"})
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}

# (done, total): bytes for CSV and JSON lines, rows for Parquet
Progress = Callable[[int, int], None]


@dataclass
class ReferenceTable:
    """Labels per row and the values of each feature and score column."""

    labels: list[str | None] = field(default_factory=list)
    # the true class of a row, when the file has a `target` column (for classification quality in reports)
    targets: list[str | None] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.labels)

    def sample(self, size: int) -> list[SampleRow]:
        """At most ``size`` evenly spaced rows (the same ones every time)."""
        step = max(1, -(-self.rows // size)) if size > 0 else self.rows + 1
        return [
            SampleRow(self.labels[i] or "", self.targets[i], self.features[i], self.scores[i])
            for i in range(0, self.rows, step)
        ][:size]

    def columns(self) -> dict[str, list[Any]]:
        """Feature columns by name and score columns as ``scores.<class>``, None where a row lacks one."""
        columns: dict[str, list[Any]] = {}
        for prefix, rows in (("", self.features), (SCORES_PREFIX, self.scores)):
            for name in sorted({name for row in rows for name in row}):
                columns[prefix + name] = [row.get(name) for row in rows]
        return columns


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _class(value: Any) -> str | None:
    """A row's class named as on the input topics (docs/contract.md §1): an integer or a boolean
    as its text (7 is "7", true is "true"); None when missing."""
    if _missing(value):
        return None
    if isinstance(value, int):
        return class_name(value)
    return str(value)


def _split(row: dict[str, Any], number: int) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(label, features, scores) of one row, event-shaped or flat."""
    label = _class(row.get("label"))
    features_obj, scores_obj = row.get("features"), row.get("scores")
    if isinstance(features_obj, dict):
        features = dict(features_obj)
    else:
        prefixed = any(key.startswith("features.") for key in row)
        features = {
            key.removeprefix("features."): value for key, value in row.items()
            if (key.startswith("features.") if prefixed else
                key not in BOOKKEEPING and key not in ("label", "scores") and not key.startswith(SCORES_PREFIX))
        }
    if isinstance(scores_obj, dict):
        scores = dict(scores_obj)
    else:
        scores = {key[len(SCORES_PREFIX):]: value for key, value in row.items() if key.startswith(SCORES_PREFIX)}
    for name, value in features.items():
        if _missing(value):
            features[name] = None
        elif not isinstance(value, (str, int, float, bool)):
            raise ReferenceFileError(
                f"row {number}: feature {name!r} holds a {type(value).__name__}; features are numbers, text or bools"
            )
    for name, value in scores.items():
        if _missing(value):
            scores[name] = None
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ReferenceFileError(f"row {number}: score of {name!r} is {value!r}; scores are numbers in [0, 1]")
    return label, features, scores


def _csv_chunks(path: Path, on_progress: Progress) -> Iterator[list[dict[str, Any]]]:
    import pandas as pd

    total = path.stat().st_size
    with path.open("rb") as handle:
        try:
            # round_trip: every float as written, not the fast parser's nearest-but-one
            for frame in pd.read_csv(handle, chunksize=CHUNK_ROWS, float_precision="round_trip"):
                yield frame.to_dict("records")
                on_progress(min(handle.tell(), total), total)
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise ReferenceFileError(f"{path} is not readable CSV: {error}") from None
        except pd.errors.EmptyDataError:
            return


def _jsonl_chunks(path: Path, on_progress: Progress) -> Iterator[list[dict[str, Any]]]:
    total = path.stat().st_size
    chunk: list[dict[str, Any]] = []
    done = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            done += len(line)
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise ReferenceFileError(f"{path} line {number} is not JSON: {error}") from None
            if not isinstance(obj, dict):
                raise ReferenceFileError(f"{path} line {number} is not a JSON object")
            chunk.append(obj)
            if len(chunk) >= CHUNK_ROWS:
                yield chunk
                chunk = []
                on_progress(done, total)
    if chunk:
        yield chunk
    on_progress(total, total)


def _parquet_chunks(path: Path, on_progress: Progress) -> Iterator[list[dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise ReferenceFileError(f"{path} is not readable Parquet: {error}") from None
    total, done = parquet.metadata.num_rows, 0
    for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
        rows = batch.to_pylist()
        done += len(rows)
        yield rows
        on_progress(done, total)


def read_reference(path: Path, on_progress: Progress | None = None) -> ReferenceTable:
    """Read a CSV, Parquet or JSON lines file into a :class:`ReferenceTable` (refusing what cannot be used)."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ReferenceFileError(f"{path}: unknown format {path.suffix!r}; use one of {', '.join(sorted(FORMATS))}")
    if not path.is_file():
        raise ReferenceFileError(f"{path}: no such file")
    progress = on_progress or (lambda done, total: None)
    chunks = {"csv": _csv_chunks, "jsonl": _jsonl_chunks, "parquet": _parquet_chunks}[fmt](path, progress)
    table = ReferenceTable()
    no_label: list[int] = []
    for chunk in chunks:
        for row in chunk:
            number = table.rows + 1
            label, features, scores = _split(row, number)
            if label is None:
                no_label.append(number)
            table.labels.append(label)
            table.targets.append(_class(row.get("target")))
            table.features.append(features)
            table.scores.append(scores)
    _check(path, table, no_label)
    return table


def _check(path: Path, table: ReferenceTable, no_label: list[int]) -> None:
    if table.rows == 0:
        raise ReferenceFileError(f"{path} holds no rows")
    if len(no_label) == table.rows:
        raise ReferenceFileError(f"{path} has no `label` column (or it is empty): each row needs the class")
    if no_label:
        raise ReferenceFileError(f"{path}: {len(no_label)} rows have no label (first: row {no_label[0]})")
    for name, values in table.columns().items():
        present = [v for v in values if v is not None]
        if not present:
            raise ReferenceFileError(f"{path}: column {name!r} has no value in any of the {table.rows} rows")
        texts = sum(1 for v in present if isinstance(v, str))
        if 0 < texts < len(present):
            first = next(i for i, v in enumerate(values, start=1) if v is not None and not isinstance(v, str))
            raise ReferenceFileError(
                f"{path}: column {name!r} mixes text ({texts} rows) and numbers or bools "
                f"({len(present) - texts} rows, first at row {first}); a column holds one kind"
            )
