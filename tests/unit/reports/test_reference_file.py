"""Reading reference data (CSV, Parquet, JSON lines), building profiles, and `driftgate reference build`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.config import parse_config
from monitor.core.profile import ReferenceProfile, build_profile
from monitor.core.stats.drift import bin_counts, quantile_edges
from monitor.errors import ConfigError, ProfileError, ReferenceFileError
from monitor.reports.profile_file import read_profile, write_profile
from monitor.reports.reference_file import read_reference

runner = CliRunner()
CLASSES = ["invoice", "contract", "other"]


def frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, n)
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)],
        "label": rng.choice(CLASSES, n),
        "n_pages": rng.integers(1, 30, n),
        "lang": rng.choice(["de", "en", "fr"], n),
        "text_len": rng.normal(3000, 500, n),
        "scores.invoice": scores,
        "scores.other": 1 - scores,
    })


def write_events(df: pd.DataFrame, path: Path) -> None:
    """The same rows as prediction events, one JSON object a line."""
    with path.open("wb") as handle:
        for row in df.to_dict("records"):
            event = {"request_id": row["request_id"], "deployment": "doc", "label": row["label"],
                     "scores": {"invoice": row["scores.invoice"], "other": row["scores.other"]},
                     "features": {"n_pages": row["n_pages"], "lang": row["lang"], "text_len": row["text_len"]}}
            handle.write(orjson.dumps(event) + b"\n")


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    df = frame()
    paths = {"csv": tmp_path / "ref.csv", "parquet": tmp_path / "ref.parquet", "jsonl": tmp_path / "ref.jsonl"}
    df.to_csv(paths["csv"], index=False, float_format="%.17g")  # every digit, as the other formats keep
    df.to_parquet(paths["parquet"])
    write_events(df, paths["jsonl"])
    return paths


def test_every_format_gives_the_same_profile(files: dict[str, Path]) -> None:
    profiles = []
    for path in files.values():
        table = read_reference(path)
        profiles.append(build_profile("doc", table.labels, table.columns(), bins=20).to_dict())
    assert profiles[0]["features"] == profiles[1]["features"] == profiles[2]["features"]
    assert profiles[0]["class_counts"] == profiles[2]["class_counts"]
    df = frame()
    layout = profiles[0]["layout"]["columns"]
    assert [c["name"] for c in layout] == ["lang", "n_pages", "text_len", "scores.invoice", "scores.other"]
    edges = quantile_edges(df["text_len"].to_numpy(), 20)
    assert profiles[0]["features"]["columns"]["text_len"]["counts"] == bin_counts(edges, df["text_len"]).tolist()
    assert profiles[0]["class_counts"] == df["label"].value_counts().sort_index().to_dict()


def test_profile_round_trips_through_its_file(files: dict[str, Path], tmp_path: Path) -> None:
    table = read_reference(files["csv"])
    profile = build_profile("doc", table.labels, table.columns())
    write_profile(profile, tmp_path / "p.json")
    again = read_profile(tmp_path / "p.json")
    assert again.to_dict() == profile.to_dict()
    assert sum(again.class_distribution().values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ref.txt", "label\na\n", "unknown format"),
        ("ref.csv", "", "holds no rows"),
        ("ref.csv", "n_pages,lang\n3,de\n", "no `label` column"),
        ("ref.csv", "label,n_pages\na,3\n,4\n", "1 rows have no label (first: row 2)"),
        ("ref.csv", "label,scores.a\na,0.5\nb,1.5\n", "score of 'a' is 1.5"),
        ("ref.csv", "label,x\na,\nb,\n", "column 'x' has no value"),
        ("ref.jsonl", '{"label": "a"}\nnot json\n', "line 2 is not JSON"),
        ("ref.jsonl", '[1, 2]\n', "line 1 is not a JSON object"),
        ("ref.jsonl", '{"label": "a", "features": {"x": [1, 2]}}\n', "feature 'x' holds a list"),
        ("ref.jsonl", '{"label": "a", "features": {"x": 1}}\n{"label": "b", "features": {"x": "one"}}\n',
         "column 'x' mixes text"),
        ("ref.parquet", "not parquet", "not readable Parquet"),
    ],
)
def test_bad_files_and_columns_are_refused_naming_them(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ReferenceFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_reference(path)


def test_cli_builds_a_profile_the_config_accepts(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "doc.profile.json"
    result = runner.invoke(app, ["reference", "build", "--deployment", "doc", "--from", str(files["parquet"]),
                                 "--out", str(out), "--bins", "50"])
    assert result.exit_code == 0, result.output
    assert "3,000 rows" in result.output
    profile = read_profile(out)
    assert isinstance(profile, ReferenceProfile) and profile.rows == 3000
    settings = parse_config({"deployments": [{"name": "doc", "reference": {"profile": str(out)}}]})
    assert settings.deployments[0].reference.profile == out


def test_cli_refuses_a_bad_file_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "ref.csv"
    bad.write_text("n_pages\n3\n")
    result = runner.invoke(app, ["reference", "build", "--deployment", "doc", "--from", str(bad),
                                 "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 2
    assert "no `label` column" in result.output
    assert not (tmp_path / "p.json").exists()


def test_config_refuses_a_missing_or_foreign_profile(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"deployments\[0\]\.reference\.profile.*cannot read"):
        parse_config({"deployments": [{"name": "doc", "reference": {"profile": str(tmp_path / "none.json")}}]})
    not_profile = tmp_path / "other.json"
    not_profile.write_text('{"a": 1}')
    with pytest.raises(ConfigError, match="not a driftgate reference profile"):
        parse_config({"deployments": [{"name": "doc", "reference": {"profile": str(not_profile)}}]})
    table = read_reference(files["csv"])
    out = tmp_path / "p.json"
    write_profile(build_profile("mail", table.labels, table.columns()), out)
    with pytest.raises(ConfigError, match="built for deployment 'mail', not 'doc'"):
        parse_config({"deployments": [{"name": "doc", "reference": {"profile": str(out)}}]})


def test_damaged_profile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"format": "driftgate-reference-profile/1", "deployment": "doc"}')
    with pytest.raises(ProfileError, match="damaged"):
        read_profile(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_integer_and_boolean_labels_are_named_as_the_input_topics_name_them(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame({"label": [0, 7, 2], "target": [True, False, True], "n_pages": [1, 2, 3]})
    path = tmp_path / f"ref.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path)
    else:
        path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in df.to_dict("records")))
    table = read_reference(path)
    assert table.labels == ["0", "7", "2"]
    assert table.targets == ["true", "false", "true"]
