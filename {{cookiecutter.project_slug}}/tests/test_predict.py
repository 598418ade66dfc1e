"""Batch scoring of CSV files and folders, offline, through the command and `make predict`."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import inference, predict
from {{ cookiecutter.package_name }}.data import Schema

PROJECT = Path(__file__).resolve().parent.parent


def labelled(frame: pd.DataFrame, schema: Schema, rows: int) -> pd.DataFrame:
    """Rows as a team's file has them: an id column with a comma in it, features, the target."""
    sample = frame.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    return sample.assign(**{"case id, site": [f"c{i}, north" for i in range(rows)]})[
        ["case id, site", *schema.feature_names, schema.target]
    ]


def read_predictions(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as source:
        return list(csv.DictReader(source))


def test_quoted_header_and_extra_columns_are_read_with_the_csv_module(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    data = labelled(clean_frame, schema, 5)
    source = tmp_path / "batch.csv"
    data.to_csv(source, index=False, quoting=csv.QUOTE_ALL)
    out = tmp_path / "out"
    assert (
        predict.main(
            ["--model-dir", str(model_dir), "--input", str(source), "--output-dir", str(out)]
        )
        == 0
    )
    rows = read_predictions(out / "batch.csv")
    model = inference.model_fn(str(model_dir))
    expected = inference.score(data[schema.feature_names].values.tolist(), model)
    assert [row["prediction"] for row in rows] == [str(e["prediction"]) for e in expected]


def test_files_larger_than_the_endpoint_request_limit_are_scored_whole(
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = inference.MAX_ROWS + predict.CHUNK_ROWS // 2 + 1  # over the limit, across two chunks
    source = tmp_path / "big.csv"
    labelled(clean_frame, schema, rows).to_csv(source, index=False)
    assert predict.main(["--model-dir", str(model_dir), "--input", str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == rows + 1  # a header, then one line per row
    assert lines[0].startswith("prediction")


def test_every_csv_of_a_folder_is_scored_into_its_own_file(
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "incoming"
    (folder / "march").mkdir(parents=True)
    labelled(clean_frame, schema, 3).to_csv(folder / "a.csv", index=False)
    labelled(clean_frame, schema, 4).to_csv(folder / "march" / "b.csv", index=False)
    out = tmp_path / "predictions"
    assert (
        predict.main(
            ["--model-dir", str(model_dir), "--input", str(folder), "--output-dir", str(out)]
        )
        == 0
    )
    assert len(read_predictions(out / "a.csv")) == 3
    assert len(read_predictions(out / "march" / "b.csv")) == 4
    err = capsys.readouterr().err
    assert f"{folder / 'a.csv'}: 3 rows -> {out / 'a.csv'}" in err
    assert f"{folder / 'march' / 'b.csv'}: 4 rows -> {out / 'march' / 'b.csv'}" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("a,b\n1,2\n", "no column"),
        ("{header}\n{row},9\n", "row 1: expected"),
        ("{header}\n{bad}\n", "row 1, column"),
        # A spreadsheet's export with another separator: named, with the one expected.
        ("{semicolon_header}\n{semicolon_row}\n", "separated by ';' (semicolon)"),
        ("{tab_header}\n{tab_row}\n", "separated by tab"),
    ],
)
def test_bad_files_fail_with_one_line_and_write_nothing(
    model_dir: Path,
    schema: Schema,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    width = len(schema.feature_names)
    source = tmp_path / "bad.csv"
    source.write_text(
        content.format(
            header=",".join(schema.feature_names),
            row=",".join(["1"] * width),
            bad=",".join(["x"] * width),
            semicolon_header=";".join(schema.feature_names),
            semicolon_row=";".join(["1,5"] * width),
            tab_header="\t".join(schema.feature_names),
            tab_row="\t".join(["1"] * width),
        )
    )
    out = tmp_path / "out"
    code = predict.main(
        ["--model-dir", str(model_dir), "--input", str(source), "--output-dir", str(out)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and str(source) in err and len(err.strip().splitlines()) == 1
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and path != source]


def test_make_predict_scores_a_single_file(
    model_dir: Path, clean_frame: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    """`make predict DATA=file.csv` (it used to pass an empty --input for a file)."""
    (tmp_path / "models").symlink_to(model_dir)
    labelled(clean_frame, schema, 6).to_csv(tmp_path / "new.csv", index=False)
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        # RUN= runs the command in this test's environment instead of through `uv run`.
        [
            "make",
            "--no-print-directory",
            "-f",
            str(PROJECT / "Makefile"),
            "predict",
            "UV=uv",
            "RUN=",
            "DATA=new.csv",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(read_predictions(tmp_path / "build" / "predictions" / "new.csv")) == 6
    assert "new.csv: 6 rows -> build/predictions/new.csv" in result.stderr


def test_json_output(
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "x.csv"
    labelled(clean_frame, schema, 2).to_csv(source, index=False)
    assert (
        predict.main(
            ["--model-dir", str(model_dir), "--input", str(source), "--accept", "application/json"]
        )
        == 0
    )
    assert pd.read_json(io.StringIO(capsys.readouterr().out))["predictions"].size == 2
